"""Sweeps as users run them: `harness -m +sweep=…` with a local parallel (joblib) and a
submitit_local launcher (submitit's local executor: the Slurm launcher's code path with jobs as
local processes); jobs share the artifacts they have in common and are tagged."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

pytestmark = pytest.mark.slow  # the CLI in subprocesses (python -m harness -m): the slow tier


def multirun(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", "-m", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=900)


def finished_runs(env: dict[str, str], experiment: str) -> list:
    """The jobs' runs (not the sweep's parent), all finished."""
    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert all(r.info.status == "FINISHED" for r in runs)
    return [r for r in runs if r.data.tags.get("prefharness.sweep_parent") != "1"]


@pytest.mark.timeout(900)  # as long as the multirun's own timeout
def test_kl_sweep_with_ppo_trains_the_reward_model_once(harness_env: dict[str, str], tmp_path: Path) -> None:
    env = harness_env | {"PREFHARNESS_CACHE": str(tmp_path / "cache")}  # no MLFLOW_EXPERIMENT_NAME
    sweep_dir = tmp_path / "sweep"
    proc = multirun(["+sweep=kl_coef", "experiment=smoke", "loss=ppo", "loss.method.episodes=32",
                     f"hydra.sweep.dir={sweep_dir}"], env, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = finished_runs(env, "sweep-kl_coef")  # the sweep's own MLflow experiment
    assert sorted(r.data.params["loss.beta"] for r in runs) == ["0.03", "0.1", "0.3", "1.0"]
    assert {r.data.tags["sweep.name"] for r in runs} == {"kl_coef"}
    assert len({r.data.tags["sweep.id"] for r in runs}) == 1  # one launch
    assert len({r.data.tags["mlflow.parentRunId"] for r in runs}) == 1  # joblib's workers found the parent
    assert len({r.data.tags["artifact.reward_model"] for r in runs}) == 1
    # One computation of the shared reward model: in the jobs' logs and in the cache.
    logs = "".join(p.read_text() for p in sweep_dir.glob("*/*.log"))
    built = [line for line in logs.splitlines() if "artifact reward_model/" in line and ": building" in line]
    assert len(built) == 1, built
    assert len([p for p in (tmp_path / "cache" / "artifacts" / "reward_model").iterdir() if p.is_dir()]) == 1


@pytest.mark.timeout(900)
def test_four_job_sweep_on_submitit_local(harness_env: dict[str, str], tmp_path: Path) -> None:
    env = harness_env | {"MLFLOW_EXPERIMENT_NAME": "sweep-submitit"}
    grid = "loss.beta=0.2,0.4,0.6,0.8"
    proc = multirun(["+sweep=kl_coef", "experiment=smoke", "hydra/launcher=submitit_local", grid,
                     f"hydra.sweep.dir={tmp_path / 'sweep'}"], env, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = finished_runs(env, "sweep-submitit")
    assert sorted(r.data.params["loss.beta"] for r in runs) == ["0.2", "0.4", "0.6", "0.8"]  # the command line's grid
    for shared in ("artifact.samples", "artifact.labels", "artifact.eval_initial"):  # built once, read by all four
        assert len({r.data.tags[shared] for r in runs}) == 1, shared
    assert {r.data.tags["sweep.name"] for r in runs} == {"kl_coef"}
    # MLflow's convention for a sweep: a parent run with the jobs as its children.
    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    exp_id = client.get_experiment_by_name("sweep-submitit").experiment_id
    (parent,) = client.search_runs([exp_id], filter_string="tags.`prefharness.sweep_parent` = '1'")
    assert parent.info.status == "FINISHED" and parent.info.run_name == "sweep-kl_coef"
    assert {r.data.tags["mlflow.parentRunId"] for r in runs} == {parent.info.run_id}
    assert parent.data.params["grid.loss.beta"] == "0.2,0.4,0.6,0.8" and parent.data.metrics["sweep/jobs_finished"] == 4
    assert parent.data.tags["sweep.best_run"] in {r.info.run_id for r in runs}
    # Launched again: nothing reruns, the same parent is reused, no new run appears.
    again = multirun(["+sweep=kl_coef", "experiment=smoke", "hydra/launcher=submitit_local", grid,
                      f"hydra.sweep.dir={tmp_path / 'sweep'}"], env, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(client.search_runs([exp_id])) == 5
    parent = client.get_run(parent.info.run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["resumed"] == "1"
    # A report selects the sweep by its parent run, by name or id.
    report = subprocess.run([sys.executable, "-m", "harness.cli.report", "--experiment", "sweep-submitit",
                             "--parent", "sweep-kl_coef",
                             "--out", str(tmp_path / "report")], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert report.returncode == 0, report.stderr
    assert report.stdout.startswith("4 runs selected"), report.stdout

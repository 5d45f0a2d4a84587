"""Sweeps as users run them: `harness -m +sweep=…` with a local parallel (joblib) and a
submitit_local launcher; jobs share the artifacts they have in common and are tagged."""

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
    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert all(r.info.status == "FINISHED" for r in runs)
    return runs


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
    assert len({r.data.tags["artifact.reward_model"] for r in runs}) == 1
    # One computation of the shared reward model: in the jobs' logs and in the cache.
    logs = "".join(p.read_text() for p in sweep_dir.glob("*/*.log"))
    built = [line for line in logs.splitlines() if "artifact reward_model/" in line and ": building" in line]
    assert len(built) == 1, built
    assert len([p for p in (tmp_path / "cache" / "artifacts" / "reward_model").iterdir() if p.is_dir()]) == 1


@pytest.mark.timeout(900)
def test_two_job_sweep_on_submitit_local(harness_env: dict[str, str], tmp_path: Path) -> None:
    env = harness_env | {"MLFLOW_EXPERIMENT_NAME": "sweep-submitit"}
    proc = multirun(["+sweep=kl_coef", "experiment=smoke", "hydra/launcher=submitit_local", "loss.beta=0.2,0.4",
                     f"hydra.sweep.dir={tmp_path / 'sweep'}"], env, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = finished_runs(env, "sweep-submitit")
    assert sorted(r.data.params["loss.beta"] for r in runs) == ["0.2", "0.4"]  # the command line's grid wins
    assert {r.data.tags["sweep.name"] for r in runs} == {"kl_coef"}

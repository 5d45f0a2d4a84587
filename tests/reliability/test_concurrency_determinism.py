"""Many jobs against one MLflow store and one artifact cache, and reproducibility on CPU."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

pytestmark = pytest.mark.slow  # the CLI in subprocesses (python -m harness, 8 jobs in parallel): the slow tier


def harness(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=900)


@pytest.mark.timeout(900)  # eight smoke jobs on two cores: ~2 min
def test_eight_parallel_jobs_share_one_store_and_cache(harness_env: dict[str, str], tmp_path: Path) -> None:
    """8 joblib jobs start together on a fresh SQLite store and an empty cache: every run is
    recorded once, every shared artifact is built once, none is left half-written."""
    env = harness_env | {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'fresh.db'}",
                         "PREFHARNESS_CACHE": str(tmp_path / "cache"), "MLFLOW_EXPERIMENT_NAME": "eight"}
    betas = ",".join(str(0.05 * i) for i in range(1, 9))
    proc = harness(["-m", "experiment=smoke", f"loss.beta={betas}", "hydra/launcher=local_parallel",
                    "hydra.launcher.n_jobs=8", "threads=1", f"hydra.sweep.dir={tmp_path / 'sweep'}"], env, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    found = client.search_runs([client.get_experiment_by_name("eight").experiment_id])
    runs = [r for r in found if r.data.tags.get("prefharness.sweep_parent") != "1"]
    assert len(found) == 9  # and the sweep's parent run
    assert len(runs) == 8 and all(r.info.status == "FINISHED" for r in found)
    # Eight jobs logged the same datasets at once: each run has all four, stored once each.
    assert all(len(r.inputs.dataset_inputs) == 4 for r in runs)
    assert len({r.data.params["loss.beta"] for r in runs}) == 8
    logs = "".join(p.read_text() for p in (tmp_path / "sweep").glob("*/*.log"))
    for stage in ("samples", "labels", "ref_logps", "eval_initial"):
        building = [line for line in logs.splitlines() if f"artifact {stage}/" in line and ": building" in line]
        assert len(building) == 1, (stage, building)
    artifacts = tmp_path / "cache" / "artifacts"
    assert not list(artifacts.glob("*/.*tmp*")), "a temporary build directory was left behind"
    assert all((d / ".complete").exists() for d in artifacts.glob("*/*") if d.is_dir())


def test_same_config_and_seed_give_identical_metrics(harness_env: dict[str, str], tmp_path: Path) -> None:
    env = harness_env | {"MLFLOW_EXPERIMENT_NAME": "determinism"}
    for i in range(2):  # resume=false: a new run; a cache each: every stage computed twice
        proc = harness(["experiment=smoke", "loss=ppo", "loss.method.episodes=32", "resume=false",
                        f"hydra.run.dir={tmp_path / str(i)}"], env | {"PREFHARNESS_CACHE": str(tmp_path / f"cache{i}")},
                       tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    first, second = client.search_runs([client.get_experiment_by_name("determinism").experiment_id])
    assert first.info.run_id != second.info.run_id
    assert first.data.metrics == second.data.metrics

"""SIGKILL while sampling and while evaluating (training: tests/integration/test_resume.py):
running the same command again finishes the same MLflow run with the numbers of a run that was
never interrupted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

pytestmark = pytest.mark.slow  # the CLI in subprocesses (python -m harness, killed and rerun): the slow tier

ARGS = ["experiment=smoke", "loss=ppo", "loss.method.episodes=32"]
MARKERS = {"sampling": "artifact samples/", "evaluation": "evaluate: "}


def runs(env: dict[str, str], experiment: str) -> list:
    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id]) if exp else []


@pytest.fixture(scope="module")
def uninterrupted(harness_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 - an MLflow run
    """The same job run once without interruption, in a store and cache of its own (shared by
    the phases: it does not depend on where the others are killed)."""
    root = tmp_path_factory.mktemp("uninterrupted")
    env = harness_env | {"MLFLOW_EXPERIMENT_NAME": "kill-fresh", "PREFHARNESS_CACHE": str(root / "cache")}
    fresh = subprocess.run([sys.executable, "-m", "harness", *ARGS, f"hydra.run.dir={root / 'run'}"],
                           env=env, cwd=root, capture_output=True, text=True, timeout=600)
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    (run,) = runs(env, "kill-fresh")
    return run


@pytest.mark.timeout(600)  # three PPO runs
@pytest.mark.parametrize("phase", sorted(MARKERS))
def test_kill_resumes_to_the_uninterrupted_result(phase: str, harness_env: dict[str, str], tmp_path: Path,
                                                  uninterrupted) -> None:  # noqa: ANN001
    env = harness_env | {"MLFLOW_EXPERIMENT_NAME": f"kill-{phase}", "PREFHARNESS_CACHE": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "harness", *ARGS, f"hydra.run.dir={tmp_path / 'run'}"]
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:  # the log line that opens the phase
        if MARKERS[phase] in line and (phase != "sampling" or "building" in line):
            proc.kill()
            break
    proc.wait()
    (killed,) = runs(env, f"kill-{phase}")
    assert killed.info.status == "RUNNING"  # killed mid-way: nothing ended it

    again = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    (resumed,) = runs(env, f"kill-{phase}")
    assert resumed.info.run_id == killed.info.run_id and resumed.info.status == "FINISHED"

    for key, value in uninterrupted.data.metrics.items():
        if key.startswith(("eval/", "rm_val/")):
            assert resumed.data.metrics[key] == pytest.approx(value, abs=1e-5), key

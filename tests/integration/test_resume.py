"""A job killed with SIGKILL mid-training resumes when the same command runs again: the same
MLflow run continues from the last checkpoint, and ends with the numbers of an uninterrupted run."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest

pytestmark = pytest.mark.slow  # the CLI in subprocesses (python -m harness, killed and rerun): the slow tier

CASES = {
    # DPO: 29 pairs in batches of 4, 8 steps per epoch, 240 steps, a checkpoint every 5.
    "dpo": (["experiment=smoke", "trainer.max_epochs=30", "trainer.max_steps=-1", "train.checkpoint_every=5"],
            "train", "train/loss", 239),
    # PPO: 20 iterations of 16 episodes (one logged step each), a checkpoint every 2.
    "ppo": (["experiment=smoke", "loss=ppo", "loss.method.episodes=320", "train.checkpoint_every=2"],
            "ppo", "train/beta", 19),
}


def command(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "harness", *args]


def runs(env: dict[str, str], experiment: str) -> list:
    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id]) if exp else []


@pytest.mark.timeout(1200)  # four runs, one of 240 steps: 3-7 min on 2 busy cores
@pytest.mark.parametrize("loss", sorted(CASES))
def test_killed_run_resumes_to_the_same_finished_run(loss: str, harness_env: dict[str, str], workdir: Path,
                                                     tmp_path: Path) -> None:
    base, stage, metric, last_step = CASES[loss]
    env = harness_env | {"MLFLOW_EXPERIMENT_NAME": f"resume-{loss}", "PREFHARNESS_CACHE": str(tmp_path / "cache")}
    args = [*base, f"hydra.run.dir={tmp_path / 'run'}"]
    proc = subprocess.Popen(command(args), env=env, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    checkpoints = tmp_path / "cache" / "checkpoints"
    while not list(checkpoints.glob(f"*/{stage}.ckpt")):
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.05)
    proc.kill()  # SIGKILL: no handler runs, the MLflow run stays RUNNING
    proc.wait()
    (killed,) = runs(env, f"resume-{loss}")
    assert killed.info.status == "RUNNING"
    history = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"]).get_metric_history(killed.info.run_id, metric)
    assert max(m.step for m in history) < last_step  # killed before the end

    again = subprocess.run(command(args), env=env, cwd=workdir, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming from" in again.stdout + again.stderr
    (resumed,) = runs(env, f"resume-{loss}")  # no duplicate
    assert resumed.info.run_id == killed.info.run_id and resumed.info.status == "FINISHED"
    assert resumed.data.tags["resumed"] == "1"
    history = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"]).get_metric_history(resumed.info.run_id, metric)
    assert max(m.step for m in history) == last_step  # training went to its last step
    assert not list(checkpoints.glob("*/*.ckpt"))  # finished: checkpoints removed

    # The same configuration uninterrupted (another MLflow experiment: another job).
    fresh_env = env | {"MLFLOW_EXPERIMENT_NAME": f"resume-{loss}-uninterrupted"}
    fresh = subprocess.run(command([*base, f"hydra.run.dir={tmp_path / 'fresh'}"]), env=fresh_env, cwd=workdir,
                           capture_output=True, text=True, timeout=600)
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    (uninterrupted,) = runs(fresh_env, f"resume-{loss}-uninterrupted")
    for key in ("eval/kl", "eval/gold_reward", "eval/winrate_vs_init", metric):
        assert resumed.data.metrics[key] == pytest.approx(uninterrupted.data.metrics[key], abs=1e-4), key

    # Once finished, the same command does not run it again.
    third = subprocess.run(command(args), env=env, cwd=workdir, capture_output=True, text=True, timeout=600)
    assert third.returncode == 0 and "already finished" in third.stdout + third.stderr
    assert len(runs(env, f"resume-{loss}")) == 1

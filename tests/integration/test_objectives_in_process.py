"""Every objective in the `loss` config group (harness/conf/loss/*.yaml) end to end on the tiny
model, in the test process: composed with Hydra's compose API, built with build_experiment and
run with run_experiment against the session's throwaway MLflow store and a throwaway cache. A
new YAML in the group is run here with no edit to this file. (The same runs as a user makes
them, `python -m harness` in a subprocess, are in the slow tier: test_objectives.py,
test_tasks_e2e.py, test_smoke.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli.run import CONFIG_DIR
from tests.integration.in_process import run_in_process
from tests.integration.test_objectives import OBJECTIVE_METRICS

OBJECTIVES = sorted(p.stem for p in (Path(CONFIG_DIR) / "loss").glob("*.yaml"))

# Overrides that keep an objective's run test-sized on top of experiment=smoke; an objective
# not named here runs with the preset alone.
SMALL: dict[str, list[str]] = {
    "ppo": ["loss.method.episodes=8", "loss.method.settings.rollout_batch=4", "loss.method.settings.minibatch=4",
            "loss.method.settings.ppo_epochs=1"],
}

EVAL_METRICS = ["eval/gold_reward", "eval/kl", "eval/winrate_vs_init"]


def trains_with_train_settings(method: object) -> bool:
    """Methods that read train.* fit the policy in the Lightning loop that logs train/loss
    (offline objectives, SFT); the others (PPO, best-of-n, the reward model alone) list train.lr
    among the keys they ignore."""
    return "train.lr" not in type(method).ignores


@pytest.fixture(scope="module")
def cache_dir(tiny_cache: Path) -> Path:
    """The session's cache of tiny-model artifacts (conftest.py): the tiny model, samples and
    labels are built by the first run and reused by the others."""
    return tiny_cache


def test_the_loss_group_has_objectives() -> None:
    assert {"dpo", "ppo", "sft"} <= set(OBJECTIVES)


@pytest.mark.parametrize("loss", OBJECTIVES)
def test_objective_runs_in_process(loss: str, cache_dir: Path, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    overrides = ["experiment=smoke", f"loss={loss}", *SMALL.get(loss, []), f"paths.cache_dir={cache_dir}"]
    metrics, exp, run, _ = run_in_process(f"in-process-{loss}", overrides, tmp_path / "run", monkeypatch)
    assert run.info.status == "FINISHED" and run.data.tags["loss"] == loss
    expected = [*EVAL_METRICS, *(["train/loss"] if trains_with_train_settings(exp.method) else []),
                *OBJECTIVE_METRICS.get(loss, [])]
    for key in expected:
        assert key in run.data.metrics, key
    for key in EVAL_METRICS:
        assert metrics[key] == pytest.approx(run.data.metrics[key]), key

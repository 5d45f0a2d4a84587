"""The over-optimisation series on real runs of the tiny model, in process: DPO and PPO with
eval.every set log series/* at the expected steps of their MLflow run, and end exactly as the
same run without the series (the evaluations leave training untouched)."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from harness.eval.series import OVEROPTIMIZATION_TAG
from tests.integration.in_process import run_in_process

# experiment=smoke trains DPO for 4 steps (trainer=smoke); PPO for 12 / 4 = 3 iterations here.
RUNS = {
    "dpo": ([], [0, 2, 4], 4, ["train/loss"]),
    "ppo": (["loss.method.episodes=12", "loss.method.settings.rollout_batch=4", "loss.method.settings.minibatch=4",
             "loss.method.settings.ppo_epochs=1"], [0, 2], 3, ["train/reward", "train/kl", "train/policy_loss"]),
}
SERIES = ["series/gold_reward", "series/kl", "series/winrate_vs_init", "series/distinct_2", "series/length"]


@pytest.fixture(scope="module")
def cache_dir(tiny_cache: Path) -> Path:
    """The session's cache of tiny-model artifacts (conftest.py), shared with the other
    in-process runs: samples, labels and the reward model are built once."""
    return tiny_cache


def run(loss: str, every: int, cache_dir: Path, run_dir: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    overrides = ["experiment=smoke", f"loss={loss}", *RUNS[loss][0], f"eval.every={every}", "eval.series_prompts=8",
                 f"paths.cache_dir={cache_dir}"]
    metrics, _, mlflow_run, client = run_in_process(f"series-{loss}-every{every}", overrides, run_dir, monkeypatch)
    return metrics, mlflow_run, client


def history(client: mlflow.MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


@pytest.mark.parametrize("loss", sorted(RUNS))
def test_series_is_logged_and_leaves_training_untouched(loss: str, cache_dir: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    _, steps, end, train_keys = RUNS[loss]
    plain, plain_run, client = run(loss, 0, cache_dir, tmp_path / "plain", monkeypatch)
    watched, watched_run, _ = run(loss, 2, cache_dir, tmp_path / "watched", monkeypatch)
    run_id = watched_run.info.run_id

    for key in SERIES + (["series/proxy_reward"] if loss == "ppo" else []):
        assert [s for s, _ in history(client, run_id, key)] == steps, key
    assert history(client, run_id, "series/kl")[0] == (0, 0.0)  # the initial policy
    assert history(client, run_id, "series/winrate_vs_init")[0] == (0, 0.5)
    gold = history(client, run_id, "series/gold_reward")
    peak_step, peak = max(gold, key=lambda sv: (sv[1], -sv[0]))
    assert history(client, run_id, "series/gold_peak") == [(end, peak)]
    assert history(client, run_id, "series/gold_peak_step") == [(end, float(peak_step))]
    assert watched["series/gold_peak_step"] == peak_step  # in the run's summary line too
    if loss == "dpo":
        assert "series/proxy_reward" not in watched_run.data.metrics  # no reward model, no proxy
    # The warning (tag and step) comes as a pair or not at all.
    warned = "series/overoptimization_step" in watched_run.data.metrics
    assert (OVEROPTIMIZATION_TAG in watched_run.data.tags) == warned
    assert not any(k.startswith("series/") for k in plain_run.data.metrics)

    # Bit for bit: the same training curves and final evaluation as without the series, and
    # the same cached initial-policy eval samples.
    assert {k: v for k, v in watched.items() if k.startswith("eval/")} == plain
    for key in train_keys:
        assert history(client, run_id, key) == history(client, plain_run.info.run_id, key), key
    assert watched_run.data.tags["artifact.eval_initial"] == plain_run.data.tags["artifact.eval_initial"]

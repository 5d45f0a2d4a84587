"""Best-of-n with a pool (loss.pool): one draw of `pool` samples per eval prompt gives the whole
curve (bon/* at n = 1, 2, 4, …, pool) and the eval's best of the first n, on model=tiny."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from harness.methods.best_of_n import BestOfNPolicy, bon_kl, curve_points
from tests.integration.in_process import run_in_process


def test_curve_points_are_powers_of_two_and_the_pool() -> None:
    assert curve_points(1) == [1]
    assert curve_points(8) == [1, 2, 4, 8]
    assert curve_points(12) == [1, 2, 4, 8, 12]
    assert bon_kl(1) == 0.0 and bon_kl(4) == pytest.approx(math.log(4) - 0.75)


def test_a_pool_logs_the_best_of_n_curve_from_one_draw(tiny_cache: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, object] = {}
    original = BestOfNPolicy.curves

    def spy(self: BestOfNPolicy, examples, judge):  # noqa: ANN001, ANN202
        seen["scores"] = np.stack(self._scores)
        seen["gold"] = np.asarray(judge.gold([e for e, g in zip(examples, self._groups) for _ in g],
                                             [self.ctx.prep.tokenizer.decode(r, skip_special_tokens=True)
                                              for g in self._groups for r in g]))
        return original(self, examples, judge)

    monkeypatch.setattr(BestOfNPolicy, "curves", spy)
    metrics, _, run, client = run_in_process(
        "bon-pool", ["experiment=smoke", "model.trainable_layers=1", "loss=best_of_n", "loss.n=2", "loss.pool=8",
                     "eval.n_prompts=6", f"paths.cache_dir={tiny_cache}"], tmp_path / "run", monkeypatch)
    history = {key: {m.step: m.value for m in client.get_metric_history(run.info.run_id, key)}
               for key in ("bon/gold_reward", "bon/proxy_reward", "bon/kl")}
    assert all(sorted(points) == [1, 2, 4, 8] for points in history.values())
    assert history["bon/kl"] == pytest.approx({n: bon_kl(n) for n in (1, 2, 4, 8)})
    scores, gold = seen["scores"], seen["gold"].reshape(6, 8)
    assert scores.shape == (6, 8)
    # n = 1 is a plain sample: the pool's mean; n = pool keeps each prompt's top-scored sample.
    assert history["bon/gold_reward"][1] == pytest.approx(gold.mean())
    assert history["bon/proxy_reward"][8] == pytest.approx(scores.max(axis=1).mean())
    top = scores.argmax(axis=1)
    assert history["bon/gold_reward"][8] == pytest.approx(gold[np.arange(6), top].mean())
    assert history["bon/proxy_reward"][1] <= history["bon/proxy_reward"][4] <= history["bon/proxy_reward"][8]
    # The eval itself is best-of-2, from the pool's first two samples.
    assert metrics["eval/kl"] == pytest.approx(bon_kl(2))
    assert metrics["eval/proxy_reward"] == pytest.approx(scores[:, :2].max(axis=1).mean(), rel=1e-5)

"""Best-of-n: the reward model picks the best of n samples of the initial policy (no training)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from harness.data.collate import pack
from harness.eval.metrics import best_of_n_curve
from harness.errors import InputError
from harness.experiment import (EvalPolicy, EvalSettings, Experiment, Method, RewardModelSettings, TrainContext,
                                TrainSettings)
from harness.methods.policies import initial_policy_trained, reward_scores
from harness.models.reward import RewardModel
from harness.progress import ProgressBar
from harness.stages import eval_samples, reward_model
from harness.tasks.base import Example


def bon_kl(n: int) -> float:
    """KL(best-of-n ‖ π) = log n − (n−1)/n (Stiennon et al. 2020, App. G.3; an upper bound that is
    tight for continuous rewards)."""
    return math.log(n) - (n - 1) / n


def curve_points(pool: int) -> list[int]:
    """n = 1, 2, 4, … up to the pool, and the pool itself."""
    points = [2**i for i in range(pool.bit_length()) if 2**i <= pool]
    return points if points[-1] == pool else [*points, pool]


@dataclass
class BestOfNPolicy(EvalPolicy):
    """Sample n from the initial policy and keep the one the reward model scores highest. With a
    `pool` ≥ n, `pool` samples per prompt are drawn once: the eval keeps the best of the first n,
    and `curves` gives best-of-n for every n up to the pool from those same samples."""

    n: int
    reward_model: RewardModel
    ctx: TrainContext
    pool: int | None = None
    _groups: list[list[list[int]]] = field(default_factory=list, repr=False)
    _scores: list[np.ndarray] = field(default_factory=list, repr=False)

    def responses(self, eval_ids: Sequence[Sequence[int]], progress: ProgressBar) -> list[list[int]]:
        prep = self.ctx.prep
        k = max(self.n, self.pool or 0)
        groups = eval_samples(prep.policy, prep.tokenizer, eval_ids, self.ctx.exp, progress,
                              f"eval samples: best of {self.n}" + (f" (pool of {k})" if k > self.n else ""), k=k)
        best, self._groups, self._scores = [], [], []
        with torch.inference_mode():
            for p, group in zip(eval_ids, groups):
                scores = self.reward_model(pack([p] * len(group), group, prep.tokenizer.pad_token_id, True)).cpu().numpy()
                best.append(group[int(scores[: self.n].argmax())])
                self._groups.append(group)
                self._scores.append(scores)
        return best

    def curves(self, examples: Sequence[Example], judge: Any) -> dict[str, dict[int, float]]:
        """Over the pool: bon/gold_reward, bon/proxy_reward and bon/kl (analytic) at n = 1, 2, 4, …,
        pool, by the unbiased estimator (eval/metrics.py: best_of_n_curve)."""
        if not self.pool or not self._groups:
            return {}
        tokenizer = self.ctx.prep.tokenizer
        texts = [tokenizer.decode(r, skip_special_tokens=True) for group in self._groups for r in group]
        gold = judge.gold([e for e, group in zip(examples, self._groups) for _ in group], texts)
        if gold is None:
            return {}
        shape = (len(self._groups), self.pool)
        proxy = np.stack(self._scores)
        ns = curve_points(self.pool)
        return {"bon/gold_reward": best_of_n_curve(proxy, np.asarray(gold, dtype=np.float64).reshape(shape), ns),
                "bon/proxy_reward": best_of_n_curve(proxy, proxy, ns),
                "bon/kl": {n: bon_kl(n) for n in ns}}

    def trained_modules(self) -> dict[str, Any]:
        """The reward model; the policy only when the run fine-tuned it first (init.policy=sft)."""
        return initial_policy_trained(self.ctx) | {"reward_model": self.reward_model}

    def proxy_rewards(self, eval_ids: Sequence[Sequence[int]], responses: Sequence[Sequence[int]]) -> np.ndarray:
        return reward_scores(self.reward_model, eval_ids, responses, self.ctx.prep.tokenizer.pad_token_id)

    def kl(self, eval_ids: Sequence[Sequence[int]], responses: Sequence[Sequence[int]], progress: ProgressBar) -> np.ndarray:
        """The analytic KL of best-of-n to the base policy: log n − (n−1)/n."""
        return np.full(len(responses), bon_kl(self.n))


@dataclass
class BestOfN(Method):
    """`loss=best_of_n`: `n` samples per eval prompt, the reward model's favourite kept."""

    # The policy is not trained (the reward model's settings are loss.reward_model.*).
    ignores: ClassVar[tuple[str, ...]] = TrainSettings.POLICY_KEYS + EvalSettings.SERIES_KEYS

    reward_model: RewardModelSettings
    n: int
    pool: int | None = None  # samples per eval prompt for the whole best-of-n curve (bon/*)

    def __post_init__(self) -> None:
        if self.n < 1:
            raise InputError(f"loss.n must be ≥ 1, got {self.n}")
        if self.pool is not None and self.pool < self.n:
            raise InputError(f"loss.pool={self.pool}: expected null or a pool ≥ loss.n={self.n}")

    def check(self, exp: Experiment, examples: Sequence[Example]) -> None:
        self.reward_model.check_budget(len(examples))

    def fit(self, ctx: TrainContext) -> EvalPolicy:
        return BestOfNPolicy(self.n, reward_model(ctx, self.reward_model), ctx, self.pool)

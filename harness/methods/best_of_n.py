"""Best-of-n: the reward model picks the best of n samples of the initial policy (no training)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from harness.data.collate import pack
from harness.errors import InputError
from harness.experiment import (EvalPolicy, EvalSettings, Experiment, Method, RewardModelSettings, TrainContext,
                                TrainSettings)
from harness.methods.policies import initial_policy_trained, reward_scores
from harness.models.reward import RewardModel
from harness.progress import ProgressBar
from harness.stages import eval_samples, reward_model
from harness.tasks.base import Example


@dataclass
class BestOfNPolicy(EvalPolicy):
    """Sample n from the initial policy and keep the one the reward model scores highest."""

    n: int
    reward_model: RewardModel
    ctx: TrainContext

    def responses(self, eval_ids: Sequence[Sequence[int]], progress: ProgressBar) -> list[list[int]]:
        prep = self.ctx.prep
        groups = eval_samples(prep.policy, prep.tokenizer, eval_ids, self.ctx.exp, progress,
                              f"eval samples: best of {self.n}", k=self.n)
        best = []
        with torch.inference_mode():
            for p, group in zip(eval_ids, groups):
                scores = self.reward_model(pack([p] * len(group), group, prep.tokenizer.pad_token_id, True))
                best.append(group[int(scores.argmax())])
        return best

    def trained_modules(self) -> dict[str, Any]:
        """The reward model; the policy only when the run fine-tuned it first (init.policy=sft)."""
        return initial_policy_trained(self.ctx) | {"reward_model": self.reward_model}

    def proxy_rewards(self, eval_ids: Sequence[Sequence[int]], responses: Sequence[Sequence[int]]) -> np.ndarray:
        return reward_scores(self.reward_model, eval_ids, responses, self.ctx.prep.tokenizer.pad_token_id)

    def kl(self, eval_ids: Sequence[Sequence[int]], responses: Sequence[Sequence[int]], progress: ProgressBar) -> np.ndarray:
        """The analytic KL of best-of-n to the base policy: log n − (n−1)/n."""
        return np.full(len(responses), math.log(self.n) - (self.n - 1) / self.n)


@dataclass
class BestOfN(Method):
    """`loss=best_of_n`: `n` samples per eval prompt, the reward model's favourite kept."""

    # The policy is not trained (the reward model's settings are loss.reward_model.*).
    ignores: ClassVar[tuple[str, ...]] = TrainSettings.POLICY_KEYS + EvalSettings.SERIES_KEYS

    reward_model: RewardModelSettings
    n: int

    def __post_init__(self) -> None:
        if self.n < 1:
            raise InputError(f"loss.n must be ≥ 1, got {self.n}")

    def check(self, exp: Experiment, examples: Sequence[Example]) -> None:
        self.reward_model.check_budget(len(examples))

    def fit(self, ctx: TrainContext) -> EvalPolicy:
        return BestOfNPolicy(self.n, reward_model(ctx, self.reward_model), ctx)

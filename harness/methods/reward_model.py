"""`loss=reward_model`: the reward-model stage alone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from harness.experiment import (EvalPolicy, EvalSettings, Experiment, Method, RewardModelSettings, TrainContext,
                                TrainSettings)
from harness.methods.policies import InitialPolicy
from harness.stages import reward_model
from harness.tasks.base import Example


@dataclass
class RewardModelOnly(Method):
    """Train (or load) the reward model and log its rm_train/*, rm_val/* summary; the policy
    evaluated is the initial one.

    The artifact is keyed by the labels and `loss.reward_model`, so PPO and best-of-n runs with
    the same settings load it instead of training it again.
    """

    ignores: ClassVar[tuple[str, ...]] = TrainSettings.POLICY_KEYS + EvalSettings.SERIES_KEYS

    reward_model: RewardModelSettings

    def check(self, exp: Experiment, examples: Sequence[Example]) -> None:
        self.reward_model.check_budget(len(examples))

    def fit(self, ctx: TrainContext) -> EvalPolicy:
        return InitialPolicy(ctx, reward_model=reward_model(ctx, self.reward_model))

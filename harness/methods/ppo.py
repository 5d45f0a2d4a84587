"""Ziegler et al. (2019): a reward model trained on the labels, then PPO against it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch

from harness.cache import stage_seed
from harness.data.resumable import ResumableBatches
from harness.experiment import EvalPolicy, Experiment, Method, PPOSettings, RewardModelSettings, TrainContext, TrainSettings
from harness.methods.policies import SampledPolicy, eval_series
from harness.models.loading import load_causal_lm
from harness.modules.ppo import PPOModule
from harness.rl.kl_control import AdaptiveKL, FixedKL
from harness.stages import reward_model, task_stop
from harness.tasks.base import Example
from harness.training import fit


@dataclass
class PPO(Method):
    """Reward model, then PPO with a per-token KL penalty (fixed or adaptive β) for `episodes`
    rollouts in all. Gradients are clipped at `trainer.gradient_clip_val`."""

    # Its optimiser and batches are loss.method.settings.
    ignores: ClassVar[tuple[str, ...]] = TrainSettings.POLICY_KEYS

    reward_model: RewardModelSettings
    settings: PPOSettings
    kl: FixedKL | AdaptiveKL
    episodes: int

    def check(self, exp: Experiment, examples: Sequence[Example]) -> None:
        self.reward_model.check_budget(len(examples))

    def fit(self, ctx: TrainContext) -> EvalPolicy:
        exp, prep = ctx.exp, ctx.prep
        rm = reward_model(ctx, self.reward_model)
        reference, _ = load_causal_lm(prep.policy_dir)
        examples = prep.train_examples
        judge = exp.evaluator
        module = PPOModule(prep.policy, reference, rm, prep.tokenizer, prep.train_ids, self.kl, self.settings,
                           max_grad_norm=exp.trainer_kwargs.get("gradient_clip_val"),
                           gold_fn=lambda idx, texts: judge.gold([examples[i] for i in idx], texts),
                           seed=stage_seed(exp.seed, "ppo"), stop=task_stop(prep.tokenizer, exp))
        # Prompts drawn with replacement, `rollout_batch` per iteration, resumable mid-run.
        prompts = ResumableBatches(range(len(prep.train_ids)), self.settings.rollout_batch, torch.tensor,
                                   seed=stage_seed(exp.seed, "ppo"), num_samples=self.episodes)
        # Manual optimisation: PPO clips its own gradients (Lightning refuses gradient_clip_val
        # with it) and counts iterations, not steps.
        overrides = {"gradient_clip_val": None, "max_steps": -1, "max_epochs": 1, "limit_val_batches": 0,
                     "log_every_n_steps": 1}  # an iteration is expensive: log each one
        # The series (eval.every iterations) scores the reward model's proxy against the gold.
        fit(exp, exp.run_key, "ppo", module, train=prompts,
            callbacks=eval_series(ctx, module.policy, reference=reference, reward_model=rm), **overrides)
        return SampledPolicy(module.policy, ctx, reward_model=rm)

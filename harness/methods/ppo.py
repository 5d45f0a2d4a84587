"""Ziegler et al. (2019): a reward model trained on the labels, then PPO against it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from harness.cache import stage_seed
from harness.data.resumable import ResumableBatches
from harness.errors import InputError
from harness.experiment import EvalPolicy, Experiment, Method, PPOSettings, even_shares, RewardModelSettings, TrainContext, TrainSettings
from harness.methods.policies import SampledPolicy, eval_series
from harness.models.lora import initial_reference
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

    online: ClassVar[bool] = True  # Ziegler et al.'s online mode: the reward model refit each round
    # Not yet: each process would normalise its own rewards, whiten its own advantages and feed
    # the KL controller its own KL; those must be all-reduced first.
    data_parallel: ClassVar[bool] = False

    reward_model: RewardModelSettings
    settings: PPOSettings
    kl: FixedKL | AdaptiveKL
    episodes: int
    # Online rounds: the value head carried into the next round (the policy is trained in place).
    _value_head: dict[str, torch.Tensor] | None = field(default=None, init=False, repr=False)

    def check(self, exp: Experiment, examples: Sequence[Example]) -> None:
        self.reward_model.check_budget(len(examples))
        if self.episodes < exp.labels.rounds:
            raise InputError(f"labels.rounds={exp.labels.rounds}: each round runs a share of loss.method.episodes="
                             f"{self.episodes}, fewer than one episode per round; raise it or lower labels.rounds")

    def round_episodes(self, exp: Experiment, r: int) -> int:
        """Round r's share of the episodes (the earlier rounds take the remainder)."""
        return even_shares(self.episodes, exp.labels.rounds)[r]

    def fit(self, ctx: TrainContext) -> EvalPolicy:
        """The reward model on the labels in `ctx` (online: every comparison so far, refit from
        the initial trunk), then PPO from the current policy: all the episodes offline, the
        round's share online, with the value head and β where the last round left them."""
        exp, prep = ctx.exp, ctx.prep
        online = exp.labels.rounds > 1
        stage = f"ppo-round{ctx.round}" if online else "ppo"
        rm = reward_model(ctx, self.reward_model)
        reference = ctx.reference if ctx.reference is not None else initial_reference(prep.policy_dir, prep.policy)
        examples = prep.train_examples
        judge = exp.evaluator
        module = PPOModule(prep.policy, reference, rm, prep.tokenizer, prep.train_ids, self.kl, self.settings,
                           max_grad_norm=exp.trainer_kwargs.get("gradient_clip_val"),
                           gold_fn=lambda idx, texts: judge.gold([examples[i] for i in idx], texts),
                           seed=stage_seed(exp.seed, stage), stop=task_stop(prep.tokenizer, exp))
        if online and self._value_head is not None:
            module.value_head.load_state_dict(self._value_head)
        # Prompts drawn with replacement, `rollout_batch` per iteration, resumable mid-run.
        episodes = self.round_episodes(exp, ctx.round) if online else self.episodes
        prompts = ResumableBatches(range(len(prep.train_ids)), self.settings.rollout_batch, torch.tensor,
                                   seed=stage_seed(exp.seed, stage), num_samples=episodes)
        # Manual optimisation: PPO clips its own gradients (Lightning refuses gradient_clip_val
        # with it) and counts iterations, not steps.
        overrides = {"gradient_clip_val": None, "max_steps": -1, "max_epochs": 1, "limit_val_batches": 0,
                     "log_every_n_steps": 1}  # an iteration is expensive: log each one
        # The series (eval.every iterations) scores the reward model's proxy against the gold.
        fit(exp, exp.run_key, stage, module, train=prompts,
            callbacks=eval_series(ctx, module.policy, reference=reference, reward_model=rm), **overrides)
        self._value_head = {k: v.detach().clone() for k, v in module.value_head.state_dict().items()}
        return SampledPolicy(module.policy, ctx, reward_model=rm)

    def round_state(self) -> dict[str, Any]:
        return {"value_head": self._value_head or {}, "beta": float(self.kl.beta)}

    def load_round_state(self, state: dict[str, Any]) -> None:
        self._value_head = state.get("value_head") or None
        if "beta" in state:
            self.kl.beta = float(state["beta"])

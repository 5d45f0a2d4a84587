"""The policies that evaluation sees: a trained policy sampled, or the initial one unchanged;
and the series that watches a policy while it trains (`eval_series`)."""

from __future__ import annotations

import logging

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from harness.data.collate import pack
from harness.eval.series import EvalSeries, Probe
from harness.experiment import EvalPolicy, TrainContext
from harness.models.forward import batched_logps
from harness.models.lora import initial_reference
from harness.models.reward import RewardModel
from harness.models.sampling import Samples, reference_logps
from harness.progress import ProgressBar
from harness.stages import eval_samples_with_logps

log = logging.getLogger(__name__)


@torch.inference_mode()
def reward_scores(reward_model: RewardModel, prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]],
                  pad_id: int, batch_size: int = 32) -> np.ndarray:
    """The reward model's normalised score of each response: the proxy reward."""
    device = next(reward_model.parameters()).device
    scores = [reward_model(pack(prompts[i : i + batch_size], responses[i : i + batch_size], pad_id).to(device))
              for i in range(0, len(prompts), batch_size)]
    return torch.cat(scores).cpu().numpy() if scores else np.zeros(0)


def eval_series(ctx: TrainContext, policy: Any, *, reference: Any = None,
                reward_model: RewardModel | None = None) -> list[EvalSeries]:
    """The over-optimisation series (eval/series.py) as a callback for `training.fit`, or none
    with eval.every=0: `policy` sampled on the first eval.series_prompts eval prompts as the
    evaluate stage samples (eval_samples_with_logps), KL against `reference` (the initial policy, loaded
    on first use when not given), the proxy reward where there is a reward model (PPO).
    An eval set smaller than eval.series_prompts (a test-sized task) is used whole."""
    exp, prep = ctx.exp, ctx.prep
    if exp.eval.every == 0:
        return []
    n, tokenizer = min(exp.eval.series_prompts, len(prep.eval_ids)), prep.tokenizer
    if n < exp.eval.series_prompts:
        log.info("series: eval.series_prompts=%d, but the eval set has %d prompts: the series uses all of them",
                 exp.eval.series_prompts, n)
    pad = tokenizer.pad_token_id
    probe = Probe(
        tokenizer, exp.evaluator, prep.eval_examples[:n], prep.eval_ids[:n], ctx.initial_ids[:n],
        sample=lambda model, prompts: eval_samples_with_logps(model, tokenizer, prompts, exp, None, "series samples"),
        reference=(lambda: reference) if reference is not None else (lambda: initial_reference(prep.policy_dir, policy)),
        temperature=exp.eval.temperature, batch_size=exp.eval.batch_size,
        proxy=None if reward_model is None else (lambda prompts, responses: reward_scores(reward_model, prompts,
                                                                                        responses, pad)),
    )
    return [EvalSeries(probe, policy, every=exp.eval.every, patience=exp.eval.patience, tracker=exp.tracker)]


@dataclass
class SampledPolicy(EvalPolicy):
    """A trained policy evaluated by sampling; KL by log-probs against the initial policy.
    With the reward model it optimised (PPO), it also reports that model's scores."""

    model: Any
    ctx: TrainContext
    reward_model: RewardModel | None = None
    # The responses `responses` last returned, with what sampling them computed (log-probs, states).
    _sampled: Samples | None = field(default=None, repr=False)

    def trained_modules(self) -> dict[str, Any]:
        return {"policy": self.model} | ({"reward_model": self.reward_model} if self.reward_model is not None else {})

    def proxy_rewards(self, eval_ids: Sequence[Sequence[int]], responses: Sequence[Sequence[int]]) -> np.ndarray | None:
        if self.reward_model is None:
            return None
        return reward_scores(self.reward_model, eval_ids, responses, self.ctx.prep.tokenizer.pad_token_id)

    def responses(self, eval_ids: Sequence[Sequence[int]], progress: ProgressBar) -> list[list[int]]:
        self._sampled = eval_samples_with_logps(self.model, self.ctx.prep.tokenizer, eval_ids, self.ctx.exp,
                                                progress, "eval samples: trained policy")
        return self._sampled.responses

    def kl(self, eval_ids: Sequence[Sequence[int]], responses: Sequence[Sequence[int]], progress: ProgressBar) -> np.ndarray:
        """log π(y) − log π_ref(y) per eval sample, both at the eval temperature; log π of the
        policy's own samples as its sampler computed them, log π_ref from the states it recorded
        below the frozen boundary (`reference_logps`)."""
        exp, pad = self.ctx.exp, self.ctx.prep.tokenizer.pad_token_id
        reference = initial_reference(self.ctx.prep.policy_dir, self.model)
        args = (pad, exp.eval.batch_size, exp.eval.temperature, progress)
        sampled = self._sampled
        if sampled is None or sampled.responses != list(responses):
            sampled = Samples([list(r) for r in responses],
                              batched_logps(self.model, eval_ids, responses, *args, "eval KL: policy"))
        return np.asarray(sampled.logps) - np.asarray(reference_logps(reference, self.model, eval_ids, sampled, *args,
                                                                      "eval KL: reference"))


def initial_policy_trained(ctx: TrainContext) -> dict[str, Any]:
    """The initial policy among what a run trained when it is not the base model: fine-tuned
    first (init.policy=sft)."""
    return {"policy": ctx.prep.policy} if ctx.exp.init.policy == "sft" else {}


@dataclass
class InitialPolicy(EvalPolicy):
    """The initial policy, unchanged: its cached eval responses, KL 0. `reward_model`: the one
    the run trained (loss=reward_model), logged with the run."""

    ctx: TrainContext
    reward_model: RewardModel | None = None

    def trained_modules(self) -> dict[str, Any]:
        trained = initial_policy_trained(self.ctx)
        return trained | ({"reward_model": self.reward_model} if self.reward_model is not None else {})

    def responses(self, eval_ids: Sequence[Sequence[int]], progress: ProgressBar) -> list[list[int]]:
        return [list(r) for r in self.ctx.initial_ids]

    def kl(self, eval_ids: Sequence[Sequence[int]], responses: Sequence[Sequence[int]], progress: ProgressBar) -> np.ndarray:
        return np.zeros(len(responses))

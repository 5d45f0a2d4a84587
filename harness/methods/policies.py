"""The policies that evaluation sees: a trained policy sampled, or the initial one unchanged."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from harness.data.collate import pack
from harness.experiment import EvalPolicy, TrainContext
from harness.models.forward import batched_logps
from harness.models.loading import load_causal_lm
from harness.models.reward import RewardModel
from harness.progress import ProgressBar
from harness.stages import eval_samples


@torch.inference_mode()
def reward_scores(reward_model: RewardModel, prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]],
                  pad_id: int, batch_size: int = 32) -> np.ndarray:
    """The reward model's normalised score of each response: the proxy reward."""
    device = next(reward_model.parameters()).device
    scores = [reward_model(pack(prompts[i : i + batch_size], responses[i : i + batch_size], pad_id).to(device))
              for i in range(0, len(prompts), batch_size)]
    return torch.cat(scores).cpu().numpy() if scores else np.zeros(0)


@dataclass
class SampledPolicy(EvalPolicy):
    """A trained policy evaluated by sampling; KL by log-probs against the initial policy.
    With the reward model it optimised (PPO), it also reports that model's scores."""

    model: Any
    ctx: TrainContext
    reward_model: RewardModel | None = None

    def proxy_rewards(self, eval_ids: Sequence[Sequence[int]], responses: Sequence[Sequence[int]]) -> np.ndarray | None:
        if self.reward_model is None:
            return None
        return reward_scores(self.reward_model, eval_ids, responses, self.ctx.prep.tokenizer.pad_token_id)

    def responses(self, eval_ids: Sequence[Sequence[int]], progress: ProgressBar) -> list[list[int]]:
        return eval_samples(self.model, self.ctx.prep.tokenizer, eval_ids, self.ctx.exp, progress,
                            "eval samples: trained policy")

    def kl(self, eval_ids: Sequence[Sequence[int]], responses: Sequence[Sequence[int]], progress: ProgressBar) -> np.ndarray:
        """log π(y) − log π_ref(y) per eval sample, both at the eval temperature."""
        exp, pad = self.ctx.exp, self.ctx.prep.tokenizer.pad_token_id
        reference, _ = load_causal_lm(self.ctx.prep.policy_dir)
        args = (eval_ids, responses, pad, exp.eval.batch_size, exp.eval.temperature, progress)
        return np.asarray(batched_logps(self.model, *args, "eval KL: policy")) - np.asarray(
            batched_logps(reference, *args, "eval KL: reference"))


@dataclass
class InitialPolicy(EvalPolicy):
    """The initial policy, unchanged: its cached eval responses, KL 0."""

    ctx: TrainContext

    def responses(self, eval_ids: Sequence[Sequence[int]], progress: ProgressBar) -> list[list[int]]:
        return [list(r) for r in self.ctx.initial_ids]

    def kl(self, eval_ids: Sequence[Sequence[int]], responses: Sequence[Sequence[int]], progress: ProgressBar) -> np.ndarray:
        return np.zeros(len(responses))

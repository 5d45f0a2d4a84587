"""PPO against a reward model with a per-token KL penalty (Ziegler et al., 2019, §2.2).

One training step is one PPO iteration: roll out a batch of episodes with `generate` (whose
logits and final hidden states give the old log-probs and values: no second policy pass), cut
at the task's stop (models/sampling.py `Stop`), score them with the reward model (a fixed
`unfinished_score` for a response that never stopped, where set), form KL-penalised per-token
rewards against the frozen reference, whiten them (std only), estimate advantages with GAE,
whiten those per rollout or per minibatch, then run several epochs of clipped policy and value
updates over minibatches (manual optimisation). The value head sits on the policy's trunk.
With the bottom blocks frozen (`model.trainable_layers`), the states entering the first
trainable block are recorded while sampling and every later forward of the rollout (the
epochs', the reference's) runs only the blocks above them (models/trunk.py).
Which of these follow Ziegler et al.'s code, and how, is in PPOSettings' docstring.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence

import lightning as L
import numpy as np
import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from harness.data.collate import TokenBatch, pack
from harness.experiment import PPOSettings
from harness.losses.ppo import masked_mean, ppo_policy_loss, ppo_value_loss
from harness.models.forward import forward_response, without_dropout
from harness.models.reward import RewardModel
from harness.models.sampling import Stop, generate_responses, rollout_logits_bytes, sample_rollout
from harness.models.trunk import frozen_blocks, same_bottom, split
from harness.modules.optim import adamw
from harness.rl.advantages import gae, kl_penalized_rewards, whiten
from harness.rl.kl_control import AdaptiveKL, FixedKL

log = logging.getLogger(__name__)
GoldFn = Callable[[Sequence[int], Sequence[str]], np.ndarray | None]  # (prompt indices, texts) -> gold
# Old log-probs come from the rollout's own logits while generate's per-step logits of a
# rollout take at most this many bytes; above it (large batches × vocabularies × lengths) the
# rollout is sampled plainly and the policy runs once over it.
ROLLOUT_LOGITS_BUDGET = 1 << 30


class PPOModule(L.LightningModule):
    def __init__(
        self,
        policy: PreTrainedModel,
        reference: PreTrainedModel,
        reward_model: RewardModel,
        tokenizer: PreTrainedTokenizerBase,
        prompt_ids: Sequence[Sequence[int]],
        kl_controller: FixedKL | AdaptiveKL,
        settings: PPOSettings,
        max_grad_norm: float | None = None,
        gold_fn: GoldFn | None = None,
        seed: int = 0,
        stop: Stop | None = None,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.policy = policy
        hidden = policy.config.hidden_size
        self.value_head = nn.Linear(hidden, 1)
        nn.init.zeros_(self.value_head.bias)
        if settings.value_head_init == "zero":
            nn.init.zeros_(self.value_head.weight)
        else:  # lm-human-preferences' fc_layer default scale 1/√(d+1), their reward head's
            with torch.random.fork_rng():
                torch.manual_seed(seed)
                nn.init.normal_(self.value_head.weight, std=1 / math.sqrt(hidden + 1))
        # Frozen models are kept out of the module's parameters (and checkpoints).
        self._frozen = (reference.eval().requires_grad_(False), reward_model.eval().requires_grad_(False))
        self.tokenizer = tokenizer
        self.prompt_ids = [list(p) for p in prompt_ids]
        self.kl = kl_controller
        self.s = settings
        self.max_grad_norm = max_grad_norm  # None: no clipping
        self.gold_fn = gold_fn
        self.seed = seed
        self.stop = stop or Stop(tokenizer.eos_token_id)
        self._negative_kl_streak = 0
        # Old and new log-probs must come from the same deterministic network; the reference
        # and the reward model run in eval mode.
        without_dropout(policy)
        # Below the policy's frozen blocks every forward of a rollout computes the same states:
        # recorded while sampling, they start the epochs' forwards, and the reference's when it
        # has the same bottom (the initial weights, frozen).
        self.states_at = frozen_blocks(policy)
        self._reference_shares = bool(self.states_at) and same_bottom(policy, reference, self.states_at)

    def on_fit_start(self) -> None:
        for model in self._frozen:
            model.to(self.device)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # The adaptive β is state that a resumed run must continue from, like the weights.
        checkpoint["kl_controller"] = {"beta": self.kl.beta, "negative_kl_streak": self._negative_kl_streak}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("kl_controller", {})
        self.kl.beta = float(state.get("beta", self.kl.beta))
        self._negative_kl_streak = int(state.get("negative_kl_streak", 0))

    def _policy_forward(self, tokens: TokenBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logps, hidden, logits = forward_response(self.policy, tokens, self.s.temperature, hidden=True)
        values = self.value_head(hidden).squeeze(-1) * tokens.response_mask  # (B, R)
        logp_all = logits.log_softmax(-1)
        entropy = -(logp_all.exp() * logp_all).sum(-1)  # (B, R)
        return logps, values, entropy

    @torch.no_grad()
    def rollout(self, indices: Sequence[int]) -> dict:
        prompts = [self.prompt_ids[i] for i in indices]
        seed = self.seed * 1_000_003 + self.global_step
        if rollout_logits_bytes(self.policy, len(prompts), self.s.max_new_tokens) <= ROLLOUT_LOGITS_BUDGET:
            # The sampler's own logits and final states give the old log-probs and values: no
            # second policy pass (tests/unit/test_rollout.py checks they match one).
            sampled = sample_rollout(self.policy, self.tokenizer, prompts, max_new_tokens=self.s.max_new_tokens,
                                     temperature=self.s.temperature, seed=seed, stop=self.stop,
                                     states_at=self.states_at)
            responses, tokens = sampled.responses, sampled.tokens.to(self.device)
            old_logps = sampled.logps.to(self.device)
            old_values = self.value_head(sampled.hidden.to(self.device)).squeeze(-1) * tokens.response_mask
        else:  # the step logits would not fit: sample plainly, then one policy pass
            responses = [r[0] for r in generate_responses(
                self.policy, self.tokenizer, prompts, max_new_tokens=self.s.max_new_tokens,
                temperature=self.s.temperature, k=1, batch_size=len(prompts), seed=seed, stop=self.stop)]
            tokens = pack(prompts, responses, self.tokenizer.pad_token_id).to(self.device)
            if self.states_at:
                tokens = tokens.with_states(split(self.policy, self.states_at).bottom(
                    tokens.input_ids, tokens.attention_mask), self.states_at)
            self.policy.eval()
            old_logps, old_values, _ = self._policy_forward(tokens)
        mask = tokens.response_mask.float()
        reference, reward_model = self._frozen
        ref_tokens = tokens if self._reference_shares else tokens.with_states(None, 0)
        ref_logps = forward_response(reference, ref_tokens, self.s.temperature)[0]
        # Not from the rollout's states: the last sampled token's (never fed back) is missing, and
        # the reward model pools over every response token.
        scores = reward_model(tokens.with_states(None, 0))  # (B,) normalised
        finished = torch.tensor([self.stop.finished(r) for r in responses], device=self.device)
        if self.s.unfinished_score is not None:
            scores = torch.where(finished, scores, torch.full_like(scores, self.s.unfinished_score))
        rewards = kl_penalized_rewards(scores, old_logps, ref_logps, mask, self.kl.beta)
        if self.s.whiten_rewards:
            rewards = whiten(rewards, mask, shift_mean=False)
        advantages, returns = gae(rewards, old_values, mask, self.s.gamma, self.s.lam)
        if self.s.whiten_advantages == "batch":
            advantages = whiten(advantages, mask)
        texts = [self.tokenizer.decode(r, skip_special_tokens=True) for r in responses]
        return {
            "tokens": tokens, "mask": mask, "old_logps": old_logps, "old_values": old_values,
            "advantages": advantages, "returns": returns, "scores": scores,
            "kl": ((old_logps - ref_logps) * mask).sum(1), "texts": texts, "indices": list(indices),
            "finished": finished.float(), "rewards": rewards, "ref_logps": ref_logps,
        }

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        ro = self.rollout(batch.tolist())
        opt = self.optimizers()
        self.policy.train()
        n = len(ro["texts"])
        stats: dict[str, list[float]] = {k: [] for k in ("policy_loss", "value_loss", "clipfrac", "approx_kl", "entropy")}
        for _ in range(self.s.ppo_epochs):
            order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed + self.global_step))
            for start in range(0, n, self.s.minibatch):
                idx = order[start : start + self.s.minibatch].to(self.device)
                tokens = ro["tokens"].select(idx)
                mask = ro["mask"][idx]
                logps, values, entropy = self._policy_forward(tokens)
                advantages = ro["advantages"][idx]
                if self.s.whiten_advantages == "minibatch":
                    advantages = whiten(advantages, mask)
                pl, pm = ppo_policy_loss(logps, ro["old_logps"][idx], advantages, mask, self.s.clip_eps)
                vl, _ = ppo_value_loss(values, ro["old_values"][idx], ro["returns"][idx], mask, self.s.vf_clip_eps)
                loss = pl + self.s.vf_coef * vl
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"PPO loss is {loss.item()} at step {self.global_step}")
                opt.zero_grad()
                self.manual_backward(loss)
                if self.max_grad_norm:
                    self.clip_gradients(opt, gradient_clip_val=self.max_grad_norm, gradient_clip_algorithm="norm")
                opt.step()
                for key, value in (("policy_loss", pl), ("value_loss", vl), ("clipfrac", pm["clipfrac"]),
                                   ("approx_kl", pm["approx_kl"]), ("entropy", masked_mean(entropy.detach(), mask))):
                    stats[key].append(float(value.detach()))
        kl = float(ro["kl"].mean())
        score = float(ro["scores"].mean())
        if not (math.isfinite(kl) and math.isfinite(score)):
            raise FloatingPointError(f"PPO step {self.global_step}: KL {kl}, reward {score} is not finite")
        # A KL that stays negative means samples do not come from the distribution whose
        # log-probs we compute (e.g. a generation setting the log-probs ignore).
        self._negative_kl_streak = self._negative_kl_streak + 1 if kl < 0 else 0
        if self._negative_kl_streak == 3:
            log.warning("KL estimate negative for 3 iterations in a row (%.3f): check that sampling settings "
                        "(temperature, top_p, top_k) match the log-prob computation", kl)
        metrics = {f"train/{k}": float(np.mean(v)) for k, v in stats.items()}
        metrics |= {"train/reward": score, "train/kl": kl, "train/beta": self.kl.beta,
                    "train/length": float(ro["mask"].sum(1).mean()), "train/finished": float(ro["finished"].mean())}
        gold = self.gold_fn(ro["indices"], ro["texts"]) if self.gold_fn is not None else None
        if gold is not None:
            metrics["train/gold_reward"] = float(np.mean(gold))
        self.kl.update(kl, n_steps=n)
        self.log_dict(metrics, on_step=True, on_epoch=False, prog_bar=False, batch_size=n)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        params = [p for p in self.policy.parameters() if p.requires_grad] + list(self.value_head.parameters())
        return adamw(params, self, lr=self.s.lr, eps=self.s.adam_eps, weight_decay=self.s.weight_decay)

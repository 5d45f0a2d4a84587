"""Offline preference optimisation of a causal LM as one LightningModule.

The objective is injected as a pure loss function; the module does not know which objective
it trains, only the shape of its data:
- pairs (`PairBatch`): loss_fn(policy_chosen, policy_rejected, ref_chosen, ref_rejected)
  for DPO, IPO, SimPO, ORPO;
- unpaired examples (`UnpairedBatch`): loss_fn(policy, ref, desirable, policy_kl, ref_kl)
  for KTO, where the last two score mismatched prompt–response pairs.
Every argument is a (B,) tensor of sequence log-probs (Σ_t log π(y_t | x, y_<t)) or, with
`length_normalized`, of per-token averages (SimPO, ORPO). Reference log-probs come with the
batch (computed once and cached) or, when a `reference` model is given, are computed here on
the fly.
"""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
import torch
from transformers import PreTrainedModel

from harness.data.collate import TokenBatch
from harness.data.preference import PairBatch, UnpairedBatch
from harness.distributed import share_weight
from harness.models.forward import forward_response, forward_with_detached_twin, without_dropout
from harness.models.trunk import StateTable
from harness.modules.optim import adamw_with_warmup

Metrics = dict[str, torch.Tensor]
PairLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, Metrics]]
UnpairedLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
                        tuple[torch.Tensor, Metrics]]


class OfflinePreferenceModule(L.LightningModule):
    def __init__(
        self,
        policy: PreTrainedModel,
        loss_fn: PairLoss | UnpairedLoss,
        lr: float,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
        disable_dropout: bool = True,
        length_normalized: bool = False,
        reference: PreTrainedModel | None = None,
        states: StateTable | None = None,
    ) -> None:
        """`states`: the boundary states of every row below the policy's frozen blocks
        (trunk.StateTable: the sampler's for sampled rows, computed once for KTO's mismatched
        pairs): the policy's (and an online reference's) forwards then run the trainable blocks
        only."""
        super().__init__()
        self.states = states
        self.policy = policy
        if disable_dropout:
            # Reference log-probs were computed without dropout; training with it would
            # compare a noisy policy with a clean reference (TRL does the same).
            without_dropout(policy)
        self.loss_fn = loss_fn
        self.lr = lr
        self.weight_decay = weight_decay
        self.warmup_steps = warmup_steps
        self.length_normalized = length_normalized
        # Kept out of the module tree: frozen, never saved with the policy's checkpoint.
        self._reference = (reference.eval().requires_grad_(False),) if reference is not None else ()

    def _logps(self, model: PreTrainedModel, tokens: TokenBatch) -> torch.Tensor:
        return self._total(forward_response(model, tokens)[0], tokens)  # token log-probs (B, R), zero on padding

    def _total(self, token_logps: torch.Tensor, tokens: TokenBatch) -> torch.Tensor:
        total = token_logps.sum(-1)
        if self.length_normalized:
            return total / tokens.response_mask.sum(-1).clamp(min=1)
        return total

    def _reference_logps(self, tokens: TokenBatch, cached: torch.Tensor) -> torch.Tensor:
        if not self._reference:
            if self.length_normalized:
                return cached / tokens.response_mask.sum(-1).clamp(min=1)
            return cached
        with torch.no_grad():
            return self._logps(self._reference[0], tokens)

    def _loss(self, batch: PairBatch | UnpairedBatch) -> tuple[torch.Tensor, Metrics, int]:
        if isinstance(batch, UnpairedBatch):
            # The reference point z0 is detached (no backward through it); each prompt runs once
            # for its example and its mismatched pair.
            tokens, kl_tokens = batch.tokens, batch.kl_tokens
            if self.states is not None:
                tokens, kl_tokens = self.states.attach(tokens), self.states.attach(kl_tokens)
            token_logps, kl_token_logps = forward_with_detached_twin(self.policy, tokens, kl_tokens)
            policy = self._total(token_logps, batch.tokens)
            policy_kl = self._total(kl_token_logps, batch.kl_tokens)
            ref = self._reference_logps(batch.tokens, batch.ref_logps)
            ref_kl = self._reference_logps(batch.kl_tokens, batch.ref_kl_logps)
            loss, metrics = self.loss_fn(policy, ref, batch.desirable, policy_kl, ref_kl)
            return loss, metrics, policy.shape[0]
        tokens = self.states.attach(batch.tokens) if self.states is not None else batch.tokens
        chosen, rejected = self._logps(self.policy, tokens).chunk(2)  # one pass over 2B rows
        ref_chosen, ref_rejected = self._reference_logps(tokens, batch.ref_logps).chunk(2)
        loss, metrics = self.loss_fn(chosen, rejected, ref_chosen, ref_rejected)
        return loss, metrics, chosen.shape[0]

    def _step(self, batch: PairBatch | UnpairedBatch, split: str) -> torch.Tensor:
        loss, metrics, n = self._loss(batch)
        loss = loss * share_weight(n)  # data parallel: DDP's average is the global batch's mean
        if not torch.isfinite(loss):  # stop before a NaN reaches the weights (and the checkpoint)
            raise FloatingPointError(f"{split} loss is {loss.item()} at step {self.global_step}")
        on_step = split == "train"
        self.log(f"{split}/loss", loss.detach(), batch_size=n, on_step=on_step, on_epoch=not on_step, prog_bar=True,
                 sync_dist=True)
        for name, value in metrics.items():
            self.log(f"{split}/{name}", value, batch_size=n, on_step=on_step, on_epoch=not on_step, sync_dist=True)
        return loss

    def on_fit_start(self) -> None:
        self.policy.train()  # generation left it in eval mode
        if self._reference:
            self._reference[0].to(self.device)

    def training_step(self, batch: PairBatch | UnpairedBatch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: PairBatch | UnpairedBatch, batch_idx: int) -> None:
        self._step(batch, "val")

    def configure_optimizers(self):  # noqa: ANN201 - Lightning's union type
        params = [p for p in self.policy.parameters() if p.requires_grad]
        return adamw_with_warmup(params, self.lr, self.weight_decay, self.warmup_steps, self)

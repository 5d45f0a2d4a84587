"""Supervised fine-tuning of a causal LM on (prompt, target) pairs as a LightningModule."""

from __future__ import annotations

import lightning as L
import torch
from transformers import PreTrainedModel

from harness.data.collate import TokenBatch
from harness.distributed import share_weight
from harness.losses.sft import nll_loss
from harness.models.forward import forward_response
from harness.modules.optim import adamw_with_warmup


class SFTModule(L.LightningModule):
    def __init__(self, policy: PreTrainedModel, lr: float, weight_decay: float = 0.0, warmup_steps: int = 0) -> None:
        super().__init__()
        self.policy = policy
        self.lr = lr
        self.weight_decay = weight_decay
        self.warmup_steps = warmup_steps

    def on_fit_start(self) -> None:
        self.policy.train()

    def _step(self, batch: TokenBatch, split: str) -> torch.Tensor:
        token_logps = forward_response(self.policy, batch)[0]  # (B, R)
        loss, metrics = nll_loss(token_logps, batch.response_mask)
        loss = loss * share_weight(batch.response_mask.sum())  # data parallel: the mean over every token
        if not torch.isfinite(loss):
            raise FloatingPointError(f"SFT {split} loss is {loss.item()} at step {self.global_step}")
        on_step = split == "train"
        n = batch.input_ids.shape[0]
        self.log(f"{split}/loss", loss.detach(), batch_size=n, on_step=on_step, on_epoch=not on_step, prog_bar=True,
                 sync_dist=True)
        for name, value in metrics.items():
            self.log(f"{split}/{name}", value, batch_size=n, on_step=on_step, on_epoch=not on_step, sync_dist=True)
        return loss

    def training_step(self, batch: TokenBatch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: TokenBatch, batch_idx: int) -> None:
        self._step(batch, "val")

    def configure_optimizers(self):  # noqa: ANN201 - Lightning's union type
        params = [p for p in self.policy.parameters() if p.requires_grad]
        return adamw_with_warmup(params, self.lr, self.weight_decay, self.warmup_steps, self)

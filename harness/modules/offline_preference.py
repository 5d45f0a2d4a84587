"""Offline preference optimisation (DPO and relatives) of a causal LM as a LightningModule.

The objective is injected as a pure loss function with the signature
loss_fn(policy_chosen, policy_rejected, ref_chosen, ref_rejected) -> (loss, metrics);
the module does not know which objective it trains.
"""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
import torch
from transformers import PreTrainedModel

from harness.data.preference import PairBatch
from harness.rl.rollout import sequence_logps

PairLoss = Callable[
    [torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    tuple[torch.Tensor, dict[str, torch.Tensor]],
]


class OfflinePreferenceModule(L.LightningModule):
    def __init__(
        self,
        policy: PreTrainedModel,
        loss_fn: PairLoss,
        lr: float,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
        disable_dropout: bool = True,
    ) -> None:
        super().__init__()
        self.policy = policy
        if disable_dropout:
            # Reference log-probs were computed without dropout; training with it would
            # compare a noisy policy with a clean reference (TRL does the same).
            for m in policy.modules():
                if isinstance(m, torch.nn.Dropout):
                    m.p = 0.0
        self.loss_fn = loss_fn
        self.lr = lr
        self.weight_decay = weight_decay
        self.warmup_steps = warmup_steps

    def _step(self, batch: PairBatch, split: str) -> torch.Tensor:
        logps = sequence_logps(self.policy, batch.tokens)  # (2B,)
        chosen, rejected = logps.chunk(2)
        ref_chosen, ref_rejected = batch.ref_logps.chunk(2)
        loss, metrics = self.loss_fn(chosen, rejected, ref_chosen, ref_rejected)
        n = chosen.shape[0]
        on_step = split == "train"
        self.log(f"{split}/loss", loss.detach(), batch_size=n, on_step=on_step, on_epoch=not on_step, prog_bar=True)
        for name, value in metrics.items():
            self.log(f"{split}/{name}", value, batch_size=n, on_step=on_step, on_epoch=not on_step)
        return loss

    def on_fit_start(self) -> None:
        self.policy.train()  # generation left it in eval mode

    def training_step(self, batch: PairBatch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: PairBatch, batch_idx: int) -> None:
        self._step(batch, "val")

    def configure_optimizers(self):  # noqa: ANN201 - Lightning's union type
        params = [p for p in self.policy.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        warmup = max(self.warmup_steps, 1)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / warmup))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

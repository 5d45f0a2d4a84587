"""Training a reward model on best-of-k comparisons as a LightningModule."""

from __future__ import annotations

import lightning as L
import torch

from harness.data.preference import GroupBatch
from harness.distributed import share_weight
from harness.losses.bradley_terry import GroupLoss
from harness.models.reward import RewardModel
from harness.models.trunk import StateTable
from harness.modules.optim import adamw


class RewardModelModule(L.LightningModule):
    """Fits r(x, y) with a loss on (B, k) rewards and chosen indices; curves under `rm_train/`
    and `rm_val/` (the reward model's own train and validation comparisons)."""

    def __init__(self, reward_model: RewardModel, loss_fn: GroupLoss, lr: float, weight_decay: float = 0.0,
                 head_lr: float | None = None, states: StateTable | None = None) -> None:
        """`states`: the boundary states of every training and validation row below the trunk's
        frozen blocks (trunk.StateTable), computed once; each pass then runs the blocks above."""
        super().__init__()
        self.states = states
        self.reward_model = reward_model
        self.loss_fn = loss_fn
        self.lr = lr
        self.head_lr = lr if head_lr is None else head_lr
        self.weight_decay = weight_decay

    def _step(self, batch: GroupBatch, split: str) -> torch.Tensor:
        tokens = self.states.attach(batch.tokens) if self.states is not None else batch.tokens
        rewards = self.reward_model.raw(tokens).view(-1, batch.k)  # (B, k)
        loss, metrics = self.loss_fn(rewards, batch.choice)
        loss = loss * share_weight(rewards.shape[0])  # data parallel: DDP's average is the global batch's mean
        if not torch.isfinite(loss):
            raise FloatingPointError(f"reward model {split} loss is {loss.item()} at step {self.global_step}")
        n, on_step = rewards.shape[0], split == "train"
        # Curves: only the run that trains the model has them; the stage's summary under the
        # same keys is stored with the artifact and logged by every run that uses it.
        self.log(f"rm_{split}/loss", loss.detach(), batch_size=n, on_step=on_step, on_epoch=not on_step, prog_bar=True,
                 sync_dist=True)
        for name, value in metrics.items():
            self.log(f"rm_{split}/{name}", value, batch_size=n, on_step=on_step, on_epoch=not on_step, sync_dist=True)
        return loss

    def training_step(self, batch: GroupBatch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: GroupBatch, batch_idx: int) -> None:
        self._step(batch, "val")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """AdamW; the freshly initialised head may take a larger step than the pretrained trunk."""
        trunk = [p for p in self.reward_model.trunk.parameters() if p.requires_grad]
        groups = [{"params": list(self.reward_model.head.parameters()), "lr": self.head_lr}]
        if trunk:
            groups.append({"params": trunk, "lr": self.lr})
        return adamw(groups, self, lr=self.lr, weight_decay=self.weight_decay)

"""The policy optimiser shared by the modules trained on labelled data."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch


def adamw_with_warmup(params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float,
                      warmup_steps: int) -> dict[str, Any]:
    """AdamW with a linear warm-up over `warmup_steps` optimiser steps (lr·min(1, (s+1)/w));
    0 or 1 keeps the learning rate constant. In Lightning's configure_optimizers shape."""
    opt = torch.optim.AdamW(list(params), lr=lr, weight_decay=weight_decay)
    warmup = max(warmup_steps, 1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / warmup))
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

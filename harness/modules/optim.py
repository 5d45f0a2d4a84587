"""The optimiser of every module: torch's AdamW, fused where torch has the kernel."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch


def adamw(params: Iterable[Any], **settings: Any) -> torch.optim.AdamW:
    """`torch.optim.AdamW(params, **settings)` with the fused implementation (one kernel per
    tensor for the whole update) where torch has it for the parameters' device and dtype (CPU
    and CUDA, fp32/bf16/fp16), else torch's default. The update is AdamW's either way; fused,
    SmolLM2's 53 M trainable parameters take one pass over memory per step instead of one per
    elementwise operation, which on 2 CPU cores was a third of a DPO step
    (reports/benchmarks.md). Transformers' Trainer (TRL) uses the same kernel by default."""
    params = list(params)
    try:
        return torch.optim.AdamW(params, fused=True, **settings)
    except (RuntimeError, ValueError):  # a device or dtype without the kernel
        return torch.optim.AdamW(params, **settings)


def adamw_with_warmup(params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float,
                      warmup_steps: int) -> dict[str, Any]:
    """AdamW with a linear warm-up over `warmup_steps` optimiser steps (lr·min(1, (s+1)/w));
    0 or 1 keeps the learning rate constant. In Lightning's configure_optimizers shape."""
    opt = adamw(params, lr=lr, weight_decay=weight_decay)
    warmup = max(warmup_steps, 1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / warmup))
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

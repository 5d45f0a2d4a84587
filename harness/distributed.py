"""Data parallelism (`trainer.strategy=ddp_fork`, `trainer.devices=W`): what the training code
needs to know of the other processes.

The pipeline (stages, artifacts, the MLflow run, evaluation) runs in one process; each training
stage's `Trainer.fit` forks W processes (Lightning's ddp_fork, gloo on the CPU) that train
together and log through rank 0, and the trained weights come back to the pipeline's process.

Every process walks the same batches and takes its share of each (data/resumable.py); DDP then
averages the processes' gradients with equal weight. A process's loss is a mean over its own
share, so with unequal shares (a batch of 7 rows over 2 processes) that average is not the
global batch's mean: `share_weight` scales each process's loss by n·W/N (its share n of the
N units the loss averages over, W processes), after which DDP's average is exactly the mean
over the global batch, as one process would compute it. Alone, the weight is 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

DATA_PARALLEL = "ddp_fork"  # the one multi-process strategy built: CPU processes forked for each training stage


def processes(trainer: Mapping[str, Any]) -> int:
    """How many processes train together under these Trainer settings (`trainer.*`)."""
    devices = trainer.get("devices", 1)
    nodes = max(int(trainer.get("num_nodes", 1) or 1), 1)
    if isinstance(devices, int):
        return max(devices, 1) * nodes
    if isinstance(devices, (list, str)) and devices != "auto":
        return (len([d for d in str(devices).replace("[", "").replace("]", "").split(",") if d.strip()]) or 1) * nodes
    return nodes


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of processes training together (0, 1 alone)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def share_weight(n: float | torch.Tensor) -> float:
    """n·W/N, N the sum of n over the W processes (an all-reduce); 1.0 alone."""
    _, world = rank_and_world()
    if world == 1:
        return 1.0
    total = torch.tensor([float(n)], dtype=torch.float64)
    torch.distributed.all_reduce(total)
    return float(n) * world / float(total.item())


def global_mean(values: torch.Tensor) -> torch.Tensor:
    """The mean of `values` over every process training together (each holds its share of the
    batch; their sums and counts are all-reduced), detached; alone, the plain mean."""
    values = values.detach()
    if rank_and_world()[1] == 1:
        return values.mean()
    total = torch.stack([values.sum(), torch.tensor(float(values.numel()), dtype=values.dtype)])
    torch.distributed.all_reduce(total)
    return total[0] / total[1]

"""Training batches and checkpoints that survive SIGKILL: a killed stage resumes where it was.

`ResumableBatches` is an iterable of collated batches in a seeded order per epoch; it is
stateful in Lightning's sense (`state_dict` / `load_state_dict`), so its position in the epoch
travels in the checkpoint and a resumed run sees exactly the batches an uninterrupted one
would. Lightning fetches one batch ahead, so the position it saves is the count of batches the
model has *finished* (kept by `Checkpointing`), not of batches handed out.

`Checkpointing` writes one `last.ckpt` every `every` batches and at the end of training,
atomically (temporary file, then rename): a kill mid-write leaves the previous checkpoint.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from harness.distributed import rank_and_world


class ResumableBatches:
    """Batches of `items` in a seeded order per epoch, resumable mid-epoch.

    `shuffle` permutes the items each epoch; `num_samples` draws that many items with
    replacement instead (PPO's prompts); otherwise the order is fixed.

    `lengths` (each item's prompt and response length) with `bucket` > 1 groups items of
    similar shape into batches, so that a batch's padded width (longest prompt + longest
    response) is close to its items' own: the shuffled order is cut into runs of `bucket`
    batches; each run is sorted by prompt length, cut into groups of √bucket batches, each
    group sorted by response length, cut into batches, and the run's full batches are put in
    a seeded random order (a short last batch stays last). Every item still appears once per
    epoch; which items share a batch is still random across runs, only less so in shape.

    Under data parallelism (torch.distributed initialised, W processes) every process walks the
    same batches and takes rows r, r + W, … of each: the batch of `batch_size` is the global one,
    split across the processes, whose gradients DDP averages (a batch with fewer than W rows
    gives every process one of them).
    """

    def __init__(self, items: Sequence[Any], batch_size: int, collate: Callable[[list[Any]], Any],
                 seed: int = 0, shuffle: bool = True, num_samples: int | None = None,
                 lengths: Sequence[tuple[int, int]] | None = None, bucket: int = 0) -> None:
        if lengths is not None and len(lengths) != len(items):
            raise ValueError(f"ResumableBatches: {len(lengths)} lengths for {len(items)} items")
        self.lengths = np.asarray(lengths, dtype=np.int64).reshape(-1, 2) if lengths is not None else None
        self.bucket = bucket
        self.items = list(items)
        self.batch_size = batch_size
        self.collate = collate
        self.seed = seed
        self.shuffle = shuffle
        self.num_samples = num_samples
        self.epoch = 0
        self.consumed = 0  # batches of the current epoch the model has finished
        self._skip = 0

    def _order(self, epoch: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, epoch])
        if self.num_samples is not None:
            return rng.integers(len(self.items), size=self.num_samples)
        order = rng.permutation(len(self.items)) if self.shuffle else np.arange(len(self.items))
        if self.lengths is None or self.bucket <= 1:
            return order
        return np.concatenate([self._bucketed(order[s : s + self.bucket * self.batch_size], rng)
                               for s in range(0, len(order), self.bucket * self.batch_size)])

    def _bucketed(self, run: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        bs = self.batch_size
        run = run[np.argsort(self.lengths[run, 0], kind="stable")]  # by prompt length
        group = bs * max(1, math.isqrt(self.bucket))
        run = np.concatenate([g[np.argsort(self.lengths[g, 1], kind="stable")]  # by response length
                              for g in (run[i : i + group] for i in range(0, len(run), group))])
        batches = [run[i : i + bs] for i in range(0, len(run), bs)]
        full = [b for b in batches if len(b) == bs]
        if not self.shuffle:
            return np.concatenate(batches)
        return np.concatenate([full[i] for i in rng.permutation(len(full))] + batches[len(full):])

    def __len__(self) -> int:
        n = self.num_samples if self.num_samples is not None else len(self.items)
        return math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[Any]:
        order = self._order(self.epoch)
        start, self._skip = self._skip, 0
        self.consumed = start
        rank, world = rank_and_world()
        for b in range(start, len(self)):
            rows = order[b * self.batch_size : (b + 1) * self.batch_size]
            if world > 1:  # data parallel: each process takes its share of the batch (rows rank, rank + world, …)
                rows = rows[rank::world] if len(rows) >= world else rows[[rank % len(rows)]]
            yield self.collate([self.items[i] for i in rows])
        self.epoch += 1
        self.consumed = 0

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "consumed": self.consumed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self._skip = int(state["epoch"]), int(state["consumed"])


def frozen_keys(module: Any) -> set[str]:
    """The state_dict keys of parameters that do not train (frozen blocks, a frozen reference),
    every name of a tied one included (SmolLM2's output layer is its embedding): the same as the
    base model they were built from, so a checkpoint need not hold them."""
    return {name for name, value in module.state_dict(keep_vars=True).items()
            if isinstance(value, torch.nn.Parameter) and not value.requires_grad}


class Checkpointing(Callback):
    """Save `path` (atomically) every `every` training batches and when training ends.

    A checkpoint holds what trains: the trainable parameters, buffers, optimiser and loop state,
    not the frozen parameters (a SmolLM2 run with 15 of 30 blocks trained, or a frozen reference
    beside the policy, would otherwise store the whole model each time). A resumed run rebuilds
    the module from its base model, as the first attempt did, and loads the rest over it; keys
    are checked both ways, so a checkpoint of another module is refused rather than half loaded.
    """

    def __init__(self, path: Path, every: int) -> None:
        if every < 1:
            raise ValueError(f"Checkpointing: every must be ≥ 1, got {every}")
        self.path = Path(path)
        self.every = every
        self.batches = 0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        loader = trainer.fit_loop._combined_loader  # noqa: SLF001 - the loaders Lightning iterates
        for iterable in loader.flattened if loader is not None else []:
            if isinstance(iterable, ResumableBatches):
                iterable.consumed += 1
        self.batches += 1
        if self.batches % self.every == 0:
            self.save(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.save(trainer)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        pl_module.strict_loading = False  # the frozen parameters are not in the checkpoint: checked below

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        frozen = frozen_keys(pl_module)
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k not in frozen}

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        expected = set(pl_module.state_dict()) - frozen_keys(pl_module)
        found = set(checkpoint.get("state_dict", {}))
        if found != expected:
            missing, unexpected = sorted(expected - found)[:3], sorted(found - expected)[:3]
            raise ValueError(f"checkpoint {self.path}: does not match the module it resumes (missing {missing}, "
                             f"unexpected {unexpected})")

    def save(self, trainer: L.Trainer) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        trainer.save_checkpoint(tmp, weights_only=False)  # optimiser and loop state too (every rank calls it)
        if trainer.is_global_zero:  # under data parallelism only rank 0 wrote the file
            os.replace(tmp, self.path)

    def state_dict(self) -> dict[str, int]:
        return {"batches": self.batches}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self.batches = int(state_dict["batches"])

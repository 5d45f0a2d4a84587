"""Lightning Trainers for every training stage: construction, resumable checkpoints, SFT.

A stage trained under a key (the run's `run_key`, or a shared artifact's) checkpoints to
`cache_dir/checkpoints/<key>/<stage>.ckpt` every `train.checkpoint_every` batches
(data/resumable.py) and a rerun resumes from there; without a key nothing is checkpointed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from harness.data.collate import TokenBatch, pack
from harness.data.resumable import Checkpointing, ResumableBatches
from harness.experiment import Experiment
from harness.modules.sft import SFTModule

log = logging.getLogger(__name__)


def make_trainer(exp: Experiment, **overrides: Any) -> L.Trainer:
    """A Trainer from `trainer.*` (conf/trainer/), logging into the run's MLflow run."""
    kwargs = dict(exp.trainer_kwargs) | overrides
    # Data parallel: the training batches are shared out by ResumableBatches itself; validation
    # runs whole on every process (a DistributedSampler would pad it with repeated rows).
    kwargs.setdefault("use_distributed_sampler", False)
    return L.Trainer(logger=exp.tracker.lightning_logger(), default_root_dir=str(exp.run_dir), **kwargs)


def loadable(path: Path) -> bool:
    """Whether a checkpoint loads as plain tensors and numbers (weights_only: nothing in it is
    executed). A damaged or foreign file is set aside and the stage starts over."""
    try:
        torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return True
    except Exception as err:  # truncated zip, pickled code, anything torch refuses
        log.warning("checkpoint %s cannot be loaded safely (%s): starting the stage over", path,
                    " ".join(str(err).split())[:200])
        path.rename(path.with_name(path.name + ".rejected"))
        return False


def fit(exp: Experiment, key: str, stage: str, module: L.LightningModule, *, datamodule: Any = None,
        train: Any = None, val: Any = None, callbacks: Sequence[Callback] = (), **overrides: Any) -> L.Trainer:
    """Trainer.fit with a checkpoint under cache_dir/checkpoints/<key>/<stage>.ckpt that a
    rerun resumes from (`key`: the run's, or a shared artifact's). No key: no checkpoint.
    `callbacks` run before the checkpoint's, so a checkpoint holds their state after the batch
    it follows (their state_dict travels in it)."""
    callbacks, ckpt_path = list(callbacks), None
    if key:
        path = exp.cache_dir / "checkpoints" / key / f"{stage}.ckpt"
        callbacks.append(Checkpointing(path, exp.train.checkpoint_every))
        if path.exists() and loadable(path):
            ckpt_path = str(path)
            log.info("%s: resuming from %s", stage, path)
    trainer = make_trainer(exp, callbacks=callbacks, **overrides)
    # weights_only: a checkpoint is tensors and plain numbers; nothing in it is ever executed.
    if datamodule is not None:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    else:
        trainer.fit(module, train, val, ckpt_path=ckpt_path, weights_only=True)
    return trainer


class PackCollator:
    """(prompt ids, response ids) rows to a TokenBatch."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, rows: Sequence[tuple[Sequence[int], Sequence[int]]]) -> TokenBatch:
        return pack([r[0] for r in rows], [r[1] for r in rows], self.pad_id)


def supervised_fine_tune(policy: Any, tokenizer: Any, prompt_ids: Sequence[Sequence[int]], targets: Sequence[str],
                         settings: Any, trainer_kwargs: dict[str, Any], seed: int) -> Any:
    """Fine-tune `policy` in place on (prompt, target + EOS) pairs with `settings` (lr, epochs,
    batch_size); no logger, no checkpoint (the caller stores the result as an artifact)."""
    rows = [(p, tokenizer(t, add_special_tokens=False).input_ids + [tokenizer.eos_token_id])
            for p, t in zip(prompt_ids, targets)]
    train = ResumableBatches(rows, settings.batch_size, PackCollator(tokenizer.pad_token_id), seed=seed)
    kwargs = dict(trainer_kwargs) | {"max_epochs": settings.epochs, "logger": False, "enable_checkpointing": False,
                                     "limit_val_batches": 0}
    L.Trainer(**kwargs).fit(SFTModule(policy, lr=settings.lr), train)
    return policy

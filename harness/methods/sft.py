"""Supervised fine-tuning as a method: on the task's references or on the chosen responses."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch.utils.data import DataLoader

from harness.cache import stage_seed
from harness.data.resumable import ResumableBatches
from harness.errors import InputError
from harness.experiment import EvalPolicy, Experiment, Method, TrainContext
from harness.methods.policies import SampledPolicy, eval_series
from harness.modules.sft import SFTModule
from harness.tasks.base import Example
from harness.training import PackCollator, fit

TARGETS = ("references", "chosen")


@dataclass
class SFT(Method):
    """Supervised fine-tuning on the task's references (`targets='references'`, e.g. the
    TL;DR summaries) or on the labelled comparisons' chosen responses (`'chosen'`)."""

    targets: str

    def __post_init__(self) -> None:
        if self.targets not in TARGETS:
            raise InputError(f"loss.targets={self.targets!r}: expected 'references' or 'chosen'")

    def check(self, exp: Experiment, examples: Sequence[Example]) -> None:
        """Before the run starts: references must exist to train on them, and a share of the
        examples must be left to train on after train.val_fraction."""
        missing = [e.id for e in examples if not e.reference]
        if self.targets == "references" and missing:
            raise InputError(f"loss.targets=references: task {exp.task.name} has no reference for {missing[:3]}…; "
                             "use loss.targets=chosen")
        n_val = int(round(len(examples) * exp.train.val_fraction))
        if n_val >= len(examples):
            raise InputError(f"train.val_fraction={exp.train.val_fraction} holds out all {len(examples)} examples of "
                             f"labels.n={exp.labels.n}: none left to train on; lower it or raise labels.n")

    def fit(self, ctx: TrainContext) -> EvalPolicy:
        exp, prep, labelled = ctx.exp, ctx.prep, ctx.labelled
        tok = prep.tokenizer
        if self.targets == "references":
            rows = [(p, tok(e.reference, add_special_tokens=False).input_ids + [tok.eos_token_id])
                    for p, e in zip(prep.train_ids, prep.train_examples)]
        else:
            rows = [(p, g[c]) for p, g, c in zip(labelled.prompt_ids, labelled.responses, labelled.choices)]
        n_val = int(round(len(rows) * exp.train.val_fraction))
        collate = PackCollator(tok.pad_token_id)
        train = ResumableBatches(rows[: len(rows) - n_val], exp.train.batch_size, collate,
                                 seed=stage_seed(exp.seed, "sft"))
        val = DataLoader(rows[len(rows) - n_val :], batch_size=exp.train.batch_size, collate_fn=collate)
        module = SFTModule(prep.policy, lr=exp.train.lr, weight_decay=exp.train.weight_decay,
                           warmup_steps=exp.train.warmup_steps)
        fit(exp, exp.run_key, "sft", module, train=train, val=val if n_val else None,
            limit_val_batches=1.0 if n_val else 0, callbacks=eval_series(ctx, module.policy))
        return SampledPolicy(module.policy, ctx)

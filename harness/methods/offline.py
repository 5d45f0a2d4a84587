"""Offline preference objectives (DPO, cDPO, IPO, SimPO, ORPO, KTO) on the labelled comparisons."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from collections.abc import Sequence
from typing import Any, ClassVar

from harness.cache import stage_seed
from harness.data.pairs import build_pairs, build_unpaired, desirable_prompts, kl_partners
from harness.data.preference import ListDataModule, PairCollator, UnpairedCollator
from harness.errors import InputError
from harness.experiment import EvalPolicy, Experiment, Method, TrainContext
from harness.losses.kto import kto_weights
from harness.methods.policies import SampledPolicy, eval_series
from harness.models.lora import initial_reference
from harness.models.trunk import frozen_blocks, same_bottom
from harness.modules.offline_preference import OfflinePreferenceModule, PairLoss, UnpairedLoss
from harness.stages import ref_kl_logps, ref_logps, with_rows
from harness.tasks.base import Example
from harness.training import fit

REFERENCES = ("cached", "online", "none")


@dataclass
class OfflinePreference(Method):
    """Offline objectives on the labelled comparisons; `loss_fn` is the pure loss.

    Pairwise objectives (DPO, IPO, SimPO, ORPO) train on (chosen, other) pairs; with
    `unpaired` (KTO) every chosen response is a desirable example and every other response an
    undesirable one. `labels.desirable_fraction` < 1 keeps only that share of the chosen
    responses (a seeded choice of prompts): KTO loses desirable examples, pairwise objectives
    the pairs built on them. `reference`: `cached` (log π_ref of every labelled response,
    computed once, an artifact), `online` (the frozen initial policy held in memory and run on
    each batch) or `none` (reference-free objectives). `length_normalized` passes per-token
    average log-probs (SimPO, ORPO). `balance_weights` applies KTO's rule of thumb for
    λ_D and λ_U to the counts of desirable and undesirable examples.
    """

    online: ClassVar[bool] = True  # iterative DPO/IPO/KTO on the labels so far (labels.rounds)

    loss_fn: PairLoss | UnpairedLoss
    unpaired: bool
    length_normalized: bool
    reference: str
    balance_weights: bool

    def __post_init__(self) -> None:
        if self.reference not in REFERENCES:
            raise InputError(f"loss.method.reference={self.reference!r}: expected one of {', '.join(REFERENCES)}")
        if self.balance_weights and not (isinstance(self.loss_fn, functools.partial)
                                         and "desirable_weight" in self.loss_fn.keywords):
            raise InputError("loss.method.balance_weights=true needs a loss with desirable_weight and "
                             "undesirable_weight (KTO)")

    def check(self, exp: Experiment, examples: Sequence[Example]) -> None:
        """Before the run starts: the split into training and validation prompts (train.val_fraction)
        and the chosen responses kept (labels.desirable_fraction) leave something to train on.
        (Identical responses, skipped as ties, are known only once sampled: `fit` checks again.)"""
        if exp.labels.kind == "binary" and not self.unpaired:
            raise InputError("labels.kind=binary: a thumbs up or down on one response makes no pair to train a "
                             "pairwise objective on; use loss=kto (unpaired), or labels.kind=comparison")
        n = len(examples)
        n_train = n - self.n_val(n, exp)
        if n_train < 1:
            raise InputError(f"train.val_fraction={exp.train.val_fraction} holds out all {n} comparisons of "
                             f"labels.n={exp.labels.n}: none left to train on; lower it or raise labels.n")
        kept = sum(1 for i in self.kept(n, exp) if i < n_train)
        if kept == 0:
            raise InputError(f"labels.desirable_fraction={exp.labels.desirable_fraction} keeps the chosen response of "
                             f"none of the {n_train} training comparisons (labels.n={exp.labels.n}); raise it")

    @staticmethod
    def n_val(n: int, exp: Experiment) -> int:
        return int(round(n * exp.train.val_fraction))  # whole prompts, from the tail

    @staticmethod
    def kept(n: int, exp: Experiment) -> set[int]:
        return desirable_prompts(n, exp.labels.desirable_fraction, stage_seed(exp.seed, "desirable"))

    def reads_states(self) -> bool:
        return True

    def fit(self, ctx: TrainContext) -> EvalPolicy:
        exp, prep, labelled = ctx.exp, ctx.prep, ctx.labelled
        tokenizer = prep.tokenizer
        n = len(labelled.choices)
        keep = self.kept(n, exp)
        unknown = [[float("nan")] * len(g) for g in labelled.responses]  # no cached reference
        ref = ref_logps(ctx) if self.reference == "cached" else unknown
        n_val = self.n_val(n, exp)
        if self.unpaired:
            partners = kl_partners(n, stage_seed(exp.seed, "kl_pairs"))
            ref_kl = ref_kl_logps(ctx, partners) if self.reference == "cached" else unknown
            examples = build_unpaired(labelled.prompt_ids, labelled.responses, labelled.choices, ref,
                                      partners, ref_kl, keep, ratings=labelled.ratings)
            train_rows = [e for i, e in examples if i < n - n_val]
            val_rows = [e for i, e in examples if i >= n - n_val]
            n_d = sum(e.desirable for e in train_rows)
            n_u = len(train_rows) - n_d
            exp.tracker.log_metrics({"labels/desirable": float(n_d), "labels/undesirable": float(n_u)})
            loss_fn = self._balanced(n_d, n_u, exp) if self.balance_weights else self.loss_fn
            collate = UnpairedCollator(tokenizer.pad_token_id)
        else:
            pairs = build_pairs(labelled.prompt_ids, labelled.responses, labelled.choices, ref, keep)
            train_rows = [pair for i, pair in pairs if i < n - n_val]
            val_rows = [pair for i, pair in pairs if i >= n - n_val]
            exp.tracker.log_metrics({"labels/pairs": float(len(pairs))})
            loss_fn = self.loss_fn
            collate = PairCollator(tokenizer.pad_token_id)
        if not train_rows:  # every training comparison a tie: its responses all identical
            raise InputError(f"the {n - n_val} training comparisons of labels.n={exp.labels.n} have identical "
                             "responses to compare (ties carry no preference): nothing to train on")
        data = ListDataModule(train_rows, val_rows, collate, exp.train.batch_size, stage_seed(exp.seed, ctx.stage),
                              bucket=exp.train.bucket)
        reference = None
        if self.reference == "online":
            reference = ctx.reference if ctx.reference is not None else initial_reference(prep.policy_dir, prep.policy)
        states = labelled.states if self.reads_states() else None
        if states is not None and (states.k != frozen_blocks(prep.policy) or (
                reference is not None and not same_bottom(prep.policy, reference, states.k))):
            states = None
        if states is not None and self.unpaired:
            # KTO's mismatched pairs were never sampled as such: their states computed here once
            # (a bottom pass, as one epoch's would cost), to train every epoch from.
            rows = train_rows + val_rows
            states = with_rows(states, prep.policy, [e.prompt_ids for e in rows], [e.kl_ids for e in rows],
                               tokenizer.pad_token_id, exp.sampling.batch_size)
        module = OfflinePreferenceModule(prep.policy, loss_fn, lr=exp.train.lr, weight_decay=exp.train.weight_decay,
                                         warmup_steps=exp.train.warmup_steps, length_normalized=self.length_normalized,
                                         reference=reference, states=states)
        fit(exp, exp.run_key, ctx.stage, module, datamodule=data, limit_val_batches=1.0 if val_rows else 0,
            callbacks=eval_series(ctx, module.policy, reference=reference))
        return SampledPolicy(module.policy, ctx)

    def _balanced(self, n_d: int, n_u: int, exp: Experiment) -> Any:
        if n_d == 0 or n_u == 0:
            raise InputError(f"loss.method.balance_weights: {n_d} desirable and {n_u} undesirable examples; "
                             "both must be > 0")
        kw = self.loss_fn.keywords  # type: ignore[union-attr]  # a partial: checked in __post_init__
        lam_d, lam_u = kto_weights(n_d, n_u, kw["desirable_weight"], kw.get("undesirable_weight", 1.0))
        exp.tracker.log_metrics({"labels/desirable_weight": lam_d, "labels/undesirable_weight": lam_u})
        return functools.partial(self.loss_fn, desirable_weight=lam_d, undesirable_weight=lam_u)

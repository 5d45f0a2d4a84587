"""Online label rounds (`labels.rounds` = R > 1): the budget collected in rounds while training
goes on, Ziegler et al.'s online mode, for the methods whose `fit` can run once per round
(`Method.online`): iterative DPO, IPO, KTO and their relatives, and PPO (its reward model refit
on every comparison so far before each round's share of the episodes).

Round r labels the prompts `labels.round_bounds()[r]` of the first `labels.n`:

  samples  k responses of the current policy (round 0: the initial policy's, read from the
           offline pool: the same artifacts an offline run with labels.n = n/R reads)
  labels   the labeler's best-of-k choice (people: the run stops, AwaitingLabels, and the same
           command continues once they have answered)
  ref      log π_ref of the new responses: the sampler's in round 0 (it was the reference), a
           pass of the initial policy afterwards
  train    the method's `fit` on every label so far, continuing from the current policy (a
           fresh optimiser each round; the reference stays the initial policy); what else the
           method carries between rounds (PPO's value head and β) is its `round_state`

A later round's samples and labels are artifacts (`online_samples`, `online_labels`,
`online_ref_logps`) keyed by the run (its run_key: everything the policy that sampled them
depends on) and the round. After each round the trained parameters are kept under
`checkpoints/<run_key>/online.pt`, so a killed run resumes at the round it was in. Each round
logs at step r: `online/gold` (the judge's gold reward of the round's samples, where it has
one: how the sampling policy improves), `online/agreement`, `online/gold_agreement` (labels
from someone other than the judge: stages.gold_agreement) and `online/labels` (labels so far);
the Trainer's metrics of round r follow round r − 1's steps. `labels.rounds=1` never comes here:
it is the offline pipeline, unchanged.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness import stages
from harness.cache import config_hash, stage_seed
from harness.errors import InputError
from harness.experiment import EvalPolicy, Experiment, Labelled, TrainContext
from harness.models.forward import batched_logps
from harness.models.lora import initial_reference
from harness.models.sampling import SAMPLER, generate_responses

log = logging.getLogger(__name__)

STATE = "online.pt"


def first_round(exp: Experiment) -> Experiment:
    """The experiment as round 0 sees it: its first share of the budget, labelled offline."""
    start, stop = exp.labels.round_bounds()[0]
    return replace(exp, labels=replace(exp.labels, n=stop - start, rounds=1))


def check(exp: Experiment, imported: bool, examples: Sequence[Any]) -> None:
    """labels.rounds > 1 needs a method that trains per round and a labeler that labels new samples."""
    if exp.labels.rounds == 1:
        return
    if not exp.method.online:
        raise InputError(f"labels.rounds={exp.labels.rounds}: the method of this loss trains once, offline; online "
                         "rounds are built for the offline objectives and PPO (loss=dpo, ipo, kto, ppo, …). Use "
                         "labels.rounds=1")
    if imported:
        raise InputError(f"labels.rounds={exp.labels.rounds}: labeler={exp.labeler.name} reads comparisons made "
                         "elsewhere and cannot label the current policy's samples; use labels.rounds=1, or a panel, "
                         "labeler=human or labeler=llm_judge")
    start, stop = exp.labels.round_bounds()[0]
    exp.method.check(first_round(exp), examples[start:stop])  # the first round alone has something to train on


def run_rounds(ctx: TrainContext, first: Labelled) -> tuple[EvalPolicy, Labelled]:
    """Every round after the first (whose labels `first` holds), training after each; returns
    the policy to evaluate and every label it was trained on."""
    exp, prep = ctx.exp, ctx.prep
    bounds = exp.labels.round_bounds()
    reference = initial_reference(prep.policy_dir, prep.policy).eval().requires_grad_(False)
    state_path = exp.cache_dir / "checkpoints" / exp.run_key / STATE if exp.run_key else None
    done = _restore(prep.policy, state_path, exp) if state_path is not None else -1
    labelled, trained = first, None
    for r, (start, stop) in enumerate(bounds):
        if r > 0:
            labelled = _join(labelled, _round(ctx, r, start, stop, reference, sampled_by=done), r, prep, exp)
        if r <= done:  # trained and logged before the run was stopped
            log.info("online round %d of %d: trained before (%s), resumed after it", r + 1, len(bounds), state_path)
            continue
        log.info("online round %d of %d: training on %d labels", r + 1, len(bounds), len(labelled.choices))
        trained = exp.method.fit(replace(ctx, labelled=labelled, stage=f"train-round{r}", reference=reference,
                                         round=r))
        exp.tracker.step_offset = exp.tracker.last_step + 1
        _log_round(ctx, labelled, r, start, stop)
        done = r
        if state_path is not None:
            _save(prep.policy, state_path, r, exp.tracker.step_offset, exp.method.round_state())
            for ckpt in state_path.parent.glob(f"*-round{r}.ckpt"):  # the round's own checkpoint
                ckpt.unlink(missing_ok=True)
    if trained is None:  # every round trained before the run was stopped: the restored policy
        from harness.methods.policies import SampledPolicy

        trained = SampledPolicy(prep.policy, replace(ctx, labelled=labelled))
    return trained, labelled


def _trainable(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}


def _save(model: torch.nn.Module, path: Path, round_: int, step_offset: int, method_state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"round": round_, "step_offset": step_offset, "weights": _trainable(model), "method": method_state},
               tmp)
    os.replace(tmp, path)  # atomic: a kill leaves the previous round's state or this one's


def _restore(model: torch.nn.Module, path: Path, exp: Experiment) -> int:
    """The last round trained (its parameters loaded into `model`), or -1 with nothing to resume."""
    if not path.exists():
        return -1
    state = torch.load(path, map_location="cpu", weights_only=True)
    expected = set(_trainable(model))
    if set(state["weights"]) != expected:
        log.warning("%s holds other parameters than this run trains: the rounds start over", path)
        return -1
    model.load_state_dict(state["weights"], strict=False)
    exp.method.load_round_state(state.get("method", {}))
    exp.tracker.step_offset = exp.tracker.last_step = int(state["step_offset"])
    log.info("online rounds: resuming after round %d of %d", state["round"] + 1, exp.labels.rounds)
    return int(state["round"])


def _artifact(ctx: TrainContext, stage: str, spec: dict[str, Any], build: Callable[[Path], None]) -> Path:
    """A round's artifact in the cache; without a run_key or with resume=false (a run that must
    not find an earlier attempt's rounds) built in a temporary directory instead."""
    exp = ctx.exp
    if exp.run_key and exp.resume:
        return ctx.cache.get_or_build(stage, spec, build)
    out = Path(tempfile.mkdtemp(prefix=f"{stage}-", dir=exp.run_dir if exp.run_dir.is_dir() else None))
    build(out)
    return out


def _round(ctx: TrainContext, r: int, start: int, stop: int, reference: torch.nn.Module,
           sampled_by: int) -> Labelled:
    """Round r's samples of the current policy, their labels and reference log-probs."""
    exp, prep = ctx.exp, ctx.prep
    tokenizer = prep.tokenizer
    examples, prompt_ids = prep.train_examples[start:stop], prep.train_ids[start:stop]
    k = exp.labels.k
    samples_spec = {"run": exp.run_key, "round": r, "prompts": [start, stop], "sampler": SAMPLER}

    def sample(out: Path) -> None:
        if sampled_by != r - 1:  # the policy in memory is not the one that sampled round r
            raise InputError(f"online round {r + 1}: its samples are not in the artifact cache "
                             f"({exp.cache_dir}/artifacts/online_samples) and the policy that drew them is gone; "
                             "rerun with resume=false to start the rounds over")
        with ctx.progress() as progress:
            responses = generate_responses(
                prep.policy, tokenizer, prompt_ids, max_new_tokens=exp.task.max_new_tokens,
                temperature=exp.sampling.temperature, top_p=exp.sampling.top_p, k=k,
                batch_size=exp.sampling.batch_size, seed=stage_seed(exp.seed, f"online_samples:{r}"),
                progress=progress, stop=stages.task_stop(tokenizer, exp),
                desc=f"online round {r + 1}: sampling {k} responses × prompts {start}–{stop - 1}")
        stages.write_jsonl(out / "samples.jsonl", [
            {"id": e.id, "prompt": e.prompt, "prompt_ids": p, "responses": g,
             "texts": [tokenizer.decode(x, skip_special_tokens=True) for x in g]}
            for e, p, g in zip(examples, prompt_ids, responses)])

    samples_path = _artifact(ctx, "online_samples", samples_spec, sample)
    rows = stages.read_jsonl(samples_path / "samples.jsonl")
    samples_key = config_hash(samples_spec)

    def label(out: Path) -> None:
        with ctx.progress() as progress:
            stages.write_labels(out, exp, examples, rows, f"online_labels:{r}", progress,
                                f"online round {r + 1}: labelling prompts {start}–{stop - 1} with {exp.labeler.name}")

    labels_spec = {"samples": samples_key, "labeler": exp.keys.get("labeler"), "seed": exp.seed} | stages.kind_key(exp)
    labels_path = _artifact(ctx, "online_labels", labels_spec, label)
    chosen = stages.read_jsonl(labels_path / "labels.jsonl")
    meta = json.loads((labels_path / "meta.json").read_text())

    def ref(out: Path) -> None:
        flat_p = [row["prompt_ids"] for row in rows for _ in row["responses"]]
        flat_r = [resp for row in rows for resp in row["responses"]]
        with ctx.progress() as progress:
            flat = iter(batched_logps(reference, flat_p, flat_r, tokenizer.pad_token_id, exp.sampling.batch_size,
                                      progress=progress, desc=f"online round {r + 1}: reference log-probs",
                                      share_prompts=True))
        (out / "ref_logps.json").write_text(json.dumps([[next(flat) for _ in row["responses"]] for row in rows]))

    ref_path = _artifact(ctx, "online_ref_logps", {"samples": samples_key}, ref)
    return Labelled(
        [row["prompt_ids"] for row in rows], [row["responses"] for row in rows], [c["choice"] for c in chosen],
        spec=samples_spec, meta={k: v for k, v in meta.items() if k != "time"},
        artifacts={f"online_samples.{r}": samples_key, f"online_labels.{r}": config_hash(labels_spec)},
        choices_key=config_hash(labels_spec), ref_logps=json.loads((ref_path / "ref_logps.json").read_text()),
        ratings=[c["ratings"] for c in chosen] if exp.labels.kind == "binary" else None,
    )


def _join(before: Labelled, new: Labelled, r: int, prep: Any, exp: Experiment) -> Labelled:
    """Every label so far: `before` and round r's, one training set."""
    states = before.states
    if states is not None:  # the frozen bottom is the initial policy's in every round: its states stay valid
        states = stages.with_rows(states, prep.policy, [p for p, g in zip(new.prompt_ids, new.responses) for _ in g],
                                  [x for g in new.responses for x in g], prep.tokenizer.pad_token_id,
                                  exp.sampling.batch_size)
    spec = {"online": [config_hash(before.spec), config_hash(new.spec)]}
    agreement = [a for a in (before.meta.get("agreement"), new.meta.get("agreement")) if a is not None]
    return Labelled(
        before.prompt_ids + new.prompt_ids, before.responses + new.responses, before.choices + new.choices,
        spec=spec, meta=before.meta | {"rounds": r + 1, "agreement": agreement[-1] if agreement else None},
        artifacts=before.artifacts | new.artifacts,
        choices_key=config_hash(spec | {"choices": [before.choices_key, new.choices_key]}),
        ref_logps=(before.ref_logps or []) + (new.ref_logps or []), states=states,
        ratings=None if before.ratings is None or new.ratings is None else before.ratings + new.ratings,
    )


def _log_round(ctx: TrainContext, labelled: Labelled, r: int, start: int, stop: int) -> None:
    """Round r's metrics at step r: labels so far, the annotators' agreement, the gold reward of
    the round's samples (mean over every sampled response; judges without gold: none)."""
    exp, prep = ctx.exp, ctx.prep
    n_new = stop - start
    groups = labelled.responses[-n_new:]
    examples = [e for e, g in zip(prep.train_examples[start:stop], groups) for _ in g]
    texts = [prep.tokenizer.decode(x, skip_special_tokens=True) for g in groups for x in g]
    metrics = {"online/labels": float(len(labelled.choices)), "online/round": float(r)}
    gold = exp.evaluator.gold(examples, texts)
    if gold is not None:
        metrics["online/gold"] = float(np.mean(gold))
    if labelled.meta.get("agreement") is not None:
        metrics["online/agreement"] = float(labelled.meta["agreement"])
    agreement = (stages.gold_agreement(exp, prep.train_examples[start:stop], groups, labelled.choices[-n_new:],
                                       prep.tokenizer) if labelled.ratings is None else None)
    if agreement is not None:
        metrics["online/gold_agreement"] = agreement
    exp.tracker.log_metrics(metrics, step=r)
    log.info("online round %d of %d: %s", r + 1, exp.labels.rounds,
             ", ".join(f"{k.removeprefix('online/')}={v:.4g}" for k, v in metrics.items()))

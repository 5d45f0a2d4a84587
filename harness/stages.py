"""Every artifact stage of an experiment, each with its cache key beside it.

A stage's output is a directory under `cache_dir/artifacts/<stage>/<hash>/`, the hash taken
over exactly the settings that determine it (`*_spec` below), built once and shared by every
run with the same spec (harness/cache.py). Each stage draws its randomness from its own seed
(`stage_seed`), so it gives the same numbers whether it runs or is loaded.

  sft_policy    the model fine-tuned on the task's references (init.policy=sft)
  samples       k responses per train prompt from the initial policy
  labels        the labeler's best-of-k choice per prompt, with votes and provenance
  eval_initial  the initial policy's responses to the eval prompts
  ref_logps     log π_ref of every labelled response (offline objectives)
  ref_kl_logps  log π_ref of each prompt with its KTO partner's responses (z0)
  reward_model  the reward model trained on the labels, normalised on the initial policy
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness import precision
from harness.cache import ArtifactCache, config_hash, is_complete, stage_seed
from harness.data.collate import pack
from harness.data.pairs import partner_group
from harness.data.preference import ComparisonGroup, GroupCollator, ListDataModule
from harness.errors import AwaitingLabels, InputError
from harness.experiment import EvalSettings, Experiment, Labelled, Prepared, RewardModelSettings, TrainContext
from harness.models.forward import batched_logps
from harness.models.loading import freeze_lower_layers, load_causal_lm
from harness.models.lora import adapt
from harness.models.reward import RewardModel
from harness.models.sampling import SAMPLER, Samples, Stop, generate_responses, generate_with_logps, stop_rule
from harness.models.trunk import StateTable, frozen_blocks
from harness.modules.reward_model import RewardModelModule
from harness.progress import ProgressBar
from harness.tasks.base import Example
from harness.training import fit, supervised_fine_tune

log = logging.getLogger(__name__)


def write_jsonl(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    with path.open("w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open() as f:
        return [json.loads(line) for line in f]


def encode_prompts(tokenizer: Any, examples: Sequence[Example], max_new_tokens: int, context: int) -> list[list[int]]:
    """Prompt token ids, refused when the longest prompt and a response exceed the context."""
    ids = [tokenizer(e.prompt, add_special_tokens=False).input_ids for e in examples]
    longest = max(len(i) for i in ids)
    if longest + max_new_tokens > context:
        raise InputError(
            f"prompt of {longest} tokens + {max_new_tokens} response tokens exceeds the model's "
            f"context of {context}; shorten the prompts or task.max_new_tokens"
        )
    return ids


def context_length(config: Any) -> int:
    """Tokens the model attends over (its config's max_position_embeddings)."""
    return int(getattr(config, "max_position_embeddings", 1 << 30))


def model_keys(exp: Experiment) -> dict[str, Any]:
    """What every stage built on the initial policy and the task's prompts depends on (and the
    arithmetic precision when it is not fp32: harness/precision.py)."""
    return {"model": exp.keys.get("model"), "task": exp.keys.get("task")} | precision_key(exp)


def precision_key(exp: Experiment) -> dict[str, Any]:
    value = exp.trainer_kwargs.get("precision", precision.FP32)
    return {} if str(value) in (precision.FP32, "32") else {"precision": value}


# --- sft_policy ----------------------------------------------------------------------------

def sft_policy_spec(exp: Experiment) -> dict[str, Any]:
    return {"model": exp.keys.get("model"), "task": exp.keys.get("task"), "init": asdict(exp.init),
            "trainable_layers": exp.trainable_layers, "seed": exp.seed} | precision_key(exp)


def sft_policy(exp: Experiment, prep: Prepared, cache: ArtifactCache) -> Prepared:
    """Fine-tune the initial policy on the task's references (an artifact), then start from it."""
    spec = sft_policy_spec(exp)

    def build(out: Path) -> None:
        examples = exp.task.examples("train")[: exp.init.n]
        prompts = encode_prompts(prep.tokenizer, examples, exp.task.max_new_tokens, context_length(prep.policy.config))
        log.info("init.policy=sft: fine-tuning on %d references", len(examples))
        policy = supervised_fine_tune(prep.policy, prep.tokenizer, prompts, [e.reference or "" for e in examples],
                                      exp.init, exp.trainer_kwargs, stage_seed(exp.seed, "init_sft"))
        policy.save_pretrained(out)
        prep.tokenizer.save_pretrained(out)

    path = cache.get_or_build("sft_policy", spec, build)
    exp.tracker.set_tags({"artifact.sft_policy": config_hash(spec)})
    policy, tokenizer = load_causal_lm(path)
    freeze_lower_layers(policy, exp.trainable_layers)
    adapt(policy, exp.lora, exp.trainable_layers)
    return replace(prep, policy_dir=path, policy=policy, tokenizer=tokenizer)


# --- samples and labels --------------------------------------------------------------------

def task_stop(tokenizer: Any, exp: Experiment) -> Stop:
    """Where the task's responses end (`task.stop` after `task.stop_after` tokens, or EOS),
    refused when no token of the vocabulary ends in the stop text or it could never apply."""
    task = exp.task
    if task.stop is None:
        return stop_rule(tokenizer)
    if not isinstance(task.stop, str) or not task.stop:
        raise InputError(f"task.stop: expected a non-empty text or null, got {task.stop!r}")
    if not 0 <= task.stop_after < task.max_new_tokens:
        raise InputError(f"task.stop_after: expected an integer in 0..{task.max_new_tokens - 1} (below "
                         f"task.max_new_tokens={task.max_new_tokens}), got {task.stop_after!r}")
    stop = stop_rule(tokenizer, task.stop, task.stop_after)
    if not stop.ids:
        raise InputError(f"task.stop={task.stop!r}: no token of the model's vocabulary ends with it")
    return stop


def samples_spec(exp: Experiment) -> dict[str, Any]:
    """The identity of a run's samples: its first labels.n prompts of the chunked pool."""
    return model_keys(exp) | {"n": exp.labels.n, "k": exp.labels.k, "sampling": asdict(exp.sampling),
                              "seed": exp.seed}


def chunks(exp: Experiment, n: int) -> list[tuple[int, int]]:
    """The pool's chunks (start, stop) over the task's train prompts that the first `n` need:
    `sampling.chunk` prompts each, the last one cut at the end of the pool."""
    size, pool = exp.sampling.chunk, len(exp.task.examples("train"))
    return [(start, min(start + size, pool)) for start in range(0, n, size)]


def samples_chunk_spec(exp: Experiment, start: int) -> dict[str, Any]:
    """One chunk of the pool: its samples depend on the chunk, never on labels.n, so a smaller
    budget reads a prefix of what a larger one built (and a label-budget sweep samples its
    largest budget once)."""
    return model_keys(exp) | {"k": exp.labels.k, "sampling": asdict(exp.sampling), "seed": exp.seed,
                              "chunk_start": start, "sampler": SAMPLER}


def boundary_spec(exp: Experiment, start: int, k: int) -> dict[str, Any]:
    """The boundary states of one chunk's rows at block k (an artifact beside the chunk's samples)."""
    return samples_chunk_spec(exp, start) | {"states_at": k}


def samples(exp: Experiment, prep: Prepared, cache: ArtifactCache,
            progress: ProgressBar) -> tuple[list[list[dict[str, Any]]], StateTable | None]:
    """k responses of the initial policy to the train prompts, with their decoded texts, chunk
    by chunk of the pool, as many chunks as the first labels.n prompts need (each chunk its own
    artifact and seed, sampled whole even when fewer of its prompts are used).

    When the method trains from boundary states (`Method.reads_states`) and the policy's bottom
    blocks are frozen, the states entering its first trainable block are recorded while sampling
    (an artifact per chunk, `boundary`) and returned as one table; None when any chunk has none
    (it was sampled before, for a run that did not record them) or they would exceed
    STATES_BUDGET."""
    k_samples = exp.labels.k
    train = exp.task.examples("train")
    context = context_length(prep.policy.config)
    found: list[list[dict[str, Any]]] = []
    table = None
    if exp.method.reads_states():
        n = min(len(train), -(-exp.labels.n // exp.sampling.chunk) * exp.sampling.chunk)
        table = recording_table(prep.policy, encode_prompts(prep.tokenizer, train[:n], exp.task.max_new_tokens, context),
                                k_samples, exp.task.max_new_tokens)
    k = table.k if table is not None else 0
    for start, stop in chunks(exp, exp.labels.n):
        examples = train[start:stop]
        recorded: list[StateTable] = []

        def build(out: Path, start: int = start, examples: Sequence[Example] = examples,
                  recorded: list[StateTable] = recorded) -> None:
            ids = encode_prompts(prep.tokenizer, examples, exp.task.max_new_tokens, context)
            states = StateTable(k) if k else None
            responses, logps = generate_with_logps(
                prep.policy, prep.tokenizer, ids, max_new_tokens=exp.task.max_new_tokens,
                temperature=exp.sampling.temperature, top_p=exp.sampling.top_p, k=k_samples,
                batch_size=exp.sampling.batch_size, seed=stage_seed(exp.seed, f"samples:{start}"),
                progress=progress, stop=task_stop(prep.tokenizer, exp), states=states,
                desc=f"sampling {k_samples} responses × prompts {start}–{start + len(examples) - 1}",
            )
            write_jsonl(out / "samples.jsonl", [
                {"id": e.id, "prompt": e.prompt, "prompt_ids": p, "responses": r,
                 "texts": [prep.tokenizer.decode(x, skip_special_tokens=True) for x in r], "logps": lp}
                for e, p, r, lp in zip(examples, ids, responses, logps)
            ])
            if states is not None:
                recorded.append(states)

        found.append(read_jsonl(cache.get_or_build("samples", samples_chunk_spec(exp, start), build) / "samples.jsonl"))
        if k:
            spec = boundary_spec(exp, start, k)
            if recorded:  # sampled just now: keep what the sampler recorded, for later runs too
                cache.get_or_build("boundary", spec, lambda out, t=recorded[0]: t.save(out))
            path = cache.path("boundary", spec)
            if table is not None and is_complete(path):  # from disk: inference-mode tensors cannot train
                table.update(StateTable.load(path))
            else:
                table = None
    return found, table


def labels_spec(exp: Experiment) -> dict[str, Any]:
    return {"samples": config_hash(samples_spec(exp)), "labeler": exp.keys.get("labeler"), "seed": exp.seed} \
        | kind_key(exp)


def labels_chunk_spec(exp: Experiment, start: int) -> dict[str, Any]:
    return {"samples": config_hash(samples_chunk_spec(exp, start)), "labeler": exp.keys.get("labeler"),
            "seed": exp.seed} | kind_key(exp)


def kind_key(exp: Experiment) -> dict[str, Any]:
    """Binary labels are other labels of the same samples (comparisons keep their keys)."""
    return {"kind": exp.labels.kind} if exp.labels.kind != "comparison" else {}


def write_labels(out: Path, exp: Experiment, examples: Sequence[Example], sampled: Sequence[Mapping[str, Any]],
                 seed_name: str, progress: ProgressBar, desc: str) -> None:
    """The labeler's choice for each sampled group (rows with `id` and `texts`), drawn with the
    stage seed `seed_name`, written to `out` (labels.jsonl, meta.json) with provenance."""
    rng = np.random.default_rng(stage_seed(exp.seed, seed_name))
    task_id = progress.add_task(desc, total=1)
    binary = exp.labels.kind == "binary"
    texts = [s["texts"] for s in sampled]
    result = exp.labeler.rate(examples, texts, rng) if binary else exp.labeler.label(examples, texts, rng)
    progress.advance(task_id)
    provenance = {"labeler": exp.labeler.name, "version": exp.labeler.version, "seed": exp.seed,
                  "time": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if binary:  # each prompt's k ratings, and each annotator's k votes (people: each response's ratings)
        votes = (np.asarray(result.votes).reshape(-1, len(sampled), result.choice.shape[1]).transpose(1, 0, 2).tolist()
                 if isinstance(result.votes, np.ndarray) else result.votes)
        rows = [{"id": s["id"], "ratings": [int(x) for x in r], "choice": int(np.argmax(r)), "votes": v}
                for s, r, v in zip(sampled, result.choice, votes)]
    else:
        # Each prompt's votes: a panel's (A, N) array by column, or people's lists as given.
        votes = result.votes.T.tolist() if isinstance(result.votes, np.ndarray) else result.votes
        rows = [{"id": s["id"], "choice": int(c), "votes": list(v)} for s, c, v in zip(sampled, result.choice, votes)]
    if result.row_agreement is not None:
        rows = [row | {"agreement": a} for row, a in zip(rows, result.row_agreement)]
    write_jsonl(out / "labels.jsonl", [row | provenance for row in rows])
    (out / "meta.json").write_text(json.dumps({"agreement": result.agreement} | provenance))


def labels(exp: Experiment, cache: ArtifactCache, progress: ProgressBar,
           sampled: Sequence[Sequence[Mapping[str, Any]]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The labeler's best-of-k choice for each sampled group, with votes and provenance, chunk
    by chunk as the samples (each chunk's labels drawn with its own seed); and the labels' meta
    over the first labels.n: provenance and the annotators' agreement on those prompts."""
    rows: list[dict[str, Any]] = []
    train = exp.task.examples("train")
    meta: dict[str, Any] = {}
    waiting: list[AwaitingLabels] = []
    for (start, stop), chunk in zip(chunks(exp, exp.labels.n), sampled):

        def build(out: Path, start: int = start, stop: int = stop, chunk: Sequence[Mapping[str, Any]] = chunk) -> None:
            write_labels(out, exp, train[start:stop], chunk, f"labels:{start}", progress,
                         f"labelling prompts {start}–{stop - 1} with {exp.labeler.name}")

        try:
            path = cache.get_or_build("labels", labels_chunk_spec(exp, start), build)
        except AwaitingLabels as wait:  # people's labels: gather every chunk's pending ones, then stop
            waiting.append(wait)
            continue
        rows += read_jsonl(path / "labels.jsonl")
        meta = json.loads((path / "meta.json").read_text())
    if waiting:
        w = waiting[0]
        raise AwaitingLabels(w.queue, w.labels, sum(x.pending for x in waiting), sum(x.added for x in waiting),
                             w.host, w.port)
    rows = rows[: exp.labels.n]
    # Agreement over the prompts used: the mean over prompts of the annotator pairs that agree.
    agreement = (float(np.mean([r["agreement"] if "agreement" in r else row_agreement(r["votes"]) for r in rows]))
                 if meta.get("agreement") is not None else None)
    return rows, {k: v for k, v in meta.items() if k != "time"} | {"agreement": agreement}


def gold_agreement(exp: Experiment, examples: Sequence[Example], groups: Sequence[Sequence[Sequence[int]]],
                   choices: Sequence[int], tokenizer: Any) -> float | None:
    """How often the labels pick what the judge's gold ranks best: the share of comparisons
    whose chosen response has the group's top gold reward (any of them, on a tie). Only for
    labels from someone other than the judge (a file, people, an LLM judge, with a panel as
    labeler@judge); None otherwise, or when the judge has no gold."""
    if exp.judge is None or exp.judge is exp.labeler:
        return None
    texts = [[tokenizer.decode(r, skip_special_tokens=True) for r in g] for g in groups]
    gold = exp.judge.gold([e for e, g in zip(examples, texts) for _ in g], [t for g in texts for t in g])
    if gold is None:
        return None
    hits, start = [], 0
    for group, choice in zip(texts, choices):
        values = np.asarray(gold[start : start + len(group)], dtype=float)
        start += len(group)
        hits.append(values[choice] >= values.max())
    return float(np.mean(hits)) if hits else None


def row_agreement(votes: Sequence[int]) -> float:
    """Share of annotator pairs that made the same choice on one prompt (1 for one annotator)."""
    a = len(votes)
    pairs = [(i, j) for i in range(a) for j in range(i + 1, a)]  # binary labels: each a list of k ratings
    return float(np.mean([np.mean(np.asarray(votes[i]) == np.asarray(votes[j])) for i, j in pairs])) if pairs else 1.0


def sampled_labels(exp: Experiment, prep: Prepared, cache: ArtifactCache, progress: ProgressBar) -> Labelled:
    """Samples of the initial policy, labelled best-of-k by the simulated panel."""
    pool, states = samples(exp, prep, cache, progress)
    sampled = [row for chunk in pool for row in chunk][: exp.labels.n]
    chosen, meta = labels(exp, cache, progress, pool)
    return Labelled(
        [s["prompt_ids"] for s in sampled], [s["responses"] for s in sampled], [lab["choice"] for lab in chosen],
        spec=samples_spec(exp), meta=meta,
        artifacts={"samples": config_hash(samples_spec(exp)), "labels": config_hash(labels_spec(exp))},
        choices_key=config_hash(labels_spec(exp)),
        ref_logps=[s["logps"] for s in sampled], states=states,
        ratings=[lab["ratings"] for lab in chosen] if exp.labels.kind == "binary" else None,
    )


def imported_labels(exp: Experiment, prep: Prepared) -> Labelled:
    """Comparisons read from a file: responses tokenised, ended with EOS like a sample."""
    assert prep.imported is not None
    tok = prep.tokenizer
    encode = lambda text: tok(text, add_special_tokens=False).input_ids + [tok.eos_token_id]  # noqa: E731
    n = len(prep.train_examples)
    responses = [[encode(r) for r in group] for group in prep.imported.candidates[:n]]
    return Labelled(
        prep.train_ids, responses, list(prep.imported.choices[:n]),
        spec={"model": exp.keys.get("model"), "file": prep.imported_sha256, "n": n},
        meta={"labeler": exp.labeler.name, "version": exp.labeler.version, "file": str(getattr(exp.labeler, "path", "")),
              "sha256": prep.imported_sha256, "agreement": None},
    )


# --- eval_initial --------------------------------------------------------------------------

def eval_samples(policy: Any, tokenizer: Any, eval_ids: Sequence[Sequence[int]], exp: Experiment,
                 progress: ProgressBar, desc: str, k: int = 1) -> list[list[int]] | list[list[list[int]]]:
    """Responses to the eval prompts at the eval temperature, with the eval seed (k per prompt
    for k > 1)."""
    responses = generate_responses(
        policy, tokenizer, eval_ids, max_new_tokens=exp.task.max_new_tokens,
        temperature=exp.eval.temperature, k=k, batch_size=exp.eval.batch_size,
        seed=stage_seed(exp.seed, "eval"), progress=progress, desc=desc, stop=task_stop(tokenizer, exp),
    )
    return [r[0] for r in responses] if k == 1 else responses


def eval_samples_with_logps(policy: Any, tokenizer: Any, eval_ids: Sequence[Sequence[int]], exp: Experiment,
                            progress: ProgressBar | None, desc: str) -> Samples:
    """`eval_samples` (k = 1, the same responses) with what the sampler computed on the way: the
    policy's Σ log π of each at the eval temperature (the policy's side of the eval KL without a
    second pass) and, when its bottom blocks are frozen, the states entering the first trainable
    one (a reference with the same bottom runs only the blocks above: `reference_logps`)."""
    states = recording_table(policy, eval_ids, 1, exp.task.max_new_tokens)
    responses, logps = generate_with_logps(
        policy, tokenizer, eval_ids, max_new_tokens=exp.task.max_new_tokens,
        temperature=exp.eval.temperature, k=1, batch_size=exp.eval.batch_size,
        seed=stage_seed(exp.seed, "eval"), progress=progress, desc=desc, stop=task_stop(tokenizer, exp),
        logps_temperature=exp.eval.temperature, states=states,
    )
    return Samples([r[0] for r in responses], [lp[0] for lp in logps], states)


def eval_initial_spec(exp: Experiment) -> dict[str, Any]:
    # The series' settings (eval.every, …) do not change these samples: keys stay as they were.
    settings = {k: v for k, v in asdict(exp.eval).items() if k not in EvalSettings.SERIES}
    return model_keys(exp) | {"eval": settings, "seed": exp.seed, "sampler": SAMPLER}


def eval_initial(exp: Experiment, prep: Prepared, cache: ArtifactCache, progress: ProgressBar) -> list[list[int]]:
    """The initial policy's eval responses: the baseline of every run on this model and task."""

    def build(out: Path) -> None:
        responses = eval_samples(prep.policy, prep.tokenizer, prep.eval_ids, exp, progress, "eval samples: initial policy")
        (out / "responses.json").write_text(json.dumps(responses))

    return json.loads((cache.get_or_build("eval_initial", eval_initial_spec(exp), build) / "responses.json").read_text())


# --- reference log-probs -------------------------------------------------------------------

def _reference_logps(ctx: TrainContext, stage: str, spec: dict[str, Any], prompts: Sequence[Sequence[int]],
                     responses: Sequence[Sequence[int]], desc: str,
                     known: list[list[float]] | None = None) -> list[list[float]]:
    """The reference's log-probs as an artifact: `known` (the sampler's, when it was the
    reference) or a forward pass over the responses."""
    exp, prep, labelled = ctx.exp, ctx.prep, ctx.labelled

    def build(out: Path) -> None:
        if known is not None:
            (out / f"{stage}.json").write_text(json.dumps(known))
            return
        model = ctx.reference if ctx.reference is not None else prep.policy
        with ctx.progress() as progress:
            flat = iter(batched_logps(model, prompts, responses, prep.tokenizer.pad_token_id,
                                      exp.sampling.batch_size, progress=progress, desc=desc, share_prompts=True))
        (out / f"{stage}.json").write_text(json.dumps([[next(flat) for _ in g] for g in labelled.responses]))

    path = ctx.cache.get_or_build(stage, spec, build)
    exp.tracker.set_tags({f"artifact.{stage}": config_hash(spec)})
    return json.loads((path / f"{stage}.json").read_text())


def ref_logps_spec(labelled: Labelled) -> dict[str, Any]:
    # The sampler's numbers differ from a forward pass's in float rounding: another artifact.
    return {"labelled": config_hash(labelled.spec)} | ({"from": "sampler"} if labelled.ref_logps is not None else {})


def ref_logps(ctx: TrainContext) -> list[list[float]]:
    """log π_ref(y | x) of every labelled response, per comparison group: the sampler's own
    when the initial policy (the reference) sampled them, else a forward pass."""
    labelled = ctx.labelled
    flat_p = [p for p, group in zip(labelled.prompt_ids, labelled.responses) for _ in group]
    flat_r = [r for group in labelled.responses for r in group]
    return _reference_logps(ctx, "ref_logps", ref_logps_spec(labelled), flat_p, flat_r, "reference log-probs",
                            known=labelled.ref_logps)


def ref_kl_logps_spec(labelled: Labelled, seed: int) -> dict[str, Any]:
    return {"labelled": config_hash(labelled.spec), "kl_partners_seed": seed}


def ref_kl_logps(ctx: TrainContext, partners: Sequence[int]) -> list[list[float]]:
    """log π_ref(y' | x) of each prompt with its KL partner's responses (KTO's z0)."""
    labelled = ctx.labelled
    flat_p = [p for p, group in zip(labelled.prompt_ids, labelled.responses) for _ in group]
    flat_r = [r for i, group in enumerate(labelled.responses)
              for r in partner_group(labelled.responses, partners, i, len(group))]
    return _reference_logps(ctx, "ref_kl_logps", ref_kl_logps_spec(labelled, ctx.exp.seed), flat_p, flat_r,
                            "reference log-probs: mismatched pairs")


# --- reward_model --------------------------------------------------------------------------

def reward_model_spec(exp: Experiment, labelled: Labelled) -> dict[str, Any]:
    # Keyed by the labels themselves (not only the samples): another labeler, another model.
    return {"labels": labelled.choices_key, "reward_model": exp.keys.get("reward_model"), "seed": exp.seed,
            "bucket": exp.train.bucket, "normalization": "population"} | precision_key(exp)  # (n − 1: rebuilt)


def top_accuracy(rewards: torch.Tensor, sizes: Sequence[int], targets: Sequence[int]) -> float:
    """Share of groups (consecutive runs of `sizes` rewards) whose top reward is the target."""
    hits, start = 0, 0
    for size, target in zip(sizes, targets):
        hits += int(rewards[start : start + size].argmax()) == target
        start += size
    return hits / max(len(sizes), 1)


# The most a stage holds of boundary states (fp32) to skip the frozen blocks' repeated passes;
# above it (long prompts × many labels) every pass runs the whole model, as before.
STATES_BUDGET = 2 << 30


def recording_table(model: torch.nn.Module, prompts: Sequence[Sequence[int]], per_prompt: int,
                    max_new_tokens: int) -> StateTable | None:
    """An empty table at `model`'s first trainable block for its sampler to fill
    (`generate_with_logps(states=…)`), or None when nothing is frozen or the states of these
    prompts and `per_prompt` responses to each (≤ max_new_tokens) would exceed STATES_BUDGET."""
    k = frozen_blocks(model)
    if k == 0:
        return None
    size = 4 * model.config.get_text_config().hidden_size * sum(len(p) + per_prompt * max_new_tokens for p in prompts)
    if size > STATES_BUDGET:
        log.info("boundary states of %d prompts would take %.1f GB (> %.1f): every pass runs the frozen blocks",
                 len(prompts), size / 1e9, STATES_BUDGET / 1e9)
        return None
    return StateTable(k)


def boundary_states(model: torch.nn.Module, prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]],
                    pad_id: int, batch_size: int) -> StateTable | None:
    """The states entering `model`'s first trainable block for these rows, computed once
    (trunk.StateTable), or None when nothing is frozen or they would exceed STATES_BUDGET."""
    k = frozen_blocks(model)
    if k == 0:
        return None
    size = StateTable.nbytes(model, prompts, responses)
    if size > STATES_BUDGET:
        log.info("boundary states of %d rows would take %.1f GB (> %.1f): every pass runs the frozen blocks",
                 len(responses), size / 1e9, STATES_BUDGET / 1e9)
        return None
    return StateTable.build(model, k, prompts, responses, pad_id, batch_size)


def with_rows(table: StateTable, model: torch.nn.Module, prompts: Sequence[Sequence[int]],
              responses: Sequence[Sequence[int]], pad_id: int, batch_size: int) -> StateTable | None:
    """`table` completed with the states of these rows (a bottom pass over the ones it lacks;
    their prompts' states are reused), or None when they would take it past STATES_BUDGET."""
    missing = [(p, r) for p, r in zip(prompts, responses) if (p, r) not in table]
    size = table.held_bytes() + 4 * model.config.get_text_config().hidden_size * sum(len(r) for _, r in missing)
    if size > STATES_BUDGET:
        log.info("boundary states of %d more rows would take %.1f GB (> %.1f): every pass runs the frozen blocks",
                 len(missing), size / 1e9, STATES_BUDGET / 1e9)
        return None
    return table.complete(model, [p for p, _ in missing], [r for _, r in missing], pad_id, batch_size)


def reward_model(ctx: TrainContext, settings: RewardModelSettings) -> RewardModel:
    """Train (or load from the cache) the reward model on the labelled comparisons.

    Once trained, normalised to exactly mean 0 and population std 1 over every labelled
    response (train and validation): samples of the initial policy, or with labeler=file the
    file's responses. Logs its summary: rm_train/loss, rm_val/rewards/accuracy (held-out comparisons whose
    labelled best gets the top reward) and, where the judge has a gold, rm_val/gold_accuracy
    (whose noise-free best does).
    """
    exp, prep, labelled = ctx.exp, ctx.prep, ctx.labelled
    spec = reward_model_spec(exp, labelled)
    groups = [ComparisonGroup(tuple(p), tuple(tuple(r) for r in g), c)
              for p, g, c in zip(labelled.prompt_ids, labelled.responses, labelled.choices)]
    n_val = settings.check_budget(len(groups))
    seed = stage_seed(exp.seed, "reward_model")
    rm_key = config_hash(spec) if exp.run_key else ""  # checkpoints only for runs that can resume

    def build(out: Path) -> None:
        torch.manual_seed(seed)
        rm = RewardModel.from_policy_dir(prep.policy_dir, settings.pooling)
        freeze_lower_layers(rm.trunk, settings.trainable_layers, key="loss.reward_model.trainable_layers", minimum=0)
        flat_p = [g.prompt_ids for g in groups for _ in g.responses]
        flat_r = [r for g in groups for r in g.responses]
        states = boundary_states(rm.trunk, flat_p, flat_r, prep.tokenizer.pad_token_id, settings.batch_size)
        module = RewardModelModule(rm, settings.loss_fn, settings.lr, settings.weight_decay, settings.head_lr,
                                   states=states)
        data = ListDataModule(groups[:-n_val], groups[-n_val:], GroupCollator(prep.tokenizer.pad_token_id),
                              settings.batch_size, seed, bucket=exp.train.bucket)
        trainer = fit(exp, rm_key and f"reward_model-{rm_key}", "reward_model", module, datamodule=data,
                      max_epochs=settings.epochs, max_steps=-1)
        rm.eval()
        with torch.inference_mode():
            batches = [pack(flat_p[i : i + 32], flat_r[i : i + 32], prep.tokenizer.pad_token_id, True)
                       for i in range(0, len(flat_p), 32)]
            raw = torch.cat([rm.raw(states.attach(b) if states is not None else b) for b in batches])
        rm.set_normalization(raw)
        val = groups[-n_val:]
        val_rewards = raw[-sum(len(g.responses) for g in val):]
        sizes = [len(g.responses) for g in val]
        # Stored with the model so that runs which load it from the cache report it too.
        metrics = {"rm_train/loss": float(trainer.callback_metrics["rm_train/loss"]),
                   "rm_val/rewards/accuracy": top_accuracy(val_rewards, sizes, [g.choice for g in val])}
        examples = prep.train_examples[len(groups) - n_val : len(groups)]
        gold_best = []
        for e, g in zip(examples, val):
            texts = [prep.tokenizer.decode(r, skip_special_tokens=True) for r in g.responses]
            gold = exp.evaluator.gold([e] * len(texts), texts)
            if gold is None:
                break
            gold_best.append(int(np.argmax(gold)))
        else:
            metrics["rm_val/gold_accuracy"] = top_accuracy(val_rewards, sizes, gold_best)
        rm.save(out)
        (out / "metrics.json").write_text(json.dumps(metrics))

    path = ctx.cache.get_or_build("reward_model", spec, build)
    if rm_key:
        shutil.rmtree(exp.cache_dir / "checkpoints" / f"reward_model-{rm_key}", ignore_errors=True)
    exp.tracker.set_tags({"artifact.reward_model": config_hash(spec)})
    exp.tracker.log_metrics(json.loads((path / "metrics.json").read_text()))
    return RewardModel.load(path)

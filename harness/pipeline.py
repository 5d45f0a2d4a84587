"""The experiment's stages and how they share artifacts.

policy → samples (k per train prompt) → labels (panel, best-of-k; or a file of human labels)
→ train (the loss's method: see methods.py) → evaluate (held-out prompts) → MLflow. Every
stage before training writes an artifact keyed by the hash of exactly the settings that
determine it (see cache.py), so runs that share a stage share its output.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from filelock import FileLock
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from harness.cache import ArtifactCache, config_hash, stage_seed
from harness.errors import InputError
from harness.eval.evaluate import evaluate_policy
from harness.eval.metrics import mean_ci
from harness.labelers.file import FileExamples, FileLabeler
from harness.labelers.panel import Panel
from harness.models.loading import freeze_lower_layers, load_causal_lm
from harness.models.sources import Corpus
from harness.methods import EvalPolicy, TrainContext, eval_samples, supervised_fine_tune
from harness.rl.rollout import generate_responses
from harness.tasks.base import Example, Task
from harness.tracking import RunTracker

log = logging.getLogger(__name__)


class Method(Protocol):
    def fit(self, ctx: TrainContext) -> EvalPolicy: ...


class ModelSource(Protocol):
    def materialize(self, cache_dir: Path, corpus: Corpus | None = None) -> Path: ...


def _check(key: str, ok: bool, expected: str, found: Any) -> None:
    if not ok:
        raise InputError(f"{key}: expected {expected}, got {found!r}")


@dataclass(frozen=True)
class SamplingSettings:
    temperature: float = 0.7
    top_p: float = 1.0
    batch_size: int = 32

    def __post_init__(self) -> None:
        _check("sampling.temperature", self.temperature > 0, "a temperature > 0", self.temperature)
        _check("sampling.top_p", 0 < self.top_p <= 1, "a probability in (0, 1]", self.top_p)
        _check("sampling.batch_size", self.batch_size >= 1, "an integer ≥ 1", self.batch_size)


@dataclass(frozen=True)
class LabelSettings:
    n: int = 1000  # label budget: comparisons, one per prompt
    k: int = 2  # responses compared per label (4 = the paper's best-of-4)
    # Share of the chosen responses kept for training (KTO paper's imbalance experiment):
    # KTO loses desirable examples, pairwise objectives the pairs built on them.
    desirable_fraction: float = 1.0

    def __post_init__(self) -> None:
        if self.n < 1:
            raise InputError(f"labels.n must be ≥ 1, got {self.n}")
        if self.k < 2:
            raise InputError(f"labels.k must be ≥ 2, got {self.k}")
        if not 0 < self.desirable_fraction <= 1:
            raise InputError(f"labels.desirable_fraction must be in (0, 1], got {self.desirable_fraction}")


INIT_POLICIES = ("base", "sft")


@dataclass(frozen=True)
class InitSettings:
    """The initial policy: the model as loaded (`base`), or that model first fine-tuned on the
    task's references (`sft`, Ziegler et al.'s supervised baseline for summarisation, from which
    their RL starts). The fine-tuned policy is an artifact shared by every run that uses it."""

    policy: str = "base"
    n: int | None = None  # references to fine-tune on; None: every train example of the task
    lr: float = 1e-5
    epochs: int = 1
    batch_size: int = 8

    def __post_init__(self) -> None:
        if self.policy not in INIT_POLICIES:
            raise InputError(f"init.policy={self.policy!r}: expected one of {', '.join(INIT_POLICIES)}")
        if not self.lr > 0 or self.epochs < 1 or self.batch_size < 1 or (self.n is not None and self.n < 1):
            raise InputError(f"init: lr must be > 0 and epochs, batch_size, n ≥ 1; got {self}")


@dataclass(frozen=True)
class TrainSettings:
    lr: float = 1e-5
    batch_size: int = 8
    weight_decay: float = 0.0
    warmup_steps: int = 0
    val_fraction: float = 0.1
    checkpoint_every: int = 50  # training batches (PPO: iterations) between resumable checkpoints
    bucket: int = 16  # batches per length bucket (data/resumable.py); 0: no bucketing

    def __post_init__(self) -> None:
        _check("train.lr", self.lr > 0, "a learning rate > 0", self.lr)
        _check("train.batch_size", self.batch_size >= 1, "an integer ≥ 1", self.batch_size)
        _check("train.weight_decay", self.weight_decay >= 0, "a value ≥ 0", self.weight_decay)
        _check("train.warmup_steps", self.warmup_steps >= 0, "an integer ≥ 0", self.warmup_steps)
        _check("train.val_fraction", 0 <= self.val_fraction < 1, "a fraction in [0, 1)", self.val_fraction)
        _check("train.checkpoint_every", self.checkpoint_every >= 1, "an integer ≥ 1", self.checkpoint_every)
        _check("train.bucket", self.bucket >= 0, "an integer ≥ 0 (0: no length bucketing)", self.bucket)


@dataclass(frozen=True)
class EvalSettings:
    n_prompts: int | None = None  # None: every eval prompt of the task
    temperature: float = 0.7
    batch_size: int = 32

    def __post_init__(self) -> None:
        _check("eval.n_prompts", self.n_prompts is None or self.n_prompts >= 1, "null or an integer ≥ 1", self.n_prompts)
        _check("eval.temperature", self.temperature > 0, "a temperature > 0", self.temperature)
        _check("eval.batch_size", self.batch_size >= 1, "an integer ≥ 1", self.batch_size)


@dataclass
class Experiment:
    """Everything one run needs, as typed objects (built from the Hydra config by the CLI)."""

    task: Task
    model_source: ModelSource
    labeler: Panel | FileLabeler
    method: Method
    labels: LabelSettings
    sampling: SamplingSettings
    train: TrainSettings
    eval: EvalSettings
    trainer_kwargs: dict[str, Any]
    tracker: RunTracker
    cache_dir: Path
    run_dir: Path
    seed: int
    trainable_layers: int | None = None
    judge: Panel | None = None  # evaluates; None: the labeler itself
    # The config subtrees that determine each input, used in artifact keys.
    keys: Mapping[str, Any] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    config_yaml: str = ""
    init: InitSettings = field(default_factory=InitSettings)
    # Identity of the job (hash of its config): a rerun finds its MLflow run and checkpoints.
    run_key: str = ""
    resume: bool = True


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(),
    )


def _write_jsonl(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    with path.open("w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open() as f:
        return [json.loads(line) for line in f]


def encode_prompts(tokenizer, examples: Sequence[Example], max_new_tokens: int, context: int) -> list[list[int]]:  # noqa: ANN001
    ids = [tokenizer(e.prompt, add_special_tokens=False).input_ids for e in examples]
    longest = max(len(i) for i in ids)
    if longest + max_new_tokens > context:
        raise InputError(
            f"prompt of {longest} tokens + {max_new_tokens} response tokens exceeds the model's "
            f"context of {context}; shorten the prompts or task.max_new_tokens"
        )
    return ids


@dataclass
class Prepared:
    """Inputs checked and loaded before any run or artifact is created."""

    train_examples: list[Example]
    eval_examples: list[Example]
    policy_dir: Path
    policy: Any
    tokenizer: Any
    train_ids: list[list[int]]
    eval_ids: list[list[int]]
    imported: FileExamples | None = None  # labels read from a file instead of the panel
    imported_sha256: str = ""


@dataclass
class Labelled:
    """Best-of-k comparisons ready for training, from the panel or from a file."""

    prompt_ids: list[list[int]]
    responses: list[list[list[int]]]  # [N][k] token ids
    choices: list[int]
    spec: dict[str, Any]  # what determines the responses: keys the reference log-probs
    meta: dict[str, Any]  # provenance and agreement
    artifacts: dict[str, str] = field(default_factory=dict)
    choices_key: str = ""  # hash of what determines the choices too: keys the reward model

    def __post_init__(self) -> None:
        self.choices_key = self.choices_key or config_hash(self.spec)


def prepare(exp: Experiment) -> Prepared:
    """Load the prompts and the initial policy and check that they fit together."""
    task, n = exp.task, exp.labels.n
    imported = exp.labeler.as_examples() if isinstance(exp.labeler, FileLabeler) else None
    if imported is not None:
        if exp.judge is None:
            raise InputError(
                f"labeler=file ({exp.labeler.path}) has no gold judgement; choose a panel to evaluate "
                "with, e.g. labeler@judge=sentiment_panel"
            )
        train_examples = imported.examples
    else:
        train_examples = task.examples("train")
    check = getattr(exp.method, "check", None)  # a method's own checks of the data, before any run
    if check is not None:
        check(task.name, train_examples[:n])
    if n > len(train_examples):
        where = f"comparisons in {exp.labeler.path}" if imported else f"train prompts of task {task.name}"
        raise InputError(f"labels.n={n} is larger than the {len(train_examples)} {where}")
    eval_examples = task.examples("eval")[: exp.eval.n_prompts]
    if exp.init.policy == "sft":
        missing = [e.id for e in task.examples("train")[: exp.init.n] if not e.reference]
        if missing:
            raise InputError(f"init.policy=sft fine-tunes on the task's references, but task {task.name} has none "
                             f"(e.g. {missing[0]}); use init.policy=base")
    policy_dir = exp.model_source.materialize(exp.cache_dir, lambda: (e.prompt for e in task.examples("train")))
    policy, tokenizer = load_causal_lm(policy_dir)
    freeze_lower_layers(policy, exp.trainable_layers)  # checked now, before any stage runs
    context = int(getattr(policy.config, "max_position_embeddings", 1 << 30))
    train_examples = train_examples[:n]
    return Prepared(
        train_examples, eval_examples, policy_dir, policy, tokenizer,
        encode_prompts(tokenizer, train_examples, task.max_new_tokens, context),
        encode_prompts(tokenizer, eval_examples, task.max_new_tokens, context),
        imported,
        hashlib.sha256(Path(exp.labeler.path).expanduser().read_bytes()).hexdigest() if imported else "",
    )


def run_experiment(exp: Experiment) -> dict[str, float]:
    """Run every stage of one experiment and log it as one MLflow run; returns its metrics."""
    prepared = prepare(exp)
    if not exp.run_key:
        return _tracked(exp, prepared, key=None)
    # One job per configuration at a time: an identical job launched meanwhile waits here, then
    # finds the run finished (or resumes it if this one was killed).
    checkpoints = exp.cache_dir / "checkpoints" / exp.run_key
    (exp.cache_dir / "runs").mkdir(parents=True, exist_ok=True)
    with FileLock(str(exp.cache_dir / "runs" / f"{exp.run_key}.lock")):
        if not exp.resume:
            shutil.rmtree(checkpoints, ignore_errors=True)
        metrics = _tracked(exp, prepared, key=exp.run_key if exp.resume else None)
        shutil.rmtree(checkpoints, ignore_errors=True)  # finished: nothing left to resume
    return metrics


def _tracked(exp: Experiment, prepared: Prepared, key: str | None) -> dict[str, float]:
    run_id, finished = exp.tracker.start(exp.tags, exp.params, key=key)
    where = f"in experiment {exp.tracker.experiment_name!r} at {exp.tracker.tracking_uri}"
    if finished:
        log.info("MLflow run %s %s already finished this configuration: not run again (resume=false runs it anew)",
                 run_id, where)
        return exp.tracker.metrics()
    log.info("MLflow run %s %s", run_id, where)
    try:
        exp.tracker.log_text(exp.config_yaml, "config.yaml")
        metrics = _run_stages(exp, prepared)
    except BaseException as err:
        exp.tracker.end("KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED")
        raise
    exp.tracker.end("FINISHED")
    return metrics


def sample_and_label(exp: Experiment, prep: Prepared, cache: ArtifactCache, progress: Progress) -> Labelled:
    """Samples of the initial policy, labelled best-of-k by the simulated panel."""
    n, k = exp.labels.n, exp.labels.k
    keys = {"model": exp.keys.get("model"), "task": exp.keys.get("task")}
    samples_spec = keys | {"n": n, "k": k, "sampling": asdict(exp.sampling), "seed": exp.seed}

    def sample(out: Path) -> None:
        responses = generate_responses(
            prep.policy, prep.tokenizer, prep.train_ids, max_new_tokens=exp.task.max_new_tokens,
            temperature=exp.sampling.temperature, top_p=exp.sampling.top_p, k=k,
            batch_size=exp.sampling.batch_size, seed=stage_seed(exp.seed, "samples"),
            progress=progress, desc=f"sampling {k} responses × {n} prompts",
        )
        _write_jsonl(out / "samples.jsonl", [
            {"id": e.id, "prompt": e.prompt, "prompt_ids": p, "responses": r,
             "texts": [prep.tokenizer.decode(x, skip_special_tokens=True) for x in r]}
            for e, p, r in zip(prep.train_examples, prep.train_ids, responses)
        ])

    samples = _read_jsonl(cache.get_or_build("samples", samples_spec, sample) / "samples.jsonl")
    labels_spec = {"samples": config_hash(samples_spec), "labeler": exp.keys.get("labeler"), "seed": exp.seed}

    def label(out: Path) -> None:
        rng = np.random.default_rng(stage_seed(exp.seed, "labels"))
        task_id = progress.add_task(f"labelling with {exp.labeler.name}", total=1)
        result = exp.labeler.label(prep.train_examples, [s["texts"] for s in samples], rng)
        progress.advance(task_id)
        provenance = {"labeler": exp.labeler.name, "version": exp.labeler.version, "seed": exp.seed,
                      "time": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        _write_jsonl(out / "labels.jsonl", [
            {"id": s["id"], "choice": int(c), "votes": v.tolist()} | provenance
            for s, c, v in zip(samples, result.choice, result.votes.T)
        ])
        (out / "meta.json").write_text(json.dumps({"agreement": result.agreement} | provenance))

    labels_dir = cache.get_or_build("labels", labels_spec, label)
    labels = _read_jsonl(labels_dir / "labels.jsonl")
    return Labelled(
        [s["prompt_ids"] for s in samples], [s["responses"] for s in samples], [lab["choice"] for lab in labels],
        spec=samples_spec, meta=json.loads((labels_dir / "meta.json").read_text()),
        artifacts={"samples": config_hash(samples_spec), "labels": config_hash(labels_spec)},
        choices_key=config_hash(labels_spec),
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
        meta={"labeler": exp.labeler.name, "version": exp.labeler.version, "file": str(exp.labeler.path),
              "sha256": prep.imported_sha256, "agreement": None},
    )


def supervised_init(exp: Experiment, prep: Prepared, cache: ArtifactCache) -> Prepared:
    """Fine-tune the initial policy on the task's references (an artifact), then start from it."""
    spec = {"model": exp.keys.get("model"), "task": exp.keys.get("task"), "init": asdict(exp.init),
            "trainable_layers": exp.trainable_layers, "seed": exp.seed}

    def build(out: Path) -> None:
        examples = exp.task.examples("train")[: exp.init.n]
        context = int(getattr(prep.policy.config, "max_position_embeddings", 1 << 30))
        prompts = encode_prompts(prep.tokenizer, examples, exp.task.max_new_tokens, context)
        log.info("init.policy=sft: fine-tuning on %d references", len(examples))
        policy = supervised_fine_tune(prep.policy, prep.tokenizer, prompts, [e.reference or "" for e in examples],
                                      exp.init, exp.trainer_kwargs, stage_seed(exp.seed, "init_sft"))
        policy.save_pretrained(out)
        prep.tokenizer.save_pretrained(out)

    path = cache.get_or_build("sft_policy", spec, build)
    exp.tracker.set_tags({"artifact.sft_policy": config_hash(spec)})
    policy, tokenizer = load_causal_lm(path)
    freeze_lower_layers(policy, exp.trainable_layers)
    return replace(prep, policy_dir=path, policy=policy, tokenizer=tokenizer)


def _run_stages(exp: Experiment, prep: Prepared) -> dict[str, float]:
    cache = ArtifactCache(exp.cache_dir / "artifacts")
    policy, tokenizer = prep.policy, prep.tokenizer
    judge = exp.judge or exp.labeler
    keys = {"model": exp.keys.get("model"), "task": exp.keys.get("task")}

    if exp.init.policy == "sft":
        prep = supervised_init(exp, prep, cache)
        policy = prep.policy
    with progress_bar() as progress:
        labelled = imported_labels(exp, prep) if prep.imported else sample_and_label(exp, prep, cache, progress)

        # The initial policy's eval samples: the baseline of every run on this model and task.
        eval_spec = keys | {"eval": asdict(exp.eval), "seed": exp.seed}

        def eval_initial(out: Path) -> None:
            responses = eval_samples(policy, tokenizer, prep.eval_ids, exp, progress, "eval samples: initial policy")
            (out / "responses.json").write_text(json.dumps(responses))

        initial_ids = json.loads((cache.get_or_build("eval_initial", eval_spec, eval_initial) / "responses.json").read_text())

    artifacts = labelled.artifacts | {"eval_initial": config_hash(eval_spec), "model": prep.policy_dir.name}
    exp.tracker.set_tags({f"artifact.{k}": v for k, v in artifacts.items()} | {"labeler.version": str(labelled.meta["version"])})
    if labelled.meta.get("agreement") is not None:
        exp.tracker.log_metrics({"labels/agreement": labelled.meta["agreement"]})

    trained = exp.method.fit(TrainContext(exp, prep, labelled, cache, progress_bar, initial_ids))

    log.info("evaluate: %d eval prompts", len(prep.eval_ids))
    with progress_bar() as progress:
        trained_ids = trained.responses(prep.eval_ids, progress)
        kl = trained.kl(prep.eval_ids, trained_ids, progress)
        result = evaluate_policy(
            tokenizer, judge, prep.eval_examples, trained_ids, initial_ids, kl,
            baseline_texts=getattr(exp.task, "baselines", None),
        )
        # Methods that optimise a learned reward also report it (over-optimisation: proxy vs gold).
        proxy = trained.proxy_rewards(prep.eval_ids, trained_ids) if hasattr(trained, "proxy_rewards") else None
        if proxy is not None:
            result.metrics |= mean_ci(proxy).as_metrics("eval/proxy_reward")
    exp.tracker.log_metrics(result.metrics, step=1)
    exp.tracker.log_table(result.table, "eval_samples.json")
    return result.metrics

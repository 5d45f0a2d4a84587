"""One experiment, stage after stage, as one MLflow run.

check (every input, without the weights: bad input stops here, before any run or artifact) →
prepare (the weights) →
[sft_policy] → samples → labels (or a file's comparisons) → eval_initial → train (the loss's
`Method`, harness/methods/; with labels.rounds > 1, rounds of samples → labels → train,
harness/online.py) → evaluate (held-out prompts) → MLflow. The stages themselves and
their cache keys are in stages.py; this module only runs them in order, under a per-job lock
that makes an identical job wait and a killed one resume.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from filelock import FileLock

from harness import online, precision, stages
from harness.cache import ArtifactCache
from harness.distributed import processes
from harness.errors import AwaitingLabels, InputError, Stopped
from harness.eval.evaluate import evaluate_policy
from harness.eval.metrics import mean_ci
from harness.eval.series import SUMMARY_KEYS as SERIES_SUMMARY
from harness.experiment import Experiment, Labelled, Prepared, TrainContext
from harness.labelers.file import FileExamples
from harness.logged_models import log_trained_models
from harness.models.loading import check_model_dir, freeze_lower_layers, load_causal_lm, load_tokenizer
from harness.models.lora import adapt
from harness.progress import progress_bar
from harness.tracking import dataset_input

log = logging.getLogger(__name__)


def check(exp: Experiment) -> Prepared:
    """Every input checked, before any run or artifact and without loading the weights: the
    MLflow store (a bounded, announced wait for a server), the prompts and labels against the
    budget and the method, the model directory, and every text against the model's context.
    Returns the inputs loaded so far (`policy` is None); a sweep checks each point with this
    before launching any."""
    exp.tracker.check()
    task, n = exp.task, exp.labels.n
    if task.max_new_tokens < 1:
        raise InputError(f"task.max_new_tokens: expected an integer ≥ 1, got {task.max_new_tokens}")
    imported = exp.labeler.as_examples()
    source = getattr(exp.labeler, "path", exp.labeler.name)  # where imported comparisons come from
    if imported is not None:
        if exp.judge is None:
            raise InputError(
                f"labeler=file ({source}) has no gold judgement; choose a panel to evaluate "
                "with, e.g. labeler@judge=sentiment_panel"
            )
        train_examples = imported.examples
        if imported.k != exp.labels.k:
            raise InputError(f"labels.k={exp.labels.k}, but {source} compares {imported.k} responses per line; "
                             f"set labels.k={imported.k}")
    else:
        train_examples = task.examples("train")
        if exp.judge is None and not callable(getattr(exp.labeler, "compare", None)):
            raise InputError(f"labeler={exp.labeler.name} gives labels but no judgement to evaluate with; choose a "
                             "judge, e.g. labeler@judge=sentiment_panel")
    if n > len(train_examples):
        where = f"comparisons in {source}" if imported else f"train prompts of task {task.name}"
        raise InputError(f"labels.n={n} is larger than the {len(train_examples)} {where}")
    train_examples = train_examples[:n]
    if exp.labels.kind == "binary":
        if not getattr(exp.method, "unpaired", False):
            raise InputError(f"labels.kind=binary: loss={exp.tags.get('loss', '?')} trains on "
                             "comparisons; binary labels (a thumbs up or down on one response) train loss=kto")
        if imported is not None or not callable(getattr(exp.labeler, "rate", None)):
            raise InputError(f"labels.kind=binary: labeler={exp.labeler.name} gives comparisons, not a thumbs up or "
                             "down on each response; a simulated panel, labeler=human and labeler=llm_judge give "
                             "both (e.g. labeler=sentiment_panel)")
    if processes(exp.trainer_kwargs) > 1 and not exp.method.data_parallel:
        raise InputError(f"trainer.devices={exp.trainer_kwargs.get('devices')}: loss={exp.tags.get('loss', '?')} does "
                         "not train as several processes yet (its rewards, advantages and KL would be each "
                         "process's own); set trainer.devices=1")
    exp.method.check(exp, train_examples)  # a method's own checks of the data
    online.check(exp, imported is not None, train_examples)
    eval_examples = task.examples("eval")
    if exp.eval.n_prompts is not None:
        if exp.eval.n_prompts > len(eval_examples):
            raise InputError(f"eval.n_prompts={exp.eval.n_prompts} is larger than the {len(eval_examples)} eval "
                             f"prompts of task {task.name}; lower it, or null for all of them")
        eval_examples = eval_examples[: exp.eval.n_prompts]
    if exp.init.policy == "sft":
        missing = [e.id for e in task.examples("train")[: exp.init.n] if not e.reference]
        if missing:
            raise InputError(f"init.policy=sft fine-tunes on the task's references, but task {task.name} has none "
                             f"(e.g. {missing[0]}); use init.policy=base")
    policy_dir = exp.model_source.materialize(exp.cache_dir, lambda: (e.prompt for e in task.examples("train")))
    config, tokenizer = check_model_dir(policy_dir), load_tokenizer(policy_dir)
    layers = getattr(config, "num_hidden_layers", None)
    if exp.trainable_layers is not None and layers is not None and not 1 <= exp.trainable_layers <= layers:
        raise InputError(f"model.trainable_layers={exp.trainable_layers}: expected 1..{layers} or null")
    stages.task_stop(tokenizer, exp)
    context = stages.context_length(config)
    train_ids = stages.encode_prompts(tokenizer, train_examples, task.max_new_tokens, context)
    if imported:
        check_imported(imported, train_ids, tokenizer, context, source)
    return Prepared(
        train_examples, eval_examples, policy_dir, None, tokenizer, train_ids,
        stages.encode_prompts(tokenizer, eval_examples, task.max_new_tokens, context),
        imported,
        hashlib.sha256(Path(source).expanduser().read_bytes()).hexdigest() if imported else "",
    )


def check_imported(imported: FileExamples, train_ids: list[list[int]], tokenizer: Any, context: int, source: str) -> None:
    """A file's comparisons fit the model's context, and some are not ties."""
    ties = 0
    for i, prompt in enumerate(train_ids):
        responses = imported.candidates[i]
        longest = max(len(tokenizer(r, add_special_tokens=False).input_ids) for r in responses)
        if len(prompt) + longest > context:
            meta = imported.examples[i].meta
            raise InputError(f"{meta.get('file', source)}:{meta.get('line', i + 1)}: responses: expected a prompt and "
                             f"responses within the model's context of {context} tokens, found {len(prompt)} + "
                             f"{longest} tokens")
        chosen = responses[imported.choices[i]]
        ties += all(r == chosen for r in responses)
    if ties == len(train_ids):
        raise InputError(f"{source}: every one of the {ties} comparisons used (labels.n) has identical responses: "
                         "ties carry no preference, nothing to train on")


def prepare(exp: Experiment) -> Prepared:
    """The checked inputs (`check`) and the initial policy's weights."""
    prepared = check(exp)
    policy, _ = load_causal_lm(prepared.policy_dir)
    freeze_lower_layers(policy, exp.trainable_layers)
    if exp.init.policy != "sft":  # an SFT start is fine-tuned first (stages.sft_policy), then adapted
        adapt(policy, exp.lora, exp.trainable_layers)
    return replace(prepared, policy=policy)


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
    log.info("MLflow run %s %s; with `mlflow ui` running: %s", run_id, where, exp.tracker.page())
    monitor = exp.tracker.system_metrics(exp.system_metrics_interval) if exp.system_metrics_interval else None
    try:
        exp.tracker.log_text(exp.config_yaml, "config.yaml")
        with precision.autocast(exp.trainer_kwargs.get("precision"), exp.trainer_kwargs.get("accelerator", "cpu")):
            metrics = _run_stages(exp, prepared)
    except BaseException as err:
        # Stopped by a signal or Ctrl-C: KILLED (the same command resumes it); anything else FAILED.
        if isinstance(err, AwaitingLabels):  # resumable: the same command continues once people have answered
            exp.tracker.set_tags({"awaiting_labels": str(err.pending)})
        exp.tracker.end("KILLED" if isinstance(err, (KeyboardInterrupt, Stopped, AwaitingLabels)) else "FAILED")
        raise
    finally:
        if monitor is not None:
            monitor.finish()
    exp.tracker.end("FINISHED")
    return metrics


def datasets(exp: Experiment, prep: Prepared, labelled: Labelled) -> list[Any]:
    """The run's data as MLflow dataset inputs (the runs table's Dataset column): the prompts,
    the samples and the labels it trained on, the eval prompts it was judged on. Digests are the
    artifact keys (a file's SHA-256 for imported labels); sources name the artifact under
    $PREFHARNESS_CACHE or the task, never a machine's path."""
    def prompts_digest(examples: Any) -> str:
        return stages.config_hash({"prompts": [[e.id, e.prompt] for e in examples]})

    task, n, k = exp.task.name, len(prep.train_examples), exp.labels.k
    inputs = [dataset_input("prompts", prompts_digest(prep.train_examples), n, "training",
                            {"task": task, "split": "train"}),
              dataset_input("eval_prompts", prompts_digest(prep.eval_examples), len(prep.eval_examples), "evaluation",
                            {"task": task, "split": "eval"})]
    if prep.imported is not None:
        inputs.append(dataset_input("labels", prep.imported_sha256, n, "training",
                                    {"file": _portable(str(labelled.meta.get("file", ""))), "labeler": exp.labeler.name}))
    elif exp.labels.rounds > 1:  # every round's samples and labels: one training set, keyed by all of them
        for stage, rows in (("samples", n * k), ("labels", n)):
            digest = stages.config_hash({r: v for r, v in labelled.artifacts.items() if stage in r})
            inputs.append(dataset_input(stage, digest, rows, "training",
                                        {"rounds": exp.labels.rounds, "task": task}
                                        | ({"labeler": exp.labeler.name} if stage == "labels" else {})))
    else:
        pool = {"prompts": n, "chunk": exp.sampling.chunk, "task": task}  # the pool's first n prompts (stages.samples)
        for stage, rows in (("samples", n * k), ("labels", n)):
            inputs.append(dataset_input(stage, labelled.artifacts[stage], rows, "training",
                                        {"artifacts": f"$PREFHARNESS_CACHE/artifacts/{stage}"} | pool
                                        | ({"labeler": exp.labeler.name} if stage == "labels" else {})))
    return inputs


def _portable(path: str) -> str:
    """A file's path relative to the working directory when it is under it, else its name: what
    a run records of where a file came from, without a machine's directories."""
    resolved = Path(path).expanduser().resolve()
    try:
        return str(resolved.relative_to(Path.cwd().resolve()))
    except ValueError:
        return resolved.name


def _run_stages(exp: Experiment, prep: Prepared) -> dict[str, float]:
    cache = ArtifactCache(exp.cache_dir / "artifacts")
    if exp.init.policy == "sft":
        prep = stages.sft_policy(exp, prep, cache)
    rounds = exp.labels.rounds  # > 1: online (harness/online.py); these labels are the first round's
    with progress_bar() as progress:
        labelled = (stages.imported_labels(exp, prep) if prep.imported
                    else stages.sampled_labels(exp if rounds == 1 else online.first_round(exp), prep, cache, progress))
        initial_ids = stages.eval_initial(exp, prep, cache, progress)

    artifacts = labelled.artifacts | {"eval_initial": stages.config_hash(stages.eval_initial_spec(exp)),
                                      "model": prep.policy_dir.name}
    exp.tracker.set_tags({f"artifact.{k}": v for k, v in artifacts.items()}
                         | {"labeler.version": str(labelled.meta["version"]), "labels.kind": exp.labels.kind})
    ctx = TrainContext(exp, prep, labelled, cache, progress_bar, initial_ids)
    if rounds == 1:
        exp.tracker.log_inputs(datasets(exp, prep, labelled))
        if labelled.meta.get("agreement") is not None:
            exp.tracker.log_metrics({"labels/agreement": labelled.meta["agreement"]})
        gold = (stages.gold_agreement(exp, prep.train_examples, labelled.responses, labelled.choices, prep.tokenizer)
                if labelled.ratings is None else None)
        if gold is not None:
            exp.tracker.log_metrics({"labels/gold_agreement": gold})
        trained = exp.method.fit(ctx)
    else:
        trained, labelled = online.run_rounds(ctx, labelled)
        exp.tracker.set_tags({f"artifact.{k}": v for k, v in labelled.artifacts.items()})
        exp.tracker.log_inputs(datasets(exp, prep, labelled))

    log.info("evaluate: %d eval prompts", len(prep.eval_ids))
    with progress_bar() as progress:
        trained_ids = trained.responses(prep.eval_ids, progress)
        kl = trained.kl(prep.eval_ids, trained_ids, progress)
        result = evaluate_policy(prep.tokenizer, exp.evaluator, prep.eval_examples, trained_ids, initial_ids, kl,
                                 baseline_texts=exp.task.baselines)
        # Methods that optimise a learned reward also report it (over-optimisation: proxy vs gold).
        proxy = trained.proxy_rewards(prep.eval_ids, trained_ids)
        if proxy is not None:
            result.metrics |= mean_ci(proxy).as_metrics("eval/proxy_reward")
    exp.tracker.log_metrics(result.metrics, step=1)
    for key, points in trained.curves(prep.eval_examples, exp.evaluator).items():
        for step, value in points.items():
            exp.tracker.log_metrics({key: value}, step=step)
    exp.tracker.log_table(result.table, "eval_samples.json")
    # What judging cost (an LLM judge's requests and tokens): the labeler's and the judge's, summed.
    usage: dict[str, float] = {}
    for who in {id(exp.labeler): exp.labeler, id(exp.evaluator): exp.evaluator}.values():
        for key, value in who.usage().items():
            usage[key] = usage.get(key, 0.0) + value
    if usage:
        exp.tracker.log_metrics(usage)
    # What the method trained (policy, reward model) as MLflow models of the run (logger.log_model).
    log_trained_models(exp, trained)
    # The series' gold peak during training (eval/series.py, logged by its callback) joins the
    # summary, so the run's last line says where gold peaked.
    return result.metrics | {k: v for k, v in exp.tracker.metrics().items() if k in SERIES_SUMMARY}

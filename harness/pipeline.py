"""One experiment, stage after stage, as one MLflow run.

prepare (inputs checked and loaded: bad input stops here, before any run or artifact) →
[sft_policy] → samples → labels (or a file's comparisons) → eval_initial → train (the loss's
`Method`, harness/methods/) → evaluate (held-out prompts) → MLflow. The stages themselves and
their cache keys are in stages.py; this module only runs them in order, under a per-job lock
that makes an identical job wait and a killed one resume.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path

from filelock import FileLock

from harness import stages
from harness.cache import ArtifactCache
from harness.errors import InputError
from harness.eval.evaluate import evaluate_policy
from harness.eval.metrics import mean_ci
from harness.experiment import Experiment, Prepared, TrainContext
from harness.models.loading import freeze_lower_layers, load_causal_lm
from harness.progress import progress_bar

log = logging.getLogger(__name__)


def prepare(exp: Experiment) -> Prepared:
    """Load the prompts and the initial policy and check that they fit together."""
    task, n = exp.task, exp.labels.n
    imported = exp.labeler.as_examples()
    source = getattr(exp.labeler, "path", exp.labeler.name)  # where imported comparisons come from
    if imported is not None:
        if exp.judge is None:
            raise InputError(
                f"labeler=file ({source}) has no gold judgement; choose a panel to evaluate "
                "with, e.g. labeler@judge=sentiment_panel"
            )
        train_examples = imported.examples
    else:
        train_examples = task.examples("train")
    exp.method.check(task.name, train_examples[:n])  # a method's own checks of the data, before any run
    if n > len(train_examples):
        where = f"comparisons in {source}" if imported else f"train prompts of task {task.name}"
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
    context = stages.context_length(policy)
    train_examples = train_examples[:n]
    return Prepared(
        train_examples, eval_examples, policy_dir, policy, tokenizer,
        stages.encode_prompts(tokenizer, train_examples, task.max_new_tokens, context),
        stages.encode_prompts(tokenizer, eval_examples, task.max_new_tokens, context),
        imported,
        hashlib.sha256(Path(source).expanduser().read_bytes()).hexdigest() if imported else "",
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


def _run_stages(exp: Experiment, prep: Prepared) -> dict[str, float]:
    cache = ArtifactCache(exp.cache_dir / "artifacts")
    if exp.init.policy == "sft":
        prep = stages.sft_policy(exp, prep, cache)
    with progress_bar() as progress:
        labelled = (stages.imported_labels(exp, prep) if prep.imported
                    else stages.sampled_labels(exp, prep, cache, progress))
        initial_ids = stages.eval_initial(exp, prep, cache, progress)

    artifacts = labelled.artifacts | {"eval_initial": stages.config_hash(stages.eval_initial_spec(exp)),
                                      "model": prep.policy_dir.name}
    exp.tracker.set_tags({f"artifact.{k}": v for k, v in artifacts.items()} | {"labeler.version": str(labelled.meta["version"])})
    if labelled.meta.get("agreement") is not None:
        exp.tracker.log_metrics({"labels/agreement": labelled.meta["agreement"]})

    trained = exp.method.fit(TrainContext(exp, prep, labelled, cache, progress_bar, initial_ids))

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
    exp.tracker.log_table(result.table, "eval_samples.json")
    return result.metrics

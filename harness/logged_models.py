"""A run's trained policy and reward model as MLflow LoggedModels, and finding them again.

At the end of a run (`log_trained_models`, the pipeline's one call) every module the method's
policy names in `EvalPolicy.trained_modules()` is stored as models/saved.py stores it (what
differs from the base model, with a manifest naming the base) and logged as a LoggedModel of
the run's experiment: created with the run as its source, its files uploaded, linked to the run
as an output (the runs table's Models column), then marked READY. `harness-export`
(cli/export.py) finds one by run and kind (`find_logged_model`) and downloads it (`download`).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import mlflow
import yaml
from mlflow.entities import LoggedModel, LoggedModelOutput, LoggedModelStatus
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from harness.cache import content_digest
from harness.errors import InputError
from harness.experiment import EvalPolicy, Experiment
from harness.models.saved import save_trained

KIND_TAG = "prefharness.kind"  # policy | reward_model
LOAD_TAG = "prefharness.load"  # the command that loads it back

log = logging.getLogger(__name__)


def export_command(run_id: str, kind: str) -> str:
    return f"harness-export {run_id} OUT_DIR --model {kind}"


def base_manifest(exp: Experiment) -> dict[str, Any] | None:
    """What the manifest says of the base, from the run's resolved config: `model` (its name,
    its `model.source` config, which `harness-export` instantiates and materialises, and the
    content digests of the local files it reads, checked on export), `task` (the prompts a
    source such as model=tiny trains its tokenizer on) and `init` (the initial policy). None
    without a config (an Experiment built by hand)."""
    config = yaml.safe_load(exp.config_yaml) if exp.config_yaml else None
    model = config.get("model") if isinstance(config, dict) else None
    if not isinstance(model, dict) or not isinstance(model.get("source"), dict):
        return None
    inputs = {key: content_digest(path, exp.cache_dir / "digests") for key, path in exp.model_source.inputs().items()}
    return {"model": {"name": model.get("name"), "source": model["source"], "inputs": inputs},
            "task": config.get("task"), "init": (config.get("init") or {}).get("policy"),
            "trainable_layers": {"policy": model.get("trainable_layers"),
                                 "reward_model": ((config.get("loss") or {}).get("reward_model") or {})
                                 .get("trainable_layers")}}


def log_trained_models(exp: Experiment, trained: EvalPolicy) -> list[str]:
    """Log what `trained` names in `trained_modules()` as LoggedModels of the run (nothing with
    logger.log_model=false); returns their model ids."""
    if not exp.log_model:
        return []
    modules = trained.trained_modules()
    if not modules:
        return []
    base = base_manifest(exp)
    if base is None:
        log.warning("no resolved config (Experiment.config_yaml) to name the base model: the trained %s not logged",
                    " and ".join(modules))
        return []
    task = exp.task
    base_dir = exp.model_source.materialize(exp.cache_dir, lambda: (e.prompt for e in task.examples("train")))
    client, run_id = exp.tracker.client, exp.tracker.run_id
    if run_id is None:
        raise RuntimeError("log_trained_models: the run has not started")
    experiment_id = client.get_run(run_id).info.experiment_id
    layers = base.pop("trainable_layers")
    ids = []
    for kind, module in modules.items():
        # Next to the cache, not in /tmp: a SmolLM2 policy is hundreds of MB.
        exp.cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=exp.cache_dir, prefix=".logged-model-") as tmp:
            manifest = save_trained(kind, module, base_dir, Path(tmp), base | {
                "trainable_layers": layers.get(kind), "run_id": run_id, "load": export_command(run_id, kind)})
            ids.append(log_model_dir(client, run_id, experiment_id, kind, Path(tmp), manifest))
        log.info("logged model %s (%s): %.2fM of %.2fM parameters (%.1f MB, the rest is the base model %s); "
                 "load it with: %s", kind, ids[-1], manifest["n_parameters"] / 1e6,
                 manifest["n_base_parameters"] / 1e6, manifest["bytes"] / 1e6, base["model"]["name"],
                 export_command(run_id, kind))
    return ids


def log_model_dir(client: MlflowClient, run_id: str, experiment_id: str, kind: str, directory: Path,
                  manifest: dict[str, Any]) -> str:
    """`directory` as a LoggedModel named `kind`, from and linked to the run; its id."""
    params = {"kind": kind, "model": manifest["model"]["name"], "trainable_layers": manifest["trainable_layers"],
              "n_parameters": manifest["n_parameters"], "dtype": manifest["dtype"], "init": manifest["init"]}
    model = client.create_logged_model(experiment_id, name=kind, source_run_id=run_id, model_type=kind,
                                       params={k: str(v) for k, v in params.items()},
                                       tags={KIND_TAG: kind, LOAD_TAG: export_command(run_id, kind)})
    try:
        client.log_model_artifacts(model.model_id, str(directory))
        client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=0)])
    except BaseException:
        client.finalize_logged_model(model.model_id, LoggedModelStatus.FAILED)
        raise
    client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
    return model.model_id


def _first_line(err: BaseException) -> str:
    return next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)


def find_logged_model(client: MlflowClient, run_id: str, kind: str, store: str) -> LoggedModel:
    """The run's latest READY LoggedModel of `kind`; InputError (one line) for a run that does
    not exist in `store` or that logged none."""
    try:
        run = client.get_run(run_id)
    except MlflowException as err:
        if err.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise InputError(f"run {run_id}: no such run in the MLflow store {store}") from None
        raise InputError(f"run {run_id}: MLflow store {store}: {_first_line(err)}") from None
    models = []
    for output in run.outputs.model_outputs if run.outputs else []:
        try:
            models.append(client.get_logged_model(output.model_id))
        except MlflowException:  # deleted since
            continue
    ready = [m for m in models if m.status == LoggedModelStatus.READY]
    chosen = [m for m in ready if m.tags.get(KIND_TAG) == kind]
    if chosen:
        return max(chosen, key=lambda m: m.creation_timestamp)
    loss = run.data.tags.get("loss", "?")
    others = sorted({str(m.tags[KIND_TAG]) for m in ready if KIND_TAG in m.tags})
    if others:
        raise InputError(f"run {run_id} (loss={loss}) logged no {kind}, only {', '.join(others)}: "
                         f"use --model {others[0]}")
    raise InputError(f"run {run_id} (loss={loss}, {run.info.status}) logged no trained model: it ran with "
                     "logger.log_model=false, trained nothing, or did not finish")


def download(model: LoggedModel, dst: Path, tracking_uri: str) -> Path:
    """The LoggedModel's files (manifest and tensors) in a directory under `dst`."""
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=model.artifact_location, dst_path=str(dst),
                                                    tracking_uri=tracking_uri))

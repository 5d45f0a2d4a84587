"""`harness`: compose the Hydra config, build typed objects, run one experiment."""

from __future__ import annotations

import errno
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from harness.cache import config_hash
from harness.errors import InputError
from harness.experiment import (
    EvalSettings,
    Experiment,
    InitSettings,
    LabelSettings,
    Method,
    SamplingSettings,
    TrainSettings,
)
from harness.pipeline import run_experiment
from harness.tracking import RunTracker, flatten

# The configs ship inside the package (harness/conf), so an installed `harness` finds them;
# users add their own groups with hydra.searchpath.
CONFIG_MODULE = "harness.conf"
CONFIG_DIR = str(Path(__file__).resolve().parents[1] / "conf")
log = logging.getLogger("harness")


def _plain(node: DictConfig) -> dict:
    return OmegaConf.to_container(node, resolve=True)  # type: ignore[return-value]


DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES)

# Keys that do not change a job's results: a rerun with other values is the same job.
NOT_IDENTITY = ("logger", "threads", "resume", "paths")


def run_key(cfg: DictConfig, tracker: RunTracker) -> str:
    """The job's identity: a hash of its resolved config, without the keys that do not change
    results, and of where it is logged; the sweep's name counts (the same config in two sweeps
    is two jobs, and so is the same config in two MLflow experiments)."""
    config = {k: v for k, v in _plain(cfg).items() if k not in NOT_IDENTITY}
    return config_hash({"config": config, "mlflow": [tracker.tracking_uri, tracker.experiment_name]})


def _sweep_tags(cfg: DictConfig) -> dict[str, str]:
    if not cfg.sweep.get("name"):
        return {}
    tags = {"sweep.name": str(cfg.sweep.name)}
    hydra_cfg = HydraConfig.get() if HydraConfig.initialized() else None
    if hydra_cfg is not None and hydra_cfg.mode == RunMode.MULTIRUN:
        # One id per launch: every job of `harness -m` shares the sweep directory.
        tags["sweep.id"] = config_hash({"dir": str(Path(hydra_cfg.sweep.dir).resolve())})[:8]
        tags["sweep.job"] = str(hydra_cfg.job.num)
    return tags


def _instantiate(node: DictConfig) -> object:
    """hydra's instantiate, letting our own InputError through: Hydra wraps whatever a
    constructor raises, and a bad value deserves one line, not a wrapped traceback."""
    try:
        return instantiate(node)
    except InstantiationException as err:
        cause = err.__cause__
        while cause is not None and not isinstance(cause, InputError):
            cause = cause.__cause__
        if cause is not None:
            raise cause from None
        raise


def _given(key: str) -> bool:
    """Whether the command line names `key` (the job's own overrides, sweep points included)."""
    if not HydraConfig.initialized():
        return False
    return any(o.split("=", 1)[0].lstrip("+~") == key for o in HydraConfig.get().overrides.task)


def refuse_ignored(cfg: DictConfig, method: Method, given: Callable[[str], bool] = _given) -> None:
    """A setting given for this job that it would not read is refused, not silently dropped.
    (Presets such as experiment=smoke set train.* for whichever objective runs with them.)"""
    ignored = [(key, f"loss={cfg.loss.name} does not read it") for key in method.ignores]
    if cfg.init.policy == "base":
        ignored += [(key, "init.policy=base does not fine-tune (init.policy=sft does)") for key in InitSettings.SFT_ONLY]
    for key, why in ignored:
        if given(key):
            raise InputError(f"{key}={OmegaConf.select(cfg, key)}: {why}; remove it")


def build_experiment(cfg: DictConfig, run_dir: Path) -> Experiment:
    """Turn a composed config into typed objects; every `_target_` is instantiated here."""
    if "beta" in cfg.loss and not (cfg.loss.beta is not None and cfg.loss.beta > 0):
        raise InputError(f"loss.beta must be > 0, got {cfg.loss.beta}")
    task = _instantiate(cfg.task)
    labeler = _instantiate(cfg.labeler)
    model_source = _instantiate(cfg.model.source)
    method = _instantiate(cfg.loss.method)
    refuse_ignored(cfg, method)
    judge = _instantiate(cfg.judge) if cfg.get("judge") else None
    tags = {
        "task": cfg.task.name, "model": cfg.model.name, "loss": cfg.loss.name,
        "labeler": cfg.labeler.name, "seed": str(cfg.seed), "init": cfg.init.policy,
    }
    if cfg.get("experiment_name"):
        tags["experiment"] = str(cfg.experiment_name)
    tags |= _sweep_tags(cfg)
    beta = f"-b{cfg.loss.beta}" if "beta" in cfg.loss else ""
    run_name = cfg.logger.run_name or f"{cfg.task.name}-{cfg.loss.name}-{cfg.model.name}-n{cfg.labels.n}{beta}"
    tracker = RunTracker(cfg.logger.experiment_name, run_name, cfg.logger.tracking_uri)
    return Experiment(
        task=task, model_source=model_source, labeler=labeler, method=method,
        labels=LabelSettings(**_plain(cfg.labels)),
        sampling=SamplingSettings(**_plain(cfg.sampling)),
        train=TrainSettings(**_plain(cfg.train)),
        eval=EvalSettings(**_plain(cfg.eval)),
        trainer_kwargs=_plain(cfg.trainer),
        tracker=tracker,
        cache_dir=Path(cfg.paths.cache_dir).expanduser(),
        run_dir=run_dir, seed=int(cfg.seed), trainable_layers=cfg.model.get("trainable_layers"),
        judge=judge,
        init=InitSettings(**_plain(cfg.init)),
        # An SFT-initialised policy is another initial policy: every artifact built from it differs.
        keys={"model": _plain(cfg.model.source) if cfg.init.policy == "base"
              else {"source": _plain(cfg.model.source), "init": _plain(cfg.init)},
              "task": _plain(cfg.task), "labeler": _plain(cfg.labeler),
              "reward_model": _plain(cfg.loss.reward_model) if "reward_model" in cfg.loss else None},
        tags=tags, params=flatten(_plain(cfg)),
        config_yaml=OmegaConf.to_yaml(cfg, resolve=True),
        run_key=run_key(cfg, tracker), resume=bool(cfg.resume),
    )


@hydra.main(config_path=f"pkg://{CONFIG_MODULE}", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> dict[str, float]:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Threads: torch defaults to all cores, which oversubscribes parallel sweep jobs.
    if cfg.get("threads"):
        import torch

        torch.set_num_threads(int(cfg.threads))
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        metrics = run_experiment(build_experiment(cfg, run_dir))
    except InputError as err:
        # Bad input is the user's to fix: one line, no traceback.
        print(f"harness: error: {err}", file=sys.stderr)
        sys.exit(2)
    except OSError as err:
        if err.errno not in DISK_ERRORS:
            raise
        # A full or read-only disk: artifacts are built in temporary directories, so nothing
        # half-written is left to trust; free space (or point PREFHARNESS_CACHE elsewhere) and rerun.
        print(f"harness: error: cannot write {err.filename or 'to disk'}: {os.strerror(err.errno)}", file=sys.stderr)
        sys.exit(1)
    except FloatingPointError as err:
        # The run is marked FAILED and its last checkpoint kept; lower the learning rate or
        # raise loss.beta and run the same command again.
        print(f"harness: error: numerical fault: {err}", file=sys.stderr)
        sys.exit(1)
    summary = {k: v for k, v in metrics.items() if "_ci95_" not in k}
    log.info("eval: %s", ", ".join(f"{k}={v:.4g}" for k, v in summary.items()))
    return metrics


if __name__ == "__main__":
    main()

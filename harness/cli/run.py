"""`harness`: compose the Hydra config, build typed objects, run one experiment."""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException, InstantiationException
from hydra.types import RunMode
from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict
from omegaconf.errors import InterpolationToMissingValueError, MissingMandatoryValue, OmegaConfBaseException

from harness import precision
from harness.cache import check_cache_dir, config_hash, content_digest
from harness.distributed import DATA_PARALLEL, processes
from harness.errors import AwaitingLabels, InputError, Stopped
from harness.experiment import (
    EvalSettings,
    Experiment,
    InitSettings,
    LabelSettings,
    Method,
    SamplingSettings,
    TrainSettings,
)
from harness.models.lora import LoraSettings
from harness.pipeline import check, run_experiment
from harness.tracking import MAX_PARAM_CHARS, PARENT_TAG, RunTracker, SweepParent, flatten, source_tags

PARENT_RUN_VAR = "PREFHARNESS_PARENT_RUN"  # a sweep's parent run id, set by `harness -m` for its jobs
from harness.typecheck import check_arguments, check_value

# The configs ship inside the package (harness/conf), so an installed `harness` finds them;
# users add their own groups with hydra.searchpath.
CONFIG_MODULE = "harness.conf"
CONFIG_DIR = str(Path(__file__).resolve().parents[1] / "conf")
log = logging.getLogger("harness")


def _plain(node: DictConfig) -> dict:
    return OmegaConf.to_container(node, resolve=True)  # type: ignore[return-value]


DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES)

# Keys that do not change a job's results: a rerun with other values is the same job.
NOT_IDENTITY = ("logger", "threads", "resume", "paths", "study")


def run_key(cfg: DictConfig, tracker: RunTracker, inputs: dict[str, str] | None = None) -> str:
    """The job's identity: a hash of its resolved config, without the keys that do not change
    results, of where it is logged, and of the content of every local file it reads (`inputs`:
    setting → digest), so an edited label file, dataset or model directory is a new job, never
    the old run or its checkpoints. The sweep's name counts (the same config in two sweeps is
    two jobs, and so is the same config in two MLflow experiments)."""
    config = {k: v for k, v in _plain(cfg).items() if k not in NOT_IDENTITY}
    if not (config.get("model") or {}).get("lora", {}).get("r"):  # no adapters: identities as before the option
        config["model"] = {k: v for k, v in config["model"].items() if k != "lora"}
    spec = {"config": config, "mlflow": [tracker.tracking_uri, tracker.experiment_name]}
    return config_hash(spec | ({"inputs": inputs} if inputs else {}))


SEED_RANGE = 2**32  # numpy's seeds, which Lightning's seed_everything sets
INTERPOLATION = re.compile(r"^\$\{([\w.]+)\}$")


def check_config(cfg: DictConfig) -> None:
    """The composed config against the types the code declares (harness/typecheck.py), before
    anything is built: the top-level keys, every `_target_`'s arguments, lightning.Trainer's;
    values Hydra left unset (???) are refused by name. Settings dataclasses check their own
    fields when built."""
    check_value("seed", cfg.seed, int)
    if not 0 <= cfg.seed < SEED_RANGE:
        raise InputError(f"seed: expected an integer in 0..{SEED_RANGE - 1}, got {cfg.seed}")
    check_value("threads", cfg.threads, int | None)
    if cfg.threads is not None and cfg.threads < 1:
        raise InputError(f"threads: expected an integer ≥ 1 (or null: all cores), got {cfg.threads}")
    check_value("resume", cfg.resume, bool)
    # Plain keys the code reads directly (the rest are a settings dataclass's or a _target_'s).
    for key, hint in (("model.trainable_layers", int | None), ("model.lora.r", int),
                      ("model.lora.alpha", float), ("model.lora.dropout", float),
                      ("model.lora.target_modules", list[str] | None), ("paths.cache_dir", str),
                      ("logger.experiment_name", str), ("logger.run_name", str | None),
                      ("logger.tracking_uri", str | None), ("logger.description", str | None),
                      ("logger.system_metrics", bool), ("logger.system_metrics_interval", float),
                      ("logger.log_model", bool),
                      ("preset", str | None), ("study.name", str | None), ("study.job", str | None)):
        value = OmegaConf.select(cfg, key)
        check_value(key, OmegaConf.to_container(value) if OmegaConf.is_config(value) else value, hint)
    if not cfg.logger.system_metrics_interval > 0:
        raise InputError(f"logger.system_metrics_interval: expected seconds > 0, got {cfg.logger.system_metrics_interval}")
    _check_node(cfg, "")
    trainer = _plain(cfg.trainer)
    if trainer.get("precision") == precision.AUTO:  # the harness's, resolved in build_experiment
        trainer.pop("precision")
    check_arguments(L.Trainer, trainer, key=lambda name: f"trainer.{name}")
    for name in ("max_steps", "max_epochs"):
        value = trainer.get(name)
        if value is not None and value != -1 and value < 1:
            raise InputError(f"trainer.{name}: expected -1 (no limit) or an integer ≥ 1, got {value}")
    check_devices(trainer)


GPU_ACCELERATORS = ("gpu", "cuda")


def check_devices(trainer: dict[str, Any]) -> None:
    """Refuse, in one line, what would otherwise fail deep in a run or hang: a GPU asked for where
    torch sees none, and more than one process other than `trainer.strategy=ddp_fork` on the CPU
    (with Lightning's other launchers each rank would run the whole pipeline again and wait on
    the job lock rank 0 holds; forked GPU processes cannot follow a parent that used CUDA)."""
    import torch

    accelerator = str(trainer.get("accelerator", "cpu")).lower()
    if accelerator in GPU_ACCELERATORS and not torch.cuda.is_available():
        raise InputError(f"trainer.accelerator={accelerator}: torch {torch.__version__} sees no CUDA GPU on this "
                         "machine; use trainer=cpu")
    devices, nodes, strategy = trainer.get("devices", 1), trainer.get("num_nodes", 1), trainer.get("strategy")
    if devices == "auto":
        devices = torch.cuda.device_count() if accelerator in GPU_ACCELERATORS else 1
    n = processes(trainer | {"devices": devices})
    if strategy == DATA_PARALLEL and accelerator == "cpu" and (nodes or 1) == 1 and n > 1:
        return
    if n > 1 or strategy not in (None, "auto"):
        raise InputError(f"trainer.devices={trainer.get('devices')}, trainer.num_nodes={nodes}, "
                         f"trainer.strategy={strategy or 'auto'}: several processes train together only as "
                         f"trainer.strategy={DATA_PARALLEL} with trainer.accelerator=cpu and trainer.devices ≥ 2 on "
                         "one machine for now (multi-GPU and multi-node training are not supported yet); or set "
                         "trainer.devices=1")


def _source_key(node: DictConfig | ListConfig, key: Any, full: str) -> str:
    """The setting a user edits for node[key]: the key an interpolation like ${loss.beta} reads."""
    if OmegaConf.is_interpolation(node, key):
        match = INTERPOLATION.match(str(node._get_node(key)._value()))
        if match:
            return match.group(1)
    return full


def _check_node(node: DictConfig | ListConfig, path: str) -> None:
    """`node` and everything under it: unset values refused, a `_target_`'s arguments typed."""
    keys = node.keys() if isinstance(node, DictConfig) else range(len(node))
    arguments: dict[str, Any] = {}
    for key in keys:
        if path == "" and key == "hydra":
            continue
        full = f"{path}.{key}" if path else str(key)
        try:
            value = node[key]
        except (MissingMandatoryValue, InterpolationToMissingValueError):
            name = _source_key(node, key, full)
            raise InputError(f"{name}: a value is required and none was given; add {name}=… to the command line") from None
        if isinstance(value, (DictConfig, ListConfig)):
            if not OmegaConf.is_interpolation(node, key):  # checked where it is defined
                _check_node(value, full)
        elif isinstance(key, str) and not key.startswith("_"):
            arguments[key] = value
    if isinstance(node, DictConfig) and "_target_" in node:
        try:
            target = get_object(node._target_)
        except Exception:
            raise InputError(f"{path}._target_: expected an importable class or function, got {node._target_!r}") from None
        check_arguments(target, arguments, key=lambda name: _source_key(node, name, f"{path}.{name}"))


def _overrides_tag() -> dict[str, str]:
    """What the user changed, as given on the command line (a sweep job: with its point's values)."""
    if not HydraConfig.initialized():
        return {}
    return {"overrides": " ".join(HydraConfig.get().overrides.task)[:MAX_PARAM_CHARS]}


def _sweep_tags(cfg: DictConfig) -> dict[str, str]:
    hydra_cfg = HydraConfig.get() if HydraConfig.initialized() else None
    multirun = hydra_cfg is not None and hydra_cfg.mode == RunMode.MULTIRUN
    # A job of `harness -m` is a child of the sweep's parent run (main() opened it).
    parent = {PARENT_TAG: os.environ[PARENT_RUN_VAR]} if multirun and os.environ.get(PARENT_RUN_VAR) else {}
    if not cfg.sweep.get("name"):
        return parent
    tags = {"sweep.name": str(cfg.sweep.name)} | parent
    if multirun:
        # One id per launch: every job of `harness -m` shares the sweep directory.
        tags["sweep.id"] = config_hash({"dir": str(Path(hydra_cfg.sweep.dir).resolve())})[:8]
        tags["sweep.job"] = str(hydra_cfg.job.num)
    return tags


def _instantiate(node: DictConfig, key: str) -> Any:
    """hydra's instantiate, letting our own InputError through: Hydra wraps whatever a
    constructor raises, and a bad value deserves one line, not a wrapped traceback. A key the
    constructor does not take (given with +) is refused the same way."""
    try:
        return instantiate(node)
    except InstantiationException as err:
        cause = err.__cause__
        while cause is not None and not isinstance(cause, InputError):
            cause = cause.__cause__
        if cause is not None:
            raise cause from None
        if isinstance(err.__cause__, TypeError):
            raise InputError(f"{key}: {' '.join(str(err.__cause__).split())}; remove it or correct its name") from None
        raise


def _given(key: str) -> bool:
    """Whether the command line names `key` (the job's own overrides, sweep points included)."""
    return HydraConfig.initialized() and overrides_name(HydraConfig.get().overrides.task, key)


def refuse_ignored(cfg: DictConfig, method: Method, given: Callable[[str], bool] = _given) -> None:
    """A setting given for this job that it would not read is refused, not silently dropped.
    (Presets such as experiment=smoke set train.* for whichever objective runs with them.)"""
    ignored = [(key, f"loss={cfg.loss.name} does not read it") for key in method.ignores]
    if cfg.init.policy == "base":
        ignored += [(key, "init.policy=base does not fine-tune (init.policy=sft does)") for key in InitSettings.SFT_ONLY]
    for key, why in ignored:
        if given(key):
            raise InputError(f"{key}={OmegaConf.select(cfg, key)}: {why}; remove it")


def build_experiment(cfg: DictConfig, run_dir: Path, given: Callable[[str], bool] = _given) -> Experiment:
    """Turn a composed config into typed objects, checked (check_config); every `_target_` is
    instantiated here. `given` says whether the command line names a key."""
    check_config(cfg)
    if "beta" in cfg.loss:
        check_value("loss.beta", cfg.loss.beta, float)
        if not cfg.loss.beta > 0:
            raise InputError(f"loss.beta: expected a number > 0, got {cfg.loss.beta}")
    settings = {"labels": LabelSettings(**_plain(cfg.labels)), "sampling": SamplingSettings(**_plain(cfg.sampling)),
                "train": TrainSettings(**_plain(cfg.train)), "eval": EvalSettings(**_plain(cfg.eval)),
                "init": InitSettings(**_plain(cfg.init))}
    task = _instantiate(cfg.task, "task")
    labeler = _instantiate(cfg.labeler, "labeler")
    model_source = _instantiate(cfg.model.source, "model.source")
    method = _instantiate(cfg.loss.method, "loss.method")
    refuse_ignored(cfg, method, given)
    judge = _instantiate(cfg.judge, "judge") if cfg.get("judge") else None
    cache_dir = Path(cfg.paths.cache_dir).expanduser()
    check_cache_dir(cache_dir)
    # trainer.precision=auto resolved here, before the run's params and identity are taken.
    resolved, probe = precision.resolve(cfg.trainer.get("precision"), str(cfg.trainer.get("accelerator", "cpu")),
                                        cache_dir)
    if resolved != cfg.trainer.get("precision"):
        cfg.trainer.precision = resolved
    # What each component reads from local files, by content (part of every key built on it;
    # the judge's only of the run's, as evaluation is not cached).
    digests = {part: {f"{part}.{key}": content_digest(path, cache_dir / "digests")
                      for key, path in (component.inputs() if component else {}).items()}
               for part, component in (("model", model_source), ("task", task), ("labeler", labeler),
                                       ("judge", judge))}
    inputs = {key: digest for part in digests.values() for key, digest in part.items()}
    tags = {
        "task": cfg.task.name, "model": cfg.model.name, "loss": cfg.loss.name,
        "labeler": cfg.labeler.name, "seed": str(cfg.seed), "init": cfg.init.policy,
    }
    if cfg.get("preset"):
        tags["preset"] = str(cfg.preset)
    study = cfg.get("study") or {}
    tags |= {f"study.{key}": str(study[key]) for key in ("name", "job") if study.get(key)}
    tags |= _sweep_tags(cfg) | source_tags() | _overrides_tag()
    if probe is not None:
        tags["precision.probe"] = (f"bf16 autocast {probe['bf16_speedup']}x fp32 ({probe['bf16_ms']} vs "
                                   f"{probe['fp32_ms']} ms) on {probe['cpu']}")
    beta = f"-b{cfg.loss.beta}" if "beta" in cfg.loss else ""
    run_name = cfg.logger.run_name or f"{cfg.task.name}-{cfg.loss.name}-{cfg.model.name}-n{cfg.labels.n}{beta}"
    tracker = RunTracker(cfg.logger.experiment_name, run_name, cfg.logger.tracking_uri, cfg.logger.get("description"))
    return Experiment(
        task=task, model_source=model_source, labeler=labeler, method=method,
        **settings,
        trainer_kwargs=_plain(cfg.trainer),
        tracker=tracker,
        cache_dir=cache_dir,
        run_dir=run_dir, seed=cfg.seed, trainable_layers=cfg.model.get("trainable_layers"),
        lora=LoraSettings(**_plain(cfg.model.lora)) if cfg.model.get("lora") else LoraSettings(),
        judge=judge,
        # An SFT-initialised policy is another initial policy: every artifact built from it differs.
        keys={"model": _with_inputs(_plain(cfg.model.source), digests["model"]) if cfg.init.policy == "base"
              else {"source": _with_inputs(_plain(cfg.model.source), digests["model"]), "init": _plain(cfg.init)},
              "task": _with_inputs(_plain(cfg.task), digests["task"]),
              "labeler": _with_inputs(_plain(cfg.labeler), digests["labeler"]),
              "reward_model": _plain(cfg.loss.reward_model) if "reward_model" in cfg.loss else None},
        tags=tags | {f"input.{key}": digest[:16] for key, digest in inputs.items()}, params=flatten(_plain(cfg)),
        config_yaml=OmegaConf.to_yaml(cfg, resolve=True),
        run_key=run_key(cfg, tracker, inputs), resume=cfg.resume,
        system_metrics_interval=(float(cfg.logger.system_metrics_interval)
                                 if cfg.logger.get("system_metrics", False) else None),
        log_model=cfg.logger.log_model,
    )


def _with_inputs(config: dict, digests: dict[str, str]) -> dict:
    """A component's config and, when it reads local files, their content digests (absent
    otherwise, so the keys of artifacts built without local inputs stay as they were)."""
    return config | {"_inputs": digests} if digests else config


def _stop(signum: int, frame: object) -> None:
    raise Stopped(signum)


def fail(message: str, code: int = 2) -> None:
    """The one line a user gets for input to fix (exit 2) or a fault (exit 1)."""
    print(f"harness: error: {message}", file=sys.stderr)
    sys.exit(code)


@hydra.main(config_path=f"pkg://{CONFIG_MODULE}", config_name="config", version_base="1.3")
def run_job(cfg: DictConfig) -> dict[str, float]:
    """One job of `harness` (the only one, or one point of a sweep)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # A signal stops the job as an exception (Lightning runs its own SIGTERM handler first), so
    # the run is marked KILLED and the exit code says so (128 + signal, as shells report it).
    if threading.current_thread() is threading.main_thread():  # a launcher may run jobs in a thread
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, _stop)
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        exp = build_experiment(cfg, run_dir)
        # Threads: torch defaults to all cores, which oversubscribes parallel sweep jobs.
        if cfg.threads is not None:
            import torch

            torch.set_num_threads(cfg.threads)
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        metrics = run_experiment(exp)
    except InputError as err:
        fail(str(err))  # bad input is the user's to fix: one line, no traceback
    except AwaitingLabels as wait:
        print(f"harness: waiting for labels: {wait}", file=sys.stderr)
        sys.exit(AwaitingLabels.EXIT)
    except Stopped as stop:
        print(f"harness: stopped by {stop}: its MLflow run (if one had started) is marked KILLED; the same command "
              "resumes it", file=sys.stderr)
        sys.exit(128 + stop.signum)
    except OSError as err:
        if err.errno not in DISK_ERRORS:
            raise
        # A full or read-only disk: artifacts are built in temporary directories, so nothing
        # half-written is left to trust; free space (or point PREFHARNESS_CACHE elsewhere) and rerun.
        fail(f"cannot write {err.filename or 'to disk'}: {os.strerror(err.errno)}", code=1)
    except FloatingPointError as err:
        # The run is marked FAILED and its last checkpoint kept; lower the learning rate or
        # raise loss.beta and run the same command again.
        fail(f"numerical fault: {err}", code=1)
    summary = {k: v for k, v in metrics.items() if "_ci95_" not in k}
    log.info("eval: %s", ", ".join(f"{k}={v:.4g}" for k, v in summary.items()))
    return metrics


# Flags after which Hydra runs nothing (help, --cfg, shell completion) or composes from
# elsewhere (-cp/-cd); Hydra alone handles those.
NOT_CHECKED = ("help", "hydra_help", "version", "cfg", "shell_completion", "config_path", "config_dir",
               "experimental_rerun", "info")


@dataclass
class SweepPlan:
    """What `harness -m` is about to launch: the composed config (sweep values unexpanded), the
    command's overrides, the grid (sweeper params and comma lists) and, for the basic sweeper,
    the points."""

    cfg: DictConfig
    overrides: list[str]
    points: list[list[str]] | None

    def grid(self) -> dict[str, str]:
        params = {str(k): str(v) for k, v in (self.cfg.hydra.sweeper.params or {}).items()}
        for override in self.overrides:
            key, sep, value = override.partition("=")
            if sep and ("," in value or value.strip().startswith(("range(", "choice(", "glob(", "interval("))):
                params[key.lstrip("+~")] = value
        return params


def check_command_line(argv: Sequence[str]) -> SweepPlan | None:
    """Before Hydra runs anything: the overrides compose (Hydra's own message, under our first
    line and exit code), and with -m every point of the sweep is built and checked as its job
    would be (`pipeline.check`), so a bad point stops the sweep before any job runs. Returns the
    sweep's plan with -m, else None."""
    from hydra._internal.utils import get_args_parser  # the parser hydra.main itself uses

    args = get_args_parser().parse_args(argv)
    if any(getattr(args, flag, None) for flag in NOT_CHECKED):
        return None
    mode = RunMode.MULTIRUN if args.multirun else RunMode.RUN
    with hydra.initialize_config_module(CONFIG_MODULE, version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        try:
            cfg = loader.load_configuration(args.config_name or "config", list(args.overrides), run_mode=mode)
        except (HydraException, OmegaConfBaseException) as err:
            # Hydra's own message (and OmegaConf's cause, as Hydra prints it), under our first line.
            cause = err.__cause__ if isinstance(err.__cause__, OmegaConfBaseException) else None
            message = "\n".join(str(e).strip() for e in (err, cause) if e) or type(err).__name__
            override = getattr(err, "override", None)  # a parse error: name the override it is in
            raise InputError(f"{override}: {message}" if override else message) from None
        if mode == RunMode.MULTIRUN:
            return SweepPlan(cfg, list(args.overrides), _check_sweep(cfg, loader, args.config_name or "config"))
    return None


def _check_sweep(cfg: DictConfig, loader: Any, config_name: str) -> list[list[str]] | None:
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if cfg.hydra.sweeper._target_ != f"{BasicSweeper.__module__}.{BasicSweeper.__name__}":
        log.warning("hydra/sweeper=%s: its points are checked as each job starts", cfg.hydra.sweeper._target_)
        return None
    # The basic sweeper's own expansion: hydra.sweeper.params, then the command line's overrides.
    params = [f"{k}={v}" for k, v in (cfg.hydra.sweeper.params or {}).items()]
    task = list(cfg.hydra.overrides.task)
    parser = OverridesParser.create(config_loader=loader)
    points = [p for batch in BasicSweeper.split_arguments(parser.parse_overrides(params + task), None) for p in batch]
    for number, point in enumerate(points, start=1):
        try:
            job = loader.load_sweep_config(cfg, list(point))
            with open_dict(job):  # what the job function gets: the config without hydra's node
                del job["hydra"]
            exp = build_experiment(job, Path(str(cfg.hydra.sweep.dir)), given=lambda key, point=point: overrides_name(point, key))
            check(exp)
        except (InputError, HydraException, OmegaConfBaseException) as err:
            changed = " ".join(o for o in point if o not in task) or " ".join(point)
            raise InputError(f"sweep job {number} of {len(points)} ({changed}): {err}; no job was launched") from None
    print(f"harness: the {len(points)} jobs of the sweep are checked", file=sys.stderr)
    return [list(p) for p in points]


def overrides_name(overrides: Sequence[str], key: str) -> bool:
    return any(o.split("=", 1)[0].lstrip("+~") == key for o in overrides)


def open_sweep_parent(plan: SweepPlan) -> SweepParent:
    """The sweep's parent run, found again when the same command runs again (same overrides,
    store and experiment), its id passed to the jobs in PREFHARNESS_PARENT_RUN (inherited by the
    launcher's processes)."""
    cfg = plan.cfg
    name = str(cfg.sweep.get("name") or "multirun")
    tracker = RunTracker(cfg.logger.experiment_name, f"sweep-{name}", cfg.logger.tracking_uri,
                         cfg.logger.get("description"))
    tracker.check()
    key = config_hash({"sweep": name, "overrides": sorted(plan.overrides),
                       "mlflow": [tracker.tracking_uri, tracker.experiment_name]})
    parent = SweepParent(tracker, key, len(plan.points) if plan.points is not None else None)
    grid = plan.grid()
    launcher = str(cfg.hydra.launcher.get("_target_", ""))
    sweep = {"name": name, "overrides": plan.overrides, "grid": grid, "launcher": launcher,
             "points": plan.points}
    tags = ({"sweep.name": name} if cfg.sweep.get("name") else {}) | {"overrides": " ".join(plan.overrides)} | source_tags()
    params = {f"grid.{k}": v[:MAX_PARAM_CHARS] for k, v in grid.items()} | {
        "launcher": launcher, "jobs": str(parent.jobs if parent.jobs is not None else "unknown")}
    run_id = parent.open(tags, params, {"sweep.json": json.dumps(sweep, indent=1)})
    os.environ[PARENT_RUN_VAR] = run_id
    log.info("sweep %s: parent MLflow run %s in experiment %r; with `mlflow ui` running: %s", name, run_id,
             tracker.experiment_name, tracker.page())
    return parent


def main() -> None:
    """`harness`: the command line checked (check_command_line), then Hydra runs the job(s); a
    sweep (-m) runs under a parent MLflow run that is closed with the launch's outcome."""
    try:
        plan = check_command_line(sys.argv[1:])
        parent = open_sweep_parent(plan) if plan is not None else None
    except InputError as err:
        fail(str(err))
    if parent is None:
        run_job()
        return
    status = "FAILED"
    try:
        run_job()  # Hydra exits (SystemExit 1) when a job fails
        status = "FINISHED"
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        status = "FINISHED" if code == 0 else "KILLED" if code > 128 else "FAILED"  # 128 + signal: stopped
        raise
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        parent.close(status)


if __name__ == "__main__":
    main()

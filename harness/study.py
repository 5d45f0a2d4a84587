"""A study: named sweeps × seeds, declared in one YAML file, run resumably, reported as a whole.

A study file (harness/studies/<name>.yaml, or any path) declares:

    name: findings                # the study's name; its runs are tagged study.name
    version: 1                    # part of every job's id: bump it to run the study anew
    experiment: study-findings    # the MLflow experiment its jobs log to
    store: reports/study.db       # the committed copy of its runs (`harness-study export`)
    out: reports                  # where `harness-study report` writes
    seeds: [0, 1, 2]
    common: [model=smollm2_135m, logger.log_model=false]   # every job's overrides
    sweeps:
      frontier:
        minutes: 2.5              # a job's wall time, until finished jobs give a better estimate
        overrides: [experiment=demo]
        grid: {loss: [dpo, ipo], loss.beta: [0.1, 0.3]}
    outputs:                      # which sweeps each report output reads
      frontier: [frontier]

A job is one point of one sweep's grid at one seed: `harness` with common, the sweep's overrides
and the point (a later value of a key replaces an earlier one). Its id is a hash of the study's
name and version and of those overrides (sorted), so a job two sweeps share runs once. Whether a
job is done is read from MLflow: a FINISHED run tagged `study.job=<id>` in the working store or
in the committed store. The harness's own run_key then resumes a killed job from its checkpoint
and shares every stage jobs have in common through the artifact cache.
"""

from __future__ import annotations

import itertools
import re
import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.cache import config_hash
from harness.errors import InputError

STUDIES = Path(__file__).resolve().parent / "studies"
NAME_TAG, JOB_TAG = "study.name", "study.job"


def _override_key(override: str) -> str:
    key, sep, _ = override.partition("=")
    if not sep or not key.strip("+~"):
        raise InputError(f"expected a Hydra override KEY=VALUE, got {override!r}")
    return key.lstrip("+~")


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    return str(value)


def merge_overrides(*groups: Iterable[str]) -> tuple[str, ...]:
    """One override per key, a later one replacing an earlier one, sorted by key: the canonical
    form a job's id is computed from (Hydra refuses two overrides of one key)."""
    merged: dict[str, str] = {}
    for group in groups:
        for override in group:
            merged[_override_key(override)] = override
    return tuple(merged[k] for k in sorted(merged))


@dataclass(frozen=True)
class Sweep:
    name: str
    overrides: tuple[str, ...]
    grid: tuple[tuple[str, tuple[str, ...]], ...]  # (key, values) in the file's order
    minutes: float
    about: str = ""

    def points(self) -> list[tuple[str, ...]]:
        keys = [k for k, _ in self.grid]
        return [tuple(f"{k}={v}" for k, v in zip(keys, values))
                for values in itertools.product(*(vs for _, vs in self.grid))]


@dataclass(frozen=True)
class Job:
    id: str
    sweep: str  # the first sweep that declares it
    seed: int
    overrides: tuple[str, ...]  # canonical: merged, sorted, seed included
    sweeps: tuple[str, ...] = ()  # every sweep that declares it

    def describe(self) -> str:
        return " ".join(self.overrides)


@dataclass(frozen=True)
class Study:
    name: str
    version: int
    experiment: str
    store: str
    out: str
    seeds: tuple[int, ...]
    common: tuple[str, ...]
    sweeps: tuple[Sweep, ...]
    outputs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    path: str = ""
    description: str = ""

    def jobs(self, identity: Callable[[tuple[str, ...]], str] | None = None) -> list[Job]:
        """Every job, seeds outermost (one seed of every sweep first: a whole first look at the
        findings, and the seed's sample pool is reused while it is fresh), then sweeps and points
        in the file's order. Jobs with the same overrides, or the same `identity` (the resolved
        config, cli/study.py), are one job: the first declared keeps its id, and every sweep that
        declares it reads it."""
        found: dict[str, Job] = {}
        by_identity: dict[str, str] = {}
        for seed in self.seeds:
            for sweep in self.sweeps:
                for point in sweep.points():
                    overrides = merge_overrides(self.common, sweep.overrides, point, [f"seed={seed}"])
                    job_id = config_hash({"study": self.name, "version": self.version,
                                          "overrides": list(overrides)})[:12]
                    if identity is not None:
                        job_id = by_identity.setdefault(identity(overrides), job_id)
                    if job_id in found:
                        old = found[job_id]
                        if sweep.name not in old.sweeps:
                            found[job_id] = Job(old.id, old.sweep, old.seed, old.overrides, (*old.sweeps, sweep.name))
                    else:
                        found[job_id] = Job(job_id, sweep.name, seed, overrides, (sweep.name,))
        return list(found.values())

    def sweep(self, name: str) -> Sweep:
        for sweep in self.sweeps:
            if sweep.name == name:
                return sweep
        raise InputError(f"study {self.name}: no sweep {name!r} (it has {', '.join(s.name for s in self.sweeps)})")

    def command(self, job: Job) -> list[str]:
        """The job's `harness` arguments."""
        return [*job.overrides, f"study.name={self.name}", f"study.job={job.id}",
                f"logger.experiment_name={self.experiment}", f"hydra.run.dir=outputs/study-{self.name}/{job.id}"]


# ---------------------------------------------------------------- loading


def study_path(name_or_path: str) -> Path:
    """A study by name (harness/studies/<name>.yaml) or by path to its YAML file."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise InputError(f"study file {path}: not found")
        return path
    found = STUDIES / f"{name_or_path}.yaml"
    if not found.is_file():
        known = ", ".join(sorted(p.stem for p in STUDIES.glob("*.yaml"))) or "none"
        raise InputError(f"study {name_or_path!r}: no file {found.name} in the harness's studies ({known}), "
                         "and no such path")
    return found


def _get(node: dict, key: str, where: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
    if key not in node:
        if default is ...:
            raise InputError(f"{where}: missing key {key!r}")
        return default
    value = node[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise InputError(f"{where}.{key}: expected {names}, got {value!r}")
    return value


def _strings(node: Any, where: str) -> tuple[str, ...]:
    if not isinstance(node, list) or not all(isinstance(v, str) for v in node):
        raise InputError(f"{where}: expected a list of Hydra overrides (strings), got {node!r}")
    for override in node:
        try:
            _override_key(override)
        except InputError as err:
            raise InputError(f"{where}: {err}") from None
    return tuple(node)


KEYS = {"name", "version", "experiment", "store", "out", "seeds", "common", "sweeps", "outputs", "description"}
SWEEP_KEYS = {"overrides", "grid", "minutes", "about"}


def load_study(name_or_path: str) -> Study:
    """Read and check a study file; every error names the file and the key."""
    path = study_path(name_or_path)
    try:
        cfg = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, OSError, UnicodeDecodeError) as err:
        raise InputError(f"study file {path}: not readable as YAML: {' '.join(str(err).split())}") from None
    where = str(path)
    if not isinstance(cfg, dict):
        raise InputError(f"{where}: expected a mapping at the top")
    unknown = set(cfg) - KEYS
    if unknown:
        raise InputError(f"{where}: unknown keys {sorted(unknown)} (known: {sorted(KEYS)})")
    seeds = _get(cfg, "seeds", where, list)
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds) \
            or len(set(seeds)) < len(seeds):
        raise InputError(f"{where}.seeds: expected a list of distinct integers ≥ 0, got {seeds}")
    sweeps = []
    for name, node in _get(cfg, "sweeps", where, dict).items():
        at = f"{where}.sweeps.{name}"
        if not isinstance(node, dict):
            raise InputError(f"{at}: expected a mapping with overrides, grid, minutes")
        unknown = set(node) - SWEEP_KEYS
        if unknown:
            raise InputError(f"{at}: unknown keys {sorted(unknown)} (known: {sorted(SWEEP_KEYS)})")
        grid = []
        for key, values in _get(node, "grid", at, dict, {}).items():
            if not isinstance(values, list) or not values:
                raise InputError(f"{at}.grid.{key}: expected a non-empty list of values, got {values!r}")
            grid.append((str(key), tuple(_value(v) for v in values)))
        minutes = _get(node, "minutes", at, (int, float))
        if not minutes > 0:
            raise InputError(f"{at}.minutes: expected minutes > 0 (a job's estimated wall time), got {minutes}")
        sweeps.append(Sweep(str(name), _strings(node.get("overrides", []), f"{at}.overrides"),
                            tuple(grid), float(minutes), str(node.get("about", ""))))
    if not sweeps:
        raise InputError(f"{where}.sweeps: expected at least one sweep")
    names = {s.name for s in sweeps}
    outputs = {}
    for output, node in _get(cfg, "outputs", where, dict, {}).items():
        listed = tuple(node) if isinstance(node, list) and all(isinstance(v, str) for v in node) else None
        if not listed or set(listed) - names:
            raise InputError(f"{where}.outputs.{output}: expected a list of this study's sweeps "
                             f"({', '.join(sorted(names))}), got {node!r}")
        outputs[str(output)] = listed
    return Study(name=_get(cfg, "name", where, str), version=_get(cfg, "version", where, int),
                 experiment=_get(cfg, "experiment", where, str), store=_get(cfg, "store", where, str),
                 out=_get(cfg, "out", where, str), seeds=tuple(seeds),
                 common=_strings(cfg.get("common", []), f"{where}.common"), sweeps=tuple(sweeps),
                 outputs=outputs, path=where, description=str(cfg.get("description", "")))


# ---------------------------------------------------------------- progress


@dataclass(frozen=True)
class Done:
    """A job's finished run: where it is and how long it took (None when it was resumed: its
    wall time is not one sitting's)."""

    run_id: str
    store: str
    seconds: float | None


def finished_runs(tracking_uri: str, study: Study) -> dict[str, Done]:
    """study.job → its latest FINISHED run in the store (empty when the store or the study's
    experiment does not exist yet)."""
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    from harness.report.query import check_store_exists

    try:
        check_store_exists(tracking_uri)
    except InputError:
        return {}
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(study.experiment)
    if experiment is None:
        return {}
    found: dict[str, Done] = {}
    token = None
    while True:
        page = client.search_runs([experiment.experiment_id],
                                  filter_string=f"tags.`{NAME_TAG}` = '{study.name}' and attributes.status = 'FINISHED'",
                                  run_view_type=ViewType.ACTIVE_ONLY, order_by=["attributes.start_time ASC"],
                                  max_results=1000, page_token=token)
        for run in page:
            job = run.data.tags.get(JOB_TAG)
            if job:
                resumed = int(run.data.tags.get("resumed", "0") or 0) > 0
                seconds = None if resumed or not run.info.end_time else (run.info.end_time - run.info.start_time) / 1000
                found[job] = Done(run.info.run_id, tracking_uri, seconds)
        token = page.token
        if not token:
            return found


@dataclass(frozen=True)
class Progress:
    study: Study
    jobs: list[Job]
    done: dict[str, Done]  # job id → run, for the jobs of this study that are done

    @property
    def pending(self) -> list[Job]:
        return [j for j in self.jobs if j.id not in self.done]

    def minutes(self, sweep: Sweep) -> tuple[float, str]:
        """A job's expected wall time in this sweep: the median of its finished jobs' (run in one
        sitting), else the study file's estimate."""
        times = [self.done[j.id].seconds for j in self.jobs
                 if j.sweep == sweep.name and j.id in self.done and self.done[j.id].seconds]
        if times:
            return statistics.median(times) / 60, f"median of {len(times)} finished"
        return sweep.minutes, "the study file's estimate"

    def lines(self) -> list[str]:
        total = len(self.jobs)
        pending = self.pending
        out = [f"study {self.study.name} (version {self.study.version}, {self.study.path}): "
               f"{total - len(pending)} of {total} jobs done, {len(pending)} left"]
        left_minutes = 0.0
        for sweep in self.study.sweeps:
            mine = [j for j in self.jobs if j.sweep == sweep.name]
            if not mine:
                continue
            waiting = [j for j in mine if j.id not in self.done]
            per_job, basis = self.minutes(sweep)
            left_minutes += per_job * len(waiting)
            out.append(f"  {sweep.name}: {len(mine) - len(waiting)}/{len(mine)} done; "
                       f"{len(waiting)} left × {per_job:.1f} min ({basis}) ≈ {_duration(per_job * len(waiting))}")
        done_seconds = [d.seconds for d in self.done.values() if d.seconds]
        out.append(f"  time left ≈ {_duration(left_minutes)}; compute so far ≈ "
                   f"{_duration(sum(done_seconds) / 60)} ({len(done_seconds)} jobs timed in one sitting)")
        return out


def _duration(minutes: float) -> str:
    if minutes < 90:
        return f"{math.ceil(minutes)} min"
    return f"{minutes / 60:.1f} h"


def progress(study: Study, tracking_uris: Sequence[str],
             identity: Callable[[tuple[str, ...]], str] | None = None) -> Progress:
    done: dict[str, Done] = {}
    for uri in tracking_uris:  # the first store that has a job's run wins
        for job, run in finished_runs(uri, study).items():
            done.setdefault(job, run)
    jobs = study.jobs(identity)
    ids = {j.id for j in jobs}
    return Progress(study, jobs, {k: v for k, v in done.items() if k in ids})


def committed_uri(study: Study) -> str:
    """The committed store as an MLflow URI relative to the working directory (the repository's
    root, where the study's commands run)."""
    return f"sqlite:///{study.store}"


# ---------------------------------------------------------------- the committed store

# Absolute paths left after the known roots are replaced: a "/" that starts a value or follows a
# separator, then at least two path segments (a ratio "1/2" or a relative "outputs/x" is not one).
ABSOLUTE = re.compile(r"(?:^|(?<=[\s=:'\"(,\[/]))/[\w.+~-]+(?:/[\w.+~-]*)+")
SKIPPED_METRICS = ("system/",)  # the machine's load while a run ran: not a finding
HISTORY_METRICS = ("series/",)  # curves along training, which the over-optimisation figure reads
DROPPED_TAGS = ("mlflow.parentRunId", "mlflow.log-model.history", "mlflow.runColor")


@dataclass(frozen=True)
class Scrubber:
    """Rewrites a value so that no path of this machine is in it: the repository root becomes
    `.`, the artifact cache `$PREFHARNESS_CACHE`, the home directory `~`, anything else absolute
    `<path>`."""

    roots: tuple[tuple[str, str], ...]

    @classmethod
    def here(cls, repo: Path, cache: Path | None) -> Scrubber:
        roots = [(str(repo.resolve()), ".")]
        if cache is not None:
            roots += [(str(cache.expanduser().resolve()), "$PREFHARNESS_CACHE"),
                      (str(cache.expanduser()), "$PREFHARNESS_CACHE")]
        roots.append((str(Path.home()), "~"))
        # Longest first: the cache may sit under the home directory or the repository.
        return cls(tuple(sorted({r for r in roots if r[0] not in ("/", "")}, key=lambda r: -len(r[0]))))

    def __call__(self, value: str) -> str:
        for root, name in self.roots:
            value = value.replace(root, name)
        return ABSOLUTE.sub("<path>", value)

    def leaks(self, data: bytes) -> list[str]:
        """The machine's roots found in raw bytes (the store file after it is written)."""
        return [root for root, _ in self.roots if root.encode() in data]


def _metric_objects(run: Any) -> list[Any]:
    # Run.data.metrics holds values only; the Metric objects carry step and timestamp.
    return list(getattr(run.data, "_metric_objs", None) or [])


def export_runs(study: Study, source_uri: str, scrub: Scrubber, job_ids: Iterable[str] | None = None) -> list[str]:
    """Copy the study's FINISHED runs from `source_uri` into its committed store (study.store),
    those of jobs the store does not hold yet: info, params, tags and metrics (the latest value
    of each, the whole history of series/*; not system/*), every value scrubbed, no artifacts,
    no datasets. Then the store's own artifact locations are made relative and the file is
    vacuumed, so no byte of a replaced value stays behind. Returns the job ids copied."""
    import sqlite3

    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    wanted = set(job_ids) if job_ids is not None else None
    source = finished_runs(source_uri, study)
    target_uri = committed_uri(study)
    Path(study.store).parent.mkdir(parents=True, exist_ok=True)
    held = finished_runs(target_uri, study) if Path(study.store).exists() else {}
    todo = [job for job in source if job not in held and (wanted is None or job in wanted)]
    if not todo:
        return []
    src, dst = MlflowClient(source_uri), MlflowClient(target_uri)
    experiment = dst.get_experiment_by_name(study.experiment)
    experiment_id = experiment.experiment_id if experiment else dst.create_experiment(study.experiment)
    copied = []
    for job in todo:
        run = src.get_run(source[job].run_id)
        tags = {k: scrub(v) for k, v in run.data.tags.items() if k not in DROPPED_TAGS}
        new = dst.create_run(experiment_id, start_time=run.info.start_time, tags=tags,
                             run_name=scrub(run.info.run_name or ""))
        rid = new.info.run_id
        params = [Param(k, scrub(v)) for k, v in sorted(run.data.params.items())]
        for start in range(0, len(params), 100):
            dst.log_batch(rid, params=params[start:start + 100])
        metrics: list[Metric] = []
        for m in sorted(_metric_objects(run), key=lambda m: m.key):
            if m.key.startswith(SKIPPED_METRICS):
                continue
            if m.key.startswith(HISTORY_METRICS):
                metrics += [Metric(h.key, h.value, h.timestamp, h.step) for h in src.get_metric_history(run.info.run_id, m.key)]
            else:
                metrics.append(Metric(m.key, m.value, m.timestamp, m.step))
        for start in range(0, len(metrics), 1000):
            dst.log_batch(rid, metrics=metrics[start:start + 1000])
        dst.log_batch(rid, tags=[RunTag("study.exported_from", scrub(run.info.run_id))])
        dst.set_terminated(rid, "FINISHED", end_time=run.info.end_time)
        copied.append(job)
    with sqlite3.connect(study.store) as db:
        db.execute("UPDATE experiments SET artifact_location = 'mlartifacts/' || experiment_id")
        db.execute("UPDATE runs SET artifact_uri = 'mlartifacts/' || experiment_id || '/' || run_uuid || '/artifacts'")
    with sqlite3.connect(study.store) as db:
        db.execute("VACUUM")
    leaks = scrub.leaks(Path(study.store).read_bytes())
    if leaks:
        raise InputError(f"{study.store}: still holds {', '.join(leaks)} after the export; not committable")
    return copied

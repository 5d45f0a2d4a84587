"""Load MLflow runs into one DataFrame and choose the runs a report may use.

One row per run: `run_id`, `status`, `experiment` (name), `start_time`, `run_name`, then
`tags.<key>`, `params.<key>` and `metrics.<key>` (the latest value of each metric). The
selection keeps FINISHED runs and, of several runs of one configuration, the latest; every
run it leaves out is listed with its reason, so a report never drops a run silently.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd
from mlflow.entities import ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from harness.cache import config_hash
from harness.errors import InputError

EXCLUDED_COLUMNS = ["run_id", "experiment", "task", "loss", "seed", "status", "reason"]
PAGE = 1000  # runs per search_runs page
# Params that do not change a run's results, as in cli/run.py's NOT_IDENTITY (not imported:
# that module loads Hydra), plus the seed, which seed replicates differ in by design.
NOT_IDENTITY = ("params.seed", "params.threads", "params.resume")
# Settings added after runs were logged, with the value those runs had: a run without the
# param is the same configuration as one that logged the default.
PARAM_DEFAULTS = {"params.labels.rounds": "1", "params.labels.kind": "comparison"}
NOT_IDENTITY_PREFIXES = ("params.logger.", "params.paths.", "params.study.")
# Tags that describe the configuration (most repeat a param; `init` may not).
SWEEP_PARENT_TAG = "prefharness.sweep_parent"  # as harness/tracking.py writes it: a sweep, not an experiment
RUN_ID = re.compile(r"^[0-9a-f]{32}$")
IDENTITY_TAGS = ("tags.task", "tags.model", "tags.loss", "tags.labeler", "tags.labeler.version", "tags.init")


@dataclass(frozen=True)
class Selection:
    """Which runs a report reads: a store, experiments by name (none: all), a filter, tags."""

    tracking_uri: str
    experiments: tuple[str, ...] = ()
    filter: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    parent: str = ""  # a sweep's parent run (id or run name): only its children

    def describe(self) -> str:
        experiments = ", ".join(self.experiments) if self.experiments else "all"
        tags = ", ".join(f"{k}={v}" for k, v in self.tags.items()) or "none"
        parent = f"; parent run: {self.parent}" if self.parent else ""
        return (f"tracking URI {self.tracking_uri}; experiments: {experiments}; "
                f"filter: {self.filter or 'none'}; tags: {tags}{parent}")


def check_store_exists(uri: str) -> None:
    # MlflowClient creates a missing local store on first use: a mistyped path would leave a
    # fresh empty database behind and report "no runs" instead of naming the path.
    parsed = urlparse(uri)
    if parsed.scheme == "sqlite":
        path = uri.removeprefix("sqlite:///") if uri.startswith("sqlite:///") else parsed.path
        if path != ":memory:" and not Path(path).exists():
            raise InputError(f"MLflow store {uri}: no database file at {path}")
    elif parsed.scheme in ("", "file"):
        path = parsed.path if parsed.scheme == "file" else uri
        if not Path(path).is_dir():
            raise InputError(f"MLflow store {uri}: no directory {path}")


def _experiments(client: MlflowClient, selection: Selection) -> dict[str, str]:
    """Experiment id → name for the selected experiments (all active ones when none named)."""
    if not selection.experiments:
        found, token = [], None
        while True:
            page = client.search_experiments(view_type=ViewType.ACTIVE_ONLY, max_results=PAGE, page_token=token)
            found.extend(page)
            token = page.token
            if not token:
                break
        return {e.experiment_id: e.name for e in found}
    chosen = {}
    for name in selection.experiments:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise InputError(f"MLflow experiment {name!r} not found in {selection.tracking_uri}")
        chosen[experiment.experiment_id] = name
    return chosen


# Metrics whose whole history a report reads (curves along training, best-of-n along n): column
# `curve.<key>` holds ((step, value), …) in step order.
CURVE_PREFIXES = ("series/", "bon/")


def _curves(client: MlflowClient, run) -> dict[str, tuple[tuple[int, float], ...]]:  # noqa: ANN001
    return {f"curve.{key}": tuple(sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)))
            for key in sorted(run.data.metrics) if key.startswith(CURVE_PREFIXES)}


def _row(run, experiment: str) -> dict[str, object]:  # noqa: ANN001 - mlflow.entities.Run
    info, data = run.info, run.data
    row: dict[str, object] = {
        "run_id": info.run_id, "status": info.status, "experiment": experiment,
        "start_time": info.start_time, "run_name": info.run_name,
    }
    row |= {f"tags.{k}": v for k, v in data.tags.items()}
    row.setdefault("tags.init", "base")  # runs logged before the `init` tag started from the base model
    row |= {f"params.{k}": v for k, v in data.params.items()}
    row |= {f"metrics.{k}": v for k, v in data.metrics.items()}
    return row


def _search(client: MlflowClient, experiments: list[str], filter_string: str) -> list:
    runs, token = [], None
    while experiments:
        page = client.search_runs(experiments, filter_string=filter_string, run_view_type=ViewType.ACTIVE_ONLY,
                                  max_results=PAGE, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            break
    return runs


def _parent_id(client: MlflowClient, experiments: list[str], parent: str) -> str:
    """A sweep's parent run, given by run id or by run name (e.g. sweep-kl_coef)."""
    if RUN_ID.match(parent):
        try:
            return client.get_run(parent).info.run_id
        except MlflowException:
            pass
    named = [r for r in _search(client, experiments, f"tags.`{SWEEP_PARENT_TAG}` = '1'")
             if parent in (r.info.run_name, r.info.run_id)]
    if not named:
        raise InputError(f"--parent {parent}: no sweep parent run has this id or name in the selected experiments")
    if len(named) > 1:
        ids = ", ".join(f"{r.info.run_id} ({r.data.tags.get('overrides', '')})" for r in named)
        raise InputError(f"--parent {parent}: {len(named)} sweep parent runs have this name; give one id: {ids}")
    return named[0].info.run_id


def fetch_runs(selection: Selection) -> pd.DataFrame:
    """Every run the selection matches, whatever its status, except sweeps' parent runs (they
    summarise their children; with `parent`, only that sweep's children). Raises InputError if
    none."""
    check_store_exists(selection.tracking_uri)
    try:
        client = MlflowClient(selection.tracking_uri)
        experiments = _experiments(client, selection)
        filters = [selection.filter] if selection.filter else []
        if selection.parent:
            filters.append(f"tags.`mlflow.parentRunId` = '{_parent_id(client, list(experiments), selection.parent)}'")
        runs = [r for r in _search(client, list(experiments), " and ".join(filters))
                if r.data.tags.get(SWEEP_PARENT_TAG) != "1"]
        rows = [_row(r, experiments[r.info.experiment_id]) | _curves(client, r) for r in runs]
    except MlflowException as err:
        first_line = str(err.message).strip().splitlines()[0] if str(err.message).strip() else type(err).__name__
        raise InputError(f"MLflow search failed: {first_line} (selection: {selection.describe()})") from err
    frame = pd.DataFrame(rows)
    for key, value in selection.tags.items():
        column = f"tags.{key}"
        frame = frame[frame[column] == value] if column in frame else frame.iloc[0:0]
    if frame.empty:
        raise InputError(f"no MLflow runs match the selection ({selection.describe()})")
    frame["start_time"] = pd.to_datetime(frame["start_time"], unit="ms", utc=True)
    return with_defaults(frame).reset_index(drop=True)


def with_defaults(frame: pd.DataFrame) -> pd.DataFrame:
    """Runs logged before a setting existed given the value they ran with (PARAM_DEFAULTS)."""
    for column, value in PARAM_DEFAULTS.items():
        if column in frame:
            frame[column] = frame[column].fillna(value)
    return frame


def configuration_key(runs: pd.DataFrame) -> pd.Series:
    """A run's configuration: its `run_key` tag, or without one the hash of all its params."""
    params = [c for c in runs.columns if c.startswith("params.")]

    def key(row: pd.Series) -> str:
        run_key = row.get("tags.run_key")
        if isinstance(run_key, str) and run_key:
            return f"run_key:{run_key}"
        return "params:" + config_hash({c: row[c] for c in params if pd.notna(row[c])})

    return runs.apply(key, axis=1) if len(runs) else pd.Series(dtype=str)


def identity_columns(runs: pd.DataFrame) -> list[str]:
    params = [c for c in runs.columns if c.startswith("params.")
              and c not in NOT_IDENTITY and not c.startswith(NOT_IDENTITY_PREFIXES)]
    return sorted(params) + [c for c in IDENTITY_TAGS if c in runs.columns]


def config_id(runs: pd.DataFrame) -> pd.Series:
    """Short hash of everything that determines a run's results except its seed: runs with
    the same id and different seeds are replicates of one configuration."""
    columns = identity_columns(runs)

    def key(row: pd.Series) -> str:
        return config_hash({c: row[c] for c in columns if pd.notna(row[c])})[:8]

    return runs.apply(key, axis=1).astype(str) if len(runs) else pd.Series(dtype=str)


def seed_of(runs: pd.DataFrame) -> pd.Series:
    """The `seed` tag, or the `seed` param for runs logged without the tag."""
    tag = runs["tags.seed"] if "tags.seed" in runs else pd.Series(pd.NA, index=runs.index, dtype=object)
    return tag.fillna(runs["params.seed"]) if "params.seed" in runs else tag


def _latest_per_group(runs: pd.DataFrame, groups: pd.Series, note: str = "") -> pd.Series:
    """Reason for each run that is not the latest of its group ("" for the kept ones)."""
    ordered = runs.sort_values(["start_time", "run_id"], ascending=[False, True])
    latest = ordered.groupby(groups.loc[ordered.index], sort=False)["run_id"].transform("first")
    reasons = pd.Series("", index=runs.index, dtype=object)
    duplicate = ordered["run_id"] != latest
    reasons[duplicate[duplicate].index] = "duplicate of " + latest[duplicate] + note
    return reasons


def excluded_frame(runs: pd.DataFrame, reasons: pd.Series | str) -> pd.DataFrame:
    """The runs left out, one row each with the reason (the shape index.md lists)."""
    out = pd.DataFrame({
        "run_id": runs["run_id"],
        "experiment": runs.get("experiment"),
        "task": runs.get("tags.task"),
        "loss": runs.get("tags.loss"),
        "seed": runs.get("tags.seed"),
        "status": runs.get("status"),
        "reason": reasons,
    }, index=runs.index)
    return out[EXCLUDED_COLUMNS].reset_index(drop=True)


def select_runs(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(kept, excluded): FINISHED runs only, and the latest run of each configuration.

    A configuration is the `run_key` tag (or, without one, all params). Then, of runs with
    the same params apart from bookkeeping (`config_id`) and the same seed — one job logged
    to two MLflow experiments has two run_keys — the latest is kept too: counting both would
    pass one seed off as two replicates.
    """
    finished = runs["status"] == "FINISHED"
    reasons = pd.Series("", index=runs.index, dtype=object)
    reasons[~finished] = "status " + runs.loc[~finished, "status"].astype(str)
    done = runs[finished]
    if len(done):
        reasons.update(_latest_per_group(done, configuration_key(done)))
    done = runs[reasons == ""]
    if len(done) and any(c.startswith("params.") for c in runs.columns):
        same_seed = config_id(done) + "/" + seed_of(done).astype(str)
        reasons.update(_latest_per_group(done, same_seed, " (same config and seed)"))
    left_out = reasons != ""
    kept = runs[~left_out].sort_values(["experiment", "start_time", "run_id"]).reset_index(drop=True)
    return kept, excluded_frame(runs[left_out], reasons[left_out])


def load_runs(selection: Selection) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fetch and select; raises InputError naming the selection when no run is usable."""
    kept, excluded = select_runs(fetch_runs(selection))
    if kept.empty:
        counts = excluded["status"].value_counts()
        found = ", ".join(f"{n} {status}" for status, n in counts.items())
        raise InputError(f"no FINISHED runs in the selection ({selection.describe()}); found {found}")
    return kept, excluded

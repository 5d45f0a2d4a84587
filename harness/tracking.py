"""One MLflow run per experiment: naming, tags, params, metrics and artifacts.

The tracking store is MLflow's own default unless MLFLOW_TRACKING_URI (or an explicit URI)
says otherwise, so `mlflow ui` started in the same directory shows the runs.
"""

from __future__ import annotations

import getpass
import json
import logging
import math
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from filelock import FileLock
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from harness.errors import InputError

MAX_PARAM_CHARS = 6000  # MLflow's limit on one param value
STORE_WAIT_VAR = "PREFHARNESS_STORE_WAIT"  # seconds to wait for an MLflow server that does not answer yet
STORE_WAIT_DEFAULT = 30.0
SQLITE_HEADER = b"SQLite format 3\x00"
# What kind of experiment this is, in MLflow 3's terms (genai_development or
# custom_model_development). MLflow 3.17's UI does not open on the view the kind names: it opens
# on the view its "GenAI | Model training" switch last showed in that browser (GenAI in a new
# one) unless the link says `?workflowType=machine_learning`; `experiment_page` is that link.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"
UI_DEFAULT = "http://127.0.0.1:5000"  # where `mlflow ui` listens unless told otherwise
DESCRIPTION_TAG = "mlflow.note.content"  # the description the UI shows (markdown)
PARENT_TAG = "mlflow.parentRunId"  # the UI nests a run under the run this names
SWEEP_PARENT_TAG = "prefharness.sweep_parent"
DEFAULT_DESCRIPTION = (
    "Runs of prefharness: one MLflow run per experiment (task × model × objective × labeler), a parent run per "
    "sweep with its jobs as children. Compare methods on eval/gold_reward, eval/kl, eval/winrate_vs_init "
    "(and eval/rouge* on summarisation); the `overrides` tag says what each run changed.")

log = logging.getLogger(__name__)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """{'a': {'b': 1}} → {'a.b': '1'}; lists become JSON strings."""
    flat: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            flat[name] = text[:MAX_PARAM_CHARS]
    return flat


def store_wait() -> float:
    """Seconds to wait for an MLflow server that does not answer (PREFHARNESS_STORE_WAIT)."""
    raw = os.environ.get(STORE_WAIT_VAR, "").strip()
    if not raw:
        return STORE_WAIT_DEFAULT
    try:
        wait = float(raw)
    except ValueError:
        wait = -1.0
    if not (math.isfinite(wait) and wait >= 0):
        raise InputError(f"{STORE_WAIT_VAR}={raw!r}: expected a number of seconds ≥ 0 "
                         f"(default {STORE_WAIT_DEFAULT:g})")
    return wait


def _health(url: str, timeout: float) -> str | None:
    """None if an MLflow server answers at `url` (its /health), else why not, in a few words.
    A server that answers 4xx is there (a proxy's login, say): the client's own calls say more."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - http(s) only
            status = response.status
    except urllib.error.HTTPError as err:
        status = err.code
    except urllib.error.URLError as err:
        reason = err.reason
        if isinstance(reason, (TimeoutError, socket.timeout)):
            return f"no answer within {timeout:g} s"
        return reason.strerror if isinstance(reason, OSError) and reason.strerror else str(reason)
    except (TimeoutError, socket.timeout):
        return f"no answer within {timeout:g} s"
    except (OSError, ValueError) as err:
        return " ".join(str(err).split())[:200] or type(err).__name__
    if status >= 500:
        return f"{url} answered HTTP {status}"
    return None


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def source_tags(entry_point: str = "harness") -> dict[str, str]:
    """MLflow's standard source tags, so the runs table's Source column and the run page say
    what produced a run: the command (`mlflow.source.name`: the entry point, never a machine's
    path), the harness version, the user, and, when the harness runs from a git checkout, its
    commit (`mlflow.source.git.commit`), branch, and whether the working tree had uncommitted
    changes to tracked files (`prefharness.git.dirty`). A remote URL is recorded only when it is
    one (a clone of a local directory would put that machine's path in the store)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        harness_version = version("prefharness")
    except PackageNotFoundError:
        harness_version = "unknown"
    tags = {"mlflow.source.name": entry_point, "mlflow.source.type": "LOCAL", "prefharness.version": harness_version}
    try:
        tags["mlflow.user"] = getpass.getuser()
    except (OSError, KeyError):
        pass
    root = Path(__file__).resolve().parents[1]
    commit = _git(root, "rev-parse", "HEAD") if (root / ".git").exists() else None
    if commit:
        tags["mlflow.source.git.commit"] = commit
        status = _git(root, "status", "--porcelain", "--untracked-files=no")
        tags["prefharness.git.dirty"] = "unknown" if status is None else str(bool(status)).lower()
        branch = _git(root, "rev-parse", "--abbrev-ref", "HEAD")
        if branch and branch != "HEAD":
            tags["mlflow.source.git.branch"] = branch
        url = _git(root, "remote", "get-url", "origin")
        if url and ("://" in url or url.startswith("git@")):
            tags["mlflow.source.git.repoURL"] = url
    return tags


def dataset_input(name: str, digest: str, rows: int, context: str, source: Mapping[str, Any]) -> DatasetInput:
    """One of a run's datasets as MLflow records it (the runs table's Dataset column, the run
    page's lineage): `digest` is the artifact's content key, `source` says where it lives
    without a machine's path (e.g. the artifact under $PREFHARNESS_CACHE), `context` is
    training or evaluation."""
    dataset = Dataset(name=name, digest=digest[:36], source_type="prefharness", source=json.dumps(source, sort_keys=True),
                      profile=json.dumps({"num_rows": rows}))
    return DatasetInput(dataset, tags=[InputTag("mlflow.data.context", context)])


def experiment_page(experiment_id: str, base: str = UI_DEFAULT) -> str:
    """The experiment's runs table in the MLflow UI at `base` (MLflow 3.17 otherwise opens a new
    browser on its GenAI overview, whatever the experiment's kind)."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}?workflowType=machine_learning"


class RunTracker:
    def __init__(
        self,
        experiment_name: str,
        run_name: str | None = None,
        tracking_uri: str | None = None,
        description: str | None = None,
    ) -> None:
        self.tracking_uri = tracking_uri or mlflow.get_tracking_uri()
        # Before the client: given a directory, MlflowClient retries for ~2 minutes before failing.
        self._check_sqlite_path()
        try:
            with self._store_lock():  # a client creates (migrates) a fresh store when it starts
                self.client = MlflowClient(self.tracking_uri)
        except Exception as err:  # a missing directory, a read-only file, an unreachable server
            message = " ".join(str(err).split())[:300]
            raise InputError(f"MLflow store {self.tracking_uri} (MLFLOW_TRACKING_URI) is not usable: {message}") from err
        self.experiment_name = experiment_name
        self.run_name = run_name
        self.description = description or DEFAULT_DESCRIPTION
        self.run_id: str | None = None
        # Added to the step of everything Lightning logs (online rounds: each round's Trainer
        # counts from 0, its steps follow the last round's); `last_step`: the highest logged.
        self.step_offset = 0
        self.last_step = -1

    def _unusable(self, why: str) -> InputError:
        return InputError(f"MLflow store {self.tracking_uri} (MLFLOW_TRACKING_URI) is not usable: {why}")

    def _sqlite_path(self) -> Path | None:
        """The file of an SQLite store (sqlite:///relative or sqlite:////absolute), else None."""
        if not self.tracking_uri.startswith("sqlite:///"):
            return None
        path = self.tracking_uri.removeprefix("sqlite:///").split("?", 1)[0]
        return None if path in ("", ":memory:") else Path(path)

    def _check_sqlite_path(self) -> None:
        """An SQLite store's file and directory, checked on the file system: each of these would
        otherwise fail only after the client's retries, or with a traceback."""
        path = self._sqlite_path()
        if path is None:
            return
        try:
            self._check_sqlite_file(path)
        except OSError as err:  # e.g. a directory on the way that we may not search
            raise self._unusable(f"{path}: {err.strerror or err}") from err

    def _check_sqlite_file(self, path: Path) -> None:
        if path.is_dir():
            raise self._unusable(f"{path} is a directory, expected an SQLite file")
        if path.exists():
            if not path.is_file():
                raise self._unusable(f"{path} is not a regular file, expected an SQLite file")
            with path.open("rb") as f:
                head = f.read(len(SQLITE_HEADER))
            if head and head != SQLITE_HEADER:  # an empty file is an empty database
                raise self._unusable(f"{path} is not an SQLite database")
            if not os.access(path, os.R_OK | os.W_OK):
                raise self._unusable(f"{path} is not writable")
        # The nearest existing directory above it (MLflow creates the missing ones) must be one,
        # and writable: SQLite writes its journal, and we the lock file, next to the store.
        parent = path.absolute().parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            raise self._unusable(f"{parent} is a file, expected a directory to hold {path.name}")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise self._unusable(f"directory {parent} is not writable")

    def check(self) -> None:
        """The store usable, before anything expensive: an SQLite file that can be one, a
        server that answers (a bounded, announced wait: PREFHARNESS_STORE_WAIT seconds, default
        30), and an experiment of this name that is not deleted. Creates nothing: neither the
        experiment nor a run. Raises InputError with one line otherwise."""
        self._check_sqlite_path()
        if self.tracking_uri.startswith(("http://", "https://")):
            self._wait_for_server()
        try:
            experiment = self.client.get_experiment_by_name(self.experiment_name)
        except Exception as err:
            raise self._unusable(" ".join(str(err).split())[:300]) from err
        if experiment is not None:
            self._refuse_deleted(experiment)

    def _wait_for_server(self) -> None:
        wait = store_wait()
        url = self.tracking_uri.rstrip("/") + "/health"
        deadline = time.monotonic() + wait
        reason = _health(url, timeout=2.0)
        if reason is None:
            return
        if wait > 0:
            log.warning("waiting up to %s s for the MLflow server at %s (MLFLOW_TRACKING_URI; %s sets the wait): %s",
                        f"{wait:g}", self.tracking_uri, STORE_WAIT_VAR, reason)
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(0.5, left))
            reason = _health(url, timeout=max(0.2, min(2.0, deadline - time.monotonic())))
            if reason is None:
                return
        raise InputError(f"MLflow server {self.tracking_uri} (MLFLOW_TRACKING_URI) did not answer within {wait:g} s: "
                         f"{reason}; start it or point MLFLOW_TRACKING_URI elsewhere")

    def _refuse_deleted(self, experiment: Any) -> None:
        if experiment.lifecycle_stage == "deleted":
            exp_id = experiment.experiment_id
            raise InputError(
                f"MLflow experiment {self.experiment_name!r} exists but is deleted (id {exp_id}); restore it with "
                f"`mlflow experiments restore --experiment-id {exp_id}` or choose another name "
                "(logger.experiment_name or MLFLOW_EXPERIMENT_NAME)")

    def _store_lock(self) -> FileLock | nullcontext:
        # A fresh SQLite store is created (schema migrations) by its first client: jobs of a
        # parallel sweep starting together would race, so clients start one at a time.
        if self.tracking_uri.startswith("sqlite:///"):
            return FileLock(self.tracking_uri.removeprefix("sqlite:///") + ".lock")
        return nullcontext()

    def _experiment_id(self) -> str:
        """The experiment's id, created if new as a model-training experiment with a description
        (one made by an older version, or by hand, gets the kind when it lacks one)."""
        tags = {EXPERIMENT_KIND_TAG: MODEL_TRAINING, DESCRIPTION_TAG: self.description}
        try:
            with self._store_lock():
                experiment = self.client.get_experiment_by_name(self.experiment_name)
                if experiment is None:
                    try:
                        return self.client.create_experiment(self.experiment_name, tags=tags)
                    except MlflowException:  # created meanwhile by a job on another machine (or deleted)
                        experiment = self.client.get_experiment_by_name(self.experiment_name)
                        if experiment is None:
                            raise
                self._refuse_deleted(experiment)
                for key, value in tags.items():
                    if key not in experiment.tags:
                        self.client.set_experiment_tag(experiment.experiment_id, key, value)
                return experiment.experiment_id
        except InputError:
            raise
        except Exception as err:
            raise InputError(f"MLflow store {self.tracking_uri} is not usable: {err}") from err

    def start(self, tags: Mapping[str, str], params: Mapping[str, str], key: str | None = None) -> tuple[str, bool]:
        """Start the run, or with `key` continue the latest run of this experiment tagged
        `run_key=key`. Returns (run id, whether that run had already FINISHED)."""
        exp_id = self._experiment_id()
        if key:
            runs = self.client.search_runs([exp_id], filter_string=f"tags.run_key = '{key}'",
                                           order_by=["attributes.start_time DESC"], max_results=1)
            if runs:
                run = runs[0]
                self.run_id = run.info.run_id
                if run.info.status == "FINISHED":
                    return self.run_id, True
                self.client.update_run(self.run_id, status="RUNNING")
                self.set_tags(tags)  # e.g. the sweep id of the launch that resumed it
                self.client.set_tag(self.run_id, "resumed", str(int(run.data.tags.get("resumed", "0")) + 1))
                return self.run_id, False
        run = self.client.create_run(exp_id, run_name=self.run_name, tags=dict(tags) | ({"run_key": key} if key else {}))
        self.run_id = run.info.run_id
        items = [Param(k, v) for k, v in params.items()]
        for start in range(0, len(items), 100):  # log_batch takes at most 100 params
            self.client.log_batch(self.run_id, params=items[start : start + 100])
        return self.run_id, False

    def metrics(self) -> dict[str, float]:
        return dict(self.client.get_run(self._run).data.metrics)

    def page(self) -> str:
        """Where `mlflow ui` shows this run's experiment as a runs table (see experiment_page)."""
        return experiment_page(self.client.get_run(self._run).info.experiment_id)

    def system_metrics(self, interval: float) -> Any:
        """MLflow's system-metrics monitor on this run (system/cpu_utilization_percentage,
        system/system_memory_usage_megabytes, disk...), sampling every `interval` seconds in a
        thread until `.finish()`; a resumed run continues its steps."""
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        monitor = SystemMetricsMonitor(self._run, sampling_interval=interval, resume_logging=True,
                                       tracking_uri=self.tracking_uri)
        monitor.start()
        return monitor

    def log_inputs(self, datasets: list[DatasetInput]) -> None:
        """The run's datasets (see `dataset_input`); a resumed run logs them again harmlessly
        (MLflow keeps one input per dataset and digest).

        Two jobs logging the same dataset at once race in MLflow's store (it looks the dataset
        up, then inserts it: the slower insert fails its unique constraint): SQLite stores log
        under the store's lock, and a failed insert is retried, when it finds the dataset."""
        for attempt in range(3):
            try:
                with self._store_lock():
                    self.client.log_inputs(self._run, datasets=datasets)
                return
            except MlflowException as err:
                if "unique constraint" not in str(err).lower() or attempt == 2:
                    raise
                time.sleep(0.2 * (attempt + 1))

    @property
    def _run(self) -> str:
        if self.run_id is None:
            raise RuntimeError("RunTracker: start() has not been called")
        return self.run_id

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
        if bad:
            raise FloatingPointError(f"non-finite metrics: {bad}")
        ts = mlflow.utils.time.get_current_time_millis()
        items = [Metric(k, float(v), ts, step) for k, v in metrics.items()]
        for start in range(0, len(items), 1000):
            self.client.log_batch(self._run, metrics=items[start : start + 1000])

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self.client.log_batch(self._run, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self._run, text, artifact_file)

    def log_table(self, table: pd.DataFrame, artifact_file: str) -> None:
        self.client.log_table(self._run, data=table, artifact_file=artifact_file)

    def lightning_logger(self):  # noqa: ANN201 - lightning type imported lazily
        """Lightning's MLFlowLogger writing into this same run, which it must not end."""
        from lightning.pytorch.loggers import MLFlowLogger

        tracker = self

        class RunLogger(MLFlowLogger):
            def finalize(self, status: str = "success") -> None:
                # Training is one stage of several: the run ends when the pipeline says so,
                # not when Trainer.fit returns (it would read FINISHED during evaluation).
                pass

            def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
                if step is not None:
                    step += tracker.step_offset
                    tracker.last_step = max(tracker.last_step, step)
                super().log_metrics(metrics, step)

        return RunLogger(experiment_name=self.experiment_name, tracking_uri=self.tracking_uri, run_id=self._run)

    def end(self, status: str) -> None:
        if self.run_id is not None:
            self.client.set_terminated(self.run_id, status=status)


class SweepParent:
    """The parent run of a sweep: its jobs' runs are its children (`mlflow.parentRunId`), which
    the MLflow UI nests and compares as a group.

    `key` identifies the sweep (the same command, store and experiment): a relaunch after a kill
    reuses the parent, as its jobs reuse their runs. When the launch ends the parent gets its
    status (FINISHED when every job finished, FAILED when one did not, KILLED when the launch was
    stopped) and a summary of its children: job counts, the best point by gold reward and the
    reward–KL frontier (`frontier.json`)."""

    GOLD, KL = "eval/gold_reward", "eval/kl"

    def __init__(self, tracker: RunTracker, key: str, jobs: int | None) -> None:
        self.tracker, self.key, self.jobs = tracker, key, jobs

    def open(self, tags: Mapping[str, str], params: Mapping[str, str], texts: Mapping[str, str]) -> str:
        """Find this sweep's parent or create it; returns its run id."""
        tracker = self.tracker
        exp_id = tracker._experiment_id()
        found = tracker.client.search_runs([exp_id], filter_string=f"tags.`sweep.key` = '{self.key}'",
                                           order_by=["attributes.start_time DESC"], max_results=1)
        tags = {**tags, SWEEP_PARENT_TAG: "1", "sweep.key": self.key}
        if found:
            run = found[0]
            tracker.run_id = run.info.run_id
            tracker.client.update_run(tracker.run_id, status="RUNNING")
            tracker.set_tags(tags | {"resumed": str(int(run.data.tags.get("resumed", "0")) + 1)})
            return tracker.run_id
        tracker.run_id = tracker.client.create_run(exp_id, run_name=tracker.run_name, tags=tags).info.run_id
        items = [Param(k, v) for k, v in params.items()]
        for start in range(0, len(items), 100):
            tracker.client.log_batch(tracker.run_id, params=items[start : start + 100])
        for name, text in texts.items():
            tracker.log_text(text, name)
        return tracker.run_id

    def children(self) -> list[Any]:
        client, run_id = self.tracker.client, self.tracker._run
        runs, token = [], None
        while True:
            page = client.search_runs([client.get_run(run_id).info.experiment_id],
                                      filter_string=f"tags.`{PARENT_TAG}` = '{run_id}'", max_results=1000,
                                      page_token=token)
            runs += list(page)
            token = page.token
            if not token:
                return runs

    def close(self, status: str) -> None:
        """Summarise the children and end the parent with `status`, or FAILED if a job did not
        finish (a launch that ended normally with fewer finished jobs than points)."""
        children = self.children()
        finished = [r for r in children if r.info.status == "FINISHED"]
        counts = {f"sweep/jobs_{s.lower()}": float(sum(r.info.status == s for r in children))
                  for s in ("FINISHED", "FAILED", "KILLED", "RUNNING")}
        metrics = counts | ({"sweep/jobs": float(self.jobs)} if self.jobs is not None else {})
        scored = [r for r in finished if self.GOLD in r.data.metrics]
        if scored:
            best = max(scored, key=lambda r: r.data.metrics[self.GOLD])
            metrics["sweep/best_gold_reward"] = best.data.metrics[self.GOLD]
            self.tracker.set_tags({"sweep.best_run": best.info.run_id, "sweep.best_run_name": best.info.run_name})
            frontier = reward_kl_frontier(scored, self.GOLD, self.KL)
            if frontier:
                metrics["sweep/frontier_size"] = float(len(frontier))
                self.tracker.log_text(json.dumps(frontier, indent=1), "frontier.json")
        self.tracker.log_metrics(metrics)
        if status == "FINISHED" and self.jobs is not None and len(finished) < self.jobs:
            status = "FAILED"
        self.tracker.end(status)


def reward_kl_frontier(runs: list[Any], gold: str, kl: str) -> list[dict[str, Any]]:
    """The runs no other run beats on both gold reward (higher) and KL (lower), by KL."""
    points = [(r.data.metrics[kl], r.data.metrics[gold], r) for r in runs if kl in r.data.metrics]
    front = [(k, g, r) for k, g, r in points
             if not any(k2 <= k and g2 >= g and (k2, g2) != (k, g) for k2, g2, _ in points)]
    return [{"run_id": r.info.run_id, "run_name": r.info.run_name, kl: k, gold: g} for k, g, r in sorted(front, key=lambda p: p[0])]

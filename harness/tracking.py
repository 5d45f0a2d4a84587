"""One MLflow run per experiment: naming, tags, params, metrics and artifacts.

The tracking store is MLflow's own default unless MLFLOW_TRACKING_URI (or an explicit URI)
says otherwise, so `mlflow ui` started in the same directory shows the runs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from contextlib import nullcontext
from typing import Any

import mlflow
import pandas as pd
from filelock import FileLock
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from harness.errors import InputError

MAX_PARAM_CHARS = 6000  # MLflow's limit on one param value


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


class RunTracker:
    def __init__(
        self,
        experiment_name: str,
        run_name: str | None = None,
        tracking_uri: str | None = None,
    ) -> None:
        self.tracking_uri = tracking_uri or mlflow.get_tracking_uri()
        try:
            with self._store_lock():  # a client creates (migrates) a fresh store when it starts
                self.client = MlflowClient(self.tracking_uri)
        except Exception as err:  # a missing directory, a read-only file, an unreachable server
            message = " ".join(str(err).split())[:300]
            raise InputError(f"MLflow store {self.tracking_uri} (MLFLOW_TRACKING_URI) is not usable: {message}") from err
        self.experiment_name = experiment_name
        self.run_name = run_name
        self.run_id: str | None = None

    def _store_lock(self) -> FileLock | nullcontext:
        # A fresh SQLite store is created (schema migrations) by its first client: jobs of a
        # parallel sweep starting together would race, so clients start one at a time.
        if self.tracking_uri.startswith("sqlite:///"):
            return FileLock(self.tracking_uri.removeprefix("sqlite:///") + ".lock")
        return nullcontext()

    def _experiment_id(self) -> str:
        try:
            with self._store_lock():
                experiment = self.client.get_experiment_by_name(self.experiment_name)
                if experiment is not None:
                    return experiment.experiment_id
                try:
                    return self.client.create_experiment(self.experiment_name)
                except MlflowException:  # created meanwhile by a job on another machine
                    return self.client.get_experiment_by_name(self.experiment_name).experiment_id
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

        class RunLogger(MLFlowLogger):
            def finalize(self, status: str = "success") -> None:
                # Training is one stage of several: the run ends when the pipeline says so,
                # not when Trainer.fit returns (it would read FINISHED during evaluation).
                pass

        return RunLogger(experiment_name=self.experiment_name, tracking_uri=self.tracking_uri, run_id=self._run)

    def end(self, status: str) -> None:
        if self.run_id is not None:
            self.client.set_terminated(self.run_id, status=status)

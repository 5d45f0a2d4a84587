"""One MLflow run per experiment: naming, tags, params, metrics and artifacts.

The tracking store is MLflow's own default unless MLFLOW_TRACKING_URI (or an explicit URI)
says otherwise, so `mlflow ui` started in the same directory shows the runs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import mlflow
import pandas as pd
from mlflow.entities import Metric, Param, RunTag
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
        self.client = MlflowClient(self.tracking_uri)
        self.experiment_name = experiment_name
        self.run_name = run_name
        self.run_id: str | None = None

    def start(self, tags: Mapping[str, str], params: Mapping[str, str]) -> str:
        try:
            experiment = self.client.get_experiment_by_name(self.experiment_name)
            exp_id = experiment.experiment_id if experiment else self.client.create_experiment(self.experiment_name)
        except Exception as err:
            raise InputError(f"MLflow store {self.tracking_uri} is not usable: {err}") from err
        run = self.client.create_run(exp_id, run_name=self.run_name, tags=dict(tags))
        self.run_id = run.info.run_id
        items = [Param(k, v) for k, v in params.items()]
        for start in range(0, len(items), 100):  # log_batch takes at most 100 params
            self.client.log_batch(self.run_id, params=items[start : start + 100])
        return self.run_id

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

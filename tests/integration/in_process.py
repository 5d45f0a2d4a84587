"""One experiment run in this process, as the CLI runs it, against the session's throwaway stores."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning as L
import mlflow
import pytest
from hydra import compose, initialize_config_dir

from harness.cli.run import CONFIG_DIR, build_experiment
from harness.pipeline import run_experiment


def run_in_process(name: str, overrides: list[str], run_dir: Path,
                   monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, float], Any, Any, mlflow.MlflowClient]:
    """`overrides` composed, built and run in the MLflow experiment `name` (which holds this run
    alone): (the run's summary metrics, the Experiment, the MLflow run, the client)."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=[*overrides, f"logger.experiment_name={name}"])
    for key in ("PL_GLOBAL_SEED", "PL_SEED_WORKERS"):  # set by seed_everything: unset again after the test
        monkeypatch.setenv(key, "")
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)  # as the CLI does
    exp = build_experiment(cfg, run_dir)
    metrics = run_experiment(exp)
    client = mlflow.MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    (run,) = client.search_runs([client.get_experiment_by_name(name).experiment_id])
    return metrics, exp, run, client

"""Shared fixtures: an isolated MLflow store and artifact cache per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("harness")


@pytest.fixture(scope="session")
def harness_env(workdir: Path) -> dict[str, str]:
    """Environment for running the CLI as a user would, against throwaway stores."""
    env = dict(os.environ)
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{workdir / 'mlflow.db'}"
    env["PREFHARNESS_CACHE"] = str(workdir / "cache")
    env.pop("MLFLOW_EXPERIMENT_NAME", None)
    return env

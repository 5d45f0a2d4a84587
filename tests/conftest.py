"""Shared fixtures: an isolated MLflow store and artifact cache per test session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Set by hand to redirect one Hugging Face cache; unset, so that HF_HOME decides for all of them.
HF_CACHE_OVERRIDES = ("HF_HUB_CACHE", "HF_DATASETS_CACHE", "HF_XET_CACHE", "HUGGINGFACE_HUB_CACHE",
                      "TRANSFORMERS_CACHE", "SENTENCE_TRANSFORMERS_HOME")


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("harness")


def isolated_env(workdir: Path) -> dict[str, str]:
    """The variables that point every store the code reads from the environment into `workdir`."""
    return {
        "PREFHARNESS_CACHE": str(workdir / "cache"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}",
        # Caches that default to ~/.cache (Hugging Face datasets and hub, torch, matplotlib, pip).
        "HF_HOME": str(workdir / "huggingface"),
        "XDG_CACHE_HOME": str(workdir / "xdg-cache"),
    }


@pytest.fixture(scope="session", autouse=True)
def isolate_stores(workdir: Path) -> Iterator[None]:
    """Point the whole test process at throwaway stores before any test runs: code that falls
    back on the environment (bench/common.py, harness's paths.cache_dir, mlflow) must never
    write to a user's ~/.cache/prefharness or MLflow store. Subprocesses inherit it."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in isolated_env(workdir).items():
            mp.setenv(key, value)
        for key in (*HF_CACHE_OVERRIDES, "MLFLOW_EXPERIMENT_NAME"):
            mp.delenv(key, raising=False)
        yield


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One throwaway artifact cache for the in-process runs on model=tiny of the session: the
    tiny model, samples, labels, reference log-probs and reward model of experiment=smoke are
    built by the first run that needs them and reused by the others, as a user's runs share
    them (each run still trains and evaluates)."""
    return tmp_path_factory.mktemp("tiny-cache")


@pytest.fixture(scope="session")
def harness_env(workdir: Path, isolate_stores: None) -> dict[str, str]:
    """Environment for running the CLI as a user would, against throwaway stores (the session's
    own, as in this process)."""
    env = dict(os.environ) | isolated_env(workdir)
    env.pop("MLFLOW_EXPERIMENT_NAME", None)
    return env

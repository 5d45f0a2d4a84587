"""The tests run against throwaway stores, never a user's cache or MLflow store."""

from __future__ import annotations

import os
from pathlib import Path

HOME_CACHE = Path("~/.cache").expanduser().resolve()


def _under(path: str | Path, root: Path) -> bool:
    return Path(path).expanduser().resolve().is_relative_to(root)


def test_prefharness_cache_is_not_the_users() -> None:
    from bench.common import cache_dir

    cache = os.environ.get("PREFHARNESS_CACHE")
    assert cache, "tests/conftest.py sets PREFHARNESS_CACHE for the whole session"
    assert not _under(cache, HOME_CACHE / "prefharness")
    assert cache_dir() == Path(cache)  # what bench/common.py (test_bench) builds its model under


def test_other_stores_are_temporary(harness_env: dict[str, str]) -> None:
    uri = os.environ["MLFLOW_TRACKING_URI"]
    assert uri.startswith("sqlite:///") and not _under(uri.removeprefix("sqlite:///"), Path.home())
    for key in ("HF_HOME", "XDG_CACHE_HOME"):
        assert not _under(os.environ[key], HOME_CACHE)
    # Subprocesses run by the CLI tests see the same stores as this process.
    assert {k: harness_env[k] for k in ("PREFHARNESS_CACHE", "MLFLOW_TRACKING_URI")} == {
        k: os.environ[k] for k in ("PREFHARNESS_CACHE", "MLFLOW_TRACKING_URI")}

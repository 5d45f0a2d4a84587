"""Faults leave finished work intact: damaged artifacts are rebuilt, never loaded; an unusable
MLflow store fails fast with one line."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cache import build_once, damaged


def test_a_damaged_artifact_is_detected_and_rebuilt(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    calls = []

    def build(out: Path) -> None:
        calls.append(out)
        (out / "data.json").write_text('{"values": [1, 2, 3]}')

    target = tmp_path / "stage" / "abc"
    build_once(target, build, {"k": 1})
    assert damaged(target) is None and len(calls) == 1
    build_once(target, build, {"k": 1})
    assert len(calls) == 1  # intact: loaded
    (target / "data.json").write_text('{"values": [1, 2')  # truncated after the fact
    assert "data.json" in damaged(target)
    with caplog.at_level(logging.WARNING, logger="harness.cache"):
        build_once(target, build, {"k": 1})
    assert len(calls) == 2 and damaged(target) is None
    assert (target / "data.json").read_text() == '{"values": [1, 2, 3]}'
    assert "damaged" in caplog.text


@pytest.mark.slow  # python -m harness, twice
def test_a_truncated_stage_artifact_is_recomputed_by_the_next_run(harness_env: dict[str, str], tmp_path: Path) -> None:
    env = harness_env | {"PREFHARNESS_CACHE": str(tmp_path / "cache"), "MLFLOW_EXPERIMENT_NAME": "faults"}
    cmd = [sys.executable, "-m", "harness", "experiment=smoke", "resume=false", f"hydra.run.dir={tmp_path / 'run'}"]
    assert subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, timeout=600).returncode == 0
    (samples,) = (tmp_path / "cache" / "artifacts" / "samples").glob("*/samples.jsonl")
    samples.write_bytes(samples.read_bytes()[:100])
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "is damaged (checksum mismatch in samples.jsonl): rebuilding it" in proc.stdout + proc.stderr
    assert damaged(samples.parent) is None


@pytest.mark.slow  # python -m harness
@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_mlflow_store_fails_fast(harness_env: dict[str, str], tmp_path: Path) -> None:
    locked = tmp_path / "readonly"
    locked.mkdir(mode=0o500)
    _refused_store(f"sqlite:///{locked / 'mlflow.db'}", harness_env, tmp_path)


@pytest.mark.slow  # python -m harness
def test_mlflow_store_under_a_file_fails_fast(harness_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "notadir").write_text("a file where the store's directory should be")
    _refused_store(f"sqlite:///{tmp_path / 'notadir' / 'mlflow.db'}", harness_env, tmp_path)


def _refused_store(uri: str, harness_env: dict[str, str], tmp_path: Path) -> None:
    env = harness_env | {"MLFLOW_TRACKING_URI": uri, "PREFHARNESS_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-m", "harness", "experiment=smoke", f"hydra.run.dir={tmp_path / 'run'}"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("harness: error:")]
    assert len(errors) == 1 and uri in errors[0] and "not usable" in errors[0]
    assert not (tmp_path / "cache" / "artifacts").exists()


@pytest.mark.slow  # python -m harness
def test_a_non_finite_loss_fails_the_run_and_keeps_the_last_checkpoint(harness_env: dict[str, str],
                                                                        tmp_path: Path) -> None:
    import mlflow

    env = harness_env | {"PREFHARNESS_CACHE": str(tmp_path / "cache"), "MLFLOW_EXPERIMENT_NAME": "nan"}
    proc = subprocess.run([sys.executable, "-m", "harness", "experiment=smoke", "train.lr=1e30", "trainer.max_steps=8",
                           "train.checkpoint_every=1", f"hydra.run.dir={tmp_path / 'run'}"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("harness: error: numerical fault:")]
    assert len(errors) == 1 and "loss is nan" in errors[0].lower()
    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    (run,) = client.search_runs([client.get_experiment_by_name("nan").experiment_id])
    assert run.info.status == "FAILED"
    assert list((tmp_path / "cache" / "checkpoints").glob("*/train.ckpt")), "the last good checkpoint is kept"


class _Payload:
    def __reduce__(self):  # noqa: ANN204 - what a malicious checkpoint would carry
        return (os.system, ("touch PWNED",))


@pytest.mark.slow  # python -m harness
@pytest.mark.parametrize("content", ["truncated", "pickled_code"])
def test_a_bad_checkpoint_is_never_executed_and_training_starts_over(content: str, harness_env: dict[str, str],
                                                                     tmp_path: Path) -> None:
    import pickle

    import torch

    env = harness_env | {"PREFHARNESS_CACHE": str(tmp_path / "cache"), "MLFLOW_EXPERIMENT_NAME": f"ckpt-{content}"}
    overrides = ["experiment=smoke"]
    # Planted where the job's own checkpoint would be, as if an earlier attempt had left it.
    ckpt = tmp_path / "cache" / "checkpoints" / _run_key_of(overrides, env) / "train.ckpt"
    ckpt.parent.mkdir(parents=True)
    if content == "truncated":
        torch.save({"state_dict": {"w": torch.zeros(1000)}}, ckpt)
        ckpt.write_bytes(ckpt.read_bytes()[:200])
    else:
        ckpt.write_bytes(pickle.dumps({"state_dict": _Payload()}))
    proc = subprocess.run([sys.executable, "-m", "harness", *overrides, f"hydra.run.dir={tmp_path / 'run'}"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "cannot be loaded safely" in proc.stdout + proc.stderr
    assert not (tmp_path / "PWNED").exists()


def _run_key_of(overrides: list[str], env: dict[str, str]) -> str:
    from hydra import compose, initialize_config_dir

    from harness.cli.run import CONFIG_DIR, run_key
    from harness.tracking import RunTracker

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=[o for o in overrides if not o.startswith("hydra.")])
    tracker = RunTracker(env["MLFLOW_EXPERIMENT_NAME"], None, env["MLFLOW_TRACKING_URI"])
    return run_key(cfg, tracker)


@pytest.fixture
def full_disk(tmp_path: Path):  # noqa: ANN201
    """A 256 KiB tmpfs: too small for a model; needs mount rights (root in a container)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here")
    yield mount
    subprocess.run(["umount", str(mount)], capture_output=True)


@pytest.mark.slow  # python -m harness
def test_a_full_disk_fails_fast_and_leaves_nothing_half_written(full_disk: Path, harness_env: dict[str, str],
                                                                 tmp_path: Path) -> None:
    env = harness_env | {"PREFHARNESS_CACHE": str(full_disk / "cache"), "MLFLOW_EXPERIMENT_NAME": "full"}
    proc = subprocess.run([sys.executable, "-m", "harness", "experiment=smoke", f"hydra.run.dir={tmp_path / 'run'}"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("harness: error:")]
    assert len(errors) == 1 and "No space left on device" in errors[0], proc.stderr[-2000:]
    leftovers = [p for p in (full_disk / "cache").rglob("*") if ".tmp-" in p.name]
    assert not leftovers, leftovers
    assert not [d for d in (full_disk / "cache").glob("*/*") if d.is_dir() and not (d / ".complete").exists()]


def test_artifacts_from_before_checksums_are_still_trusted(tmp_path: Path) -> None:
    target = tmp_path / "stage" / "old"
    target.mkdir(parents=True)
    (target / "data.json").write_text("{}")
    (target / ".complete").write_text("ok\n")  # the marker of earlier versions
    assert damaged(target) is None
    assert build_once(target, lambda out: pytest.fail("rebuilt a trusted artifact")) == target
    (target / ".complete").write_text("{not json")
    assert damaged(target) == "unreadable completion marker"


def test_a_killed_build_leaves_nothing_a_later_build_keeps(tmp_path: Path) -> None:
    target = tmp_path / "stage" / "abc"
    stale = target.with_name(".abc.tmp-999999")  # what SIGKILL mid-build leaves behind
    stale.mkdir(parents=True)
    (stale / "half.json").write_text('{"val')
    build_once(target, lambda out: (out / "data.json").write_text("{}"))
    assert not stale.exists() and damaged(target) is None

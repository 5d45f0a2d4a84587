"""A run with trainer.precision=auto on a machine whose probe favours bf16 trains and evaluates
under bf16 autocast, records the resolved precision as its param and the probe as a tag, and
keys its artifacts apart from an fp32 run's; the gold judge is not affected by the autocast."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import precision
from tests.integration.in_process import run_in_process


def test_auto_precision_resolves_before_the_run_and_keys_its_artifacts(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "probe", lambda: {"fp32_ms": 9.0, "bf16_ms": 3.0, "bf16_speedup": 3.0})
    cache = tmp_path / "cache"
    common = ["experiment=smoke", f"paths.cache_dir={cache}"]
    metrics, exp, run, _ = run_in_process("precision-auto", [*common, "trainer.precision=auto"], tmp_path, monkeypatch)
    assert exp.trainer_kwargs["precision"] == "bf16-mixed"
    assert run.data.params["trainer.precision"] == "bf16-mixed"
    assert "3.0x" in run.data.tags["precision.probe"]
    assert run.info.status == "FINISHED" and metrics["eval/n"] > 0
    bf16 = {p.name for p in (cache / "artifacts" / "samples").iterdir()}
    fp32_metrics, exp32, run32, _ = run_in_process("precision-fp32", common, tmp_path, monkeypatch)
    assert exp32.trainer_kwargs["precision"] == "32-true" and "precision.probe" not in run32.data.tags
    assert exp32.run_key != exp.run_key
    both = {p.name for p in (cache / "artifacts" / "samples").iterdir()}
    assert len(both) == 2 * len(bf16)  # the fp32 run sampled its own chunks: no bf16 samples reused
    # the initial policy's eval responses differ in arithmetic only; the judge scores them in fp32
    assert fp32_metrics["eval/gold_reward_init"] == pytest.approx(metrics["eval/gold_reward_init"], abs=0.5)

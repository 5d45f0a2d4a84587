"""trainer.precision=auto: a stored probe decides bf16 autocast or fp32 per machine; a run's
autocast reaches its policy but not its judge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from harness import precision


def _probe(speedup: float):  # noqa: ANN202
    return lambda: {"fp32_ms": 10.0, "bf16_ms": round(10.0 / speedup, 3), "bf16_speedup": speedup}


def test_explicit_precisions_pass_through(tmp_path: Path) -> None:
    assert precision.resolve("32-true", "cpu", tmp_path) == ("32-true", None)
    assert precision.resolve("bf16-mixed", "cpu", tmp_path) == ("bf16-mixed", None)
    assert precision.resolve("auto", "gpu", tmp_path) == ("bf16-mixed", None)
    assert not (tmp_path / "precision").exists()


@pytest.mark.parametrize("speedup,choice", [(2.5, "bf16-mixed"), (1.1, "32-true"), (0.01, "32-true")])
def test_auto_follows_the_probe_and_stores_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, speedup: float,
                                              choice: str) -> None:
    monkeypatch.setattr(precision, "probe", _probe(speedup))
    resolved, found = precision.resolve("auto", "cpu", tmp_path)
    assert resolved == choice and found is not None and found["choice"] == choice
    assert found["cpu"] == precision.cpu_model() and found["bf16_speedup"] == speedup
    (stored,) = (tmp_path / "precision").iterdir()
    assert json.loads(stored.read_text()) == found
    # the next run on this machine reads the stored decision: no second probe to disagree
    monkeypatch.setattr(precision, "probe", lambda: pytest.fail("probed twice"))
    assert precision.resolve("auto", "cpu", tmp_path) == (choice, found)


def test_a_damaged_store_is_probed_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "probe", _probe(3.0))
    precision.resolve("auto", "cpu", tmp_path)
    (stored,) = (tmp_path / "precision").iterdir()
    stored.write_text("{not json")
    monkeypatch.setattr(precision, "probe", _probe(1.0))
    assert precision.resolve("auto", "cpu", tmp_path)[0] == "32-true"


def test_the_probe_times_both_precisions() -> None:
    found = precision.probe(rows=64, hidden=32, inner=64)
    assert found["fp32_ms"] > 0 and found["bf16_ms"] > 0
    assert found["bf16_speedup"] == pytest.approx(found["fp32_ms"] / found["bf16_ms"], rel=0.01)


def test_autocast_reaches_the_policy_not_the_judge() -> None:
    layer = torch.nn.Linear(8, 8)
    x = torch.randn(2, 8)
    with precision.autocast("bf16-mixed"):
        assert layer(x).dtype == torch.bfloat16
        with precision.fp32():
            assert layer(x).dtype == torch.float32
    with precision.autocast("32-true"):
        assert layer(x).dtype == torch.float32


def test_the_judges_encoder_scores_in_fp32_under_a_runs_autocast() -> None:
    from harness.labelers.scorers import AnchorSimilarityScorer

    scorer = AnchorSimilarityScorer(["a wonderful, happy day"], ["an awful, sad day"])
    texts = ["what a lovely film", "the worst meal I ever had"]
    plain = scorer._embed(texts)
    with precision.autocast("bf16-mixed"):
        assert (scorer._embed(texts) == plain).all()

"""labels.kind=binary on model=tiny: the panel rates each response alone (thumbs up or down), KTO
trains on the ratings unpaired, and the run records the kind; methods and labelers that need
comparisons refuse it by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.errors import InputError
from tests.integration.in_process import run_in_process

BASE = ["experiment=smoke", "labels.n=16", "labels.k=2", "sampling.chunk=16", "eval.n_prompts=8",
        "logger.log_model=false"]


def test_kto_trains_on_thumbs_up_and_down(tiny_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    metrics, _, run, _ = run_in_process("binary", [*BASE, "loss=kto", "labels.kind=binary",
                                                   f"paths.cache_dir={tiny_cache}"], tmp_path, monkeypatch)
    assert run.info.status == "FINISHED" and "eval/gold_reward" in metrics
    assert run.data.tags["labels.kind"] == "binary" and run.data.params["labels.kind"] == "binary"
    # The labels artifact (one chunk of 16 prompts) holds each response's rating.
    found = [[json.loads(line) for line in path.read_text().splitlines()]
             for path in (tiny_cache / "artifacts" / "labels").glob("*/labels.jsonl")]
    [rows] = [r for r in found if "ratings" in r[0]]
    assert all(len(r["ratings"]) == 2 and set(r["ratings"]) <= {0, 1} for r in rows)
    # Every response is an example as rated (a comparison gives one desirable per prompt).
    ups = sum(sum(r["ratings"]) for r in rows[:-2])  # train.val_fraction holds out the last prompts
    logged = run.data.metrics
    assert logged["labels/desirable"] + logged["labels/undesirable"] == 2 * (len(rows) - 2)
    assert logged["labels/desirable"] == ups and 0 < ups < 2 * (len(rows) - 2)


@pytest.mark.parametrize(("overrides", "message"), [
    (["loss=dpo"], r"labels\.kind=binary: loss=dpo trains on comparisons"),
    (["loss=kto", "labeler=llm_judge"], r"labels\.kind=binary: labeler=llm_judge gives comparisons"),
    (["loss=kto", "labels.kind=thumbs"], r"labels\.kind: expected one of comparison, binary"),
])
def test_binary_labels_where_they_cannot_train_are_refused(overrides: list[str], message: str, tiny_cache: Path,
                                                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InputError, match=message):
        run_in_process("binary-refused", [*BASE, "labels.kind=binary", *overrides, f"paths.cache_dir={tiny_cache}"],
                       tmp_path, monkeypatch)

"""labels.kind=binary on model=tiny: the panel, people on the labelling page and an LLM judge rate
each response alone (thumbs up or down), KTO trains on the ratings unpaired, and the run records
the kind; methods and labelers that need comparisons refuse it by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.errors import AwaitingLabels, InputError
from harness.labelers.page import Labelling
from tests.fake_openai import KEY, serve
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
    (["loss=kto", "labeler=file", "labeler.path=FILE", "labeler@judge=lexicon_panel"],
     r"labels\.kind=binary: labeler=file gives comparisons"),
    (["loss=kto", "labels.kind=thumbs"], r"labels\.kind: expected one of comparison, binary"),
])
def test_binary_labels_where_they_cannot_train_are_refused(overrides: list[str], message: str, tiny_cache: Path,
                                                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    comparisons = tmp_path / "comparisons.jsonl"
    comparisons.write_text("".join(json.dumps({"prompt": f"p{i}", "responses": [" a", " b"], "choice": 0}) + "\n"
                                   for i in range(16)))
    overrides = [o.replace("FILE", str(comparisons)) for o in overrides]
    with pytest.raises(InputError, match=message):
        run_in_process("binary-refused", [*BASE, "labels.kind=binary", *overrides, f"paths.cache_dir={tiny_cache}"],
                       tmp_path, monkeypatch)


def _labels_rows(cache: Path) -> list[dict]:
    newest = max((cache / "artifacts" / "labels").glob("*/labels.jsonl"), key=lambda p: p.stat().st_mtime)
    return [json.loads(line) for line in newest.read_text().splitlines()]


def test_people_give_thumbs_on_the_page_and_kto_trains_on_them(tiny_cache: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    people = tmp_path / "people"
    overrides = [*BASE, "labels.n=8", "sampling.chunk=8", "loss=kto", "labels.kind=binary", "labeler=human",
                 f"labeler.dir={people}", "labeler@judge=lexicon_panel", f"paths.cache_dir={tiny_cache}"]
    with pytest.raises(AwaitingLabels) as wait:
        run_in_process("binary-people", overrides, tmp_path / "run", monkeypatch)
    page = Labelling(people / "queue.jsonl", people / "labels.jsonl")
    assert {item["kind"] for item in page.items} == {"rating"}
    assert wait.value.pending == len(page.items) >= 15  # every response alone (two the same text: one item)
    # Ann rates every response, up on the odd lines of the queue; Bob rates the first four, all up.
    up = {item["id"]: n % 2 for n, item in enumerate(page.items)}
    for name, items in (("ann", page.items), ("bob", page.items[:4])):
        for item in items:
            page.record(name, {"id": item["id"], "shown": "[0]", "shown_at": "0",
                               "rating": "1" if name == "bob" else str(up[item["id"]])})
    metrics, _, run, _ = run_in_process("binary-people", overrides, tmp_path / "again", monkeypatch)
    assert run.info.status == "FINISHED" and "eval/gold_reward" in metrics
    assert run.data.tags["labels.kind"] == "binary"
    rows = _labels_rows(tiny_cache)
    queue = {(item["prompt"], item["responses"][0]): item["id"] for item in page.items}
    samples = max((tiny_cache / "artifacts" / "samples").glob("*/samples.jsonl"), key=lambda p: p.stat().st_mtime)
    texts = [json.loads(line)["texts"] for line in samples.read_text().splitlines()]
    prompts = [json.loads(line)["prompt"] for line in samples.read_text().splitlines()]
    for row, prompt, group in zip(rows, prompts, texts):
        for rating, votes, text in zip(row["ratings"], row["votes"], group):
            item = queue[(prompt, text)]
            assert votes == ([up[item], 1] if item in {i["id"] for i in page.items[:4]} else [up[item]])
            if len(votes) == 1:
                assert rating == up[item]  # one rating: its own; Ann and Bob at odds: a draw
    # Agreement: Bob agreed with Ann on two of the four responses both rated.
    assert run.data.metrics["labels/agreement"] < 1.0


def test_an_llm_judge_gives_thumbs_and_kto_trains_on_them(tiny_cache: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with serve() as (url, fake):
        overrides = [*BASE, "labels.n=8", "sampling.chunk=8", "loss=kto", "labels.kind=binary", "labeler=llm_judge",
                     f"labeler.base_url={url}", "labeler.model=fake", "labeler@judge=lexicon_panel",
                     f"paths.cache_dir={tiny_cache}"]
        metrics, _, run, _ = run_in_process("binary-judge", overrides, tmp_path / "run", monkeypatch)
    assert run.info.status == "FINISHED" and "eval/gold_reward" in metrics
    assert 0 < len(fake.requests) <= 16 and all("Answer Yes or No." in r for r in fake.requests)
    assert all(r["ratings"] == [0, 0] for r in _labels_rows(tiny_cache))  # the fake says No without "good"
    assert "labels/agreement" not in run.data.metrics  # one judge: no agreement to measure

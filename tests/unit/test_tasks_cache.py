import json
from pathlib import Path

import pytest

from harness.cache import ArtifactCache, config_hash
from harness.errors import InputError
from harness.tasks.sentiment import SentimentTask, generate_prompts


def test_embedded_sentiment_default_is_deterministic_and_disjoint() -> None:
    task = SentimentTask()
    train, evals = task.examples("train"), task.examples("eval")
    assert len(train) >= 1000 and len(evals) >= 200
    assert {e.prompt for e in train}.isdisjoint(e.prompt for e in evals)
    assert [e.prompt for e in train] == [e.prompt for e in SentimentTask().examples("train")]
    assert generate_prompts(50, 1) != generate_prompts(50, 2)


def test_local_jsonl_with_column_mapping(tmp_path: Path) -> None:
    rows = [{"review": f"review number {i} says the movie was long and", "label": 1} for i in range(6)]
    for split in ("train", "test"):
        (tmp_path / f"{split}.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    task = SentimentTask(source=str(tmp_path), n_train=4, n_eval=2, prompt_words=3, columns={"prompt": "review"})
    assert [e.prompt for e in task.examples("train")] == ["review number 0", "review number 1", "review number 2", "review number 3"]
    assert len(task.examples("eval")) == 2


def test_missing_column_names_file_and_column(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("body,label\nhello there,1\n")
    with pytest.raises(InputError, match=r"data.csv.*\['text'\]"):
        SentimentTask(source=str(path), n_train=1).examples("train")


def test_too_few_rows(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps({"text": "one two"}) + "\n")
    with pytest.raises(InputError, match="n_train asks for 5"):
        SentimentTask(source=str(path), n_train=5).examples("train")


def test_cache_builds_once_and_failed_build_leaves_nothing(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)
    calls = []

    def build(out: Path) -> None:
        calls.append(1)
        (out / "x.txt").write_text("done")

    spec = {"b": 1, "a": [1, 2]}
    first = cache.get_or_build("stage", spec, build)
    second = cache.get_or_build("stage", {"a": [1, 2], "b": 1}, build)
    assert first == second and len(calls) == 1
    assert first.name == config_hash(spec)

    def broken(out: Path) -> None:
        (out / "half.txt").write_text("partial")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        cache.get_or_build("stage", {"other": 1}, broken)
    assert not cache.path("stage", {"other": 1}).exists()
    assert [p.name for p in (tmp_path / "stage").iterdir() if not p.name.endswith(".lock")] == [first.name]

"""Importers (harness/labelers/importers.py, `harness-label import`): Label Studio's pairwise
export, Chatbot-Arena battles and TRL rows → the JSONL `labeler=file` reads, every record
validated, nothing written from a bad file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import label
from harness.errors import InputError
from harness.labelers.file import read_comparisons
from harness.labelers.importers import import_comparisons


def preferred(line: dict) -> str:
    return line["responses"][line["choice"]]


def other(line: dict) -> str:
    return line["responses"][1 - line["choice"]]


def write(path: Path, records: list, jsonl: bool = False) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n" if jsonl else json.dumps(records))
    return path


LABEL_STUDIO = [
    {"id": 7, "data": {"prompt": "The film was", "text1": " great fun.", "text2": " a bore."},
     "annotations": [
         {"id": 70, "completed_by": 3, "result": [{"from_name": "pw", "to_name": ["text1", "text2"],
                                                   "type": "pairwise", "value": {"selected": "left"}}]},
         {"id": 71, "completed_by": 4, "result": [{"type": "pairwise", "value": {"selected": "right"}}]},
         {"id": 72, "completed_by": 5, "was_cancelled": True, "result": []},
     ]},
    {"id": 8, "data": {"prompt": "My day", "text1": " was long.", "text2": " was lovely."}, "annotations": []},
]


def test_label_studio_pairwise_each_annotation_is_a_comparison(tmp_path: Path) -> None:
    imported = import_comparisons("label-studio", write(tmp_path / "ls.json", LABEL_STUDIO))
    assert [(line["id"], preferred(line), other(line), line["annotator"]) for line in imported.lines] == [
        ("ls-7-70", " great fun.", " a bore.", "3"), ("ls-7-71", " a bore.", " great fun.", "4")]
    assert imported.skipped == {"cancelled annotation": 1}
    assert {line["prompt"] for line in imported.lines} == {"The film was"}


def test_label_studio_bad_selection_names_the_task_and_annotation(tmp_path: Path) -> None:
    bad = json.loads(json.dumps(LABEL_STUDIO))
    bad[0]["annotations"][1]["result"][0]["value"]["selected"] = "middle"
    with pytest.raises(InputError, match=r"ls\.json\[0\]\.annotations\[1\]: result\[\]\.value\.selected: "
                                         r"expected 'left' or 'right', found \"middle\""):
        import_comparisons("label-studio", write(tmp_path / "ls.json", bad))


def battle(qid: str, winner: str, a: str = " yes.", b: str = " no.", prompt: str = "Is it good?") -> dict:
    return {"question_id": qid, "model_a": "m1", "model_b": "m2", "winner": winner, "judge": "arena_user_9",
            "conversation_a": [{"role": "user", "content": prompt}, {"role": "assistant", "content": a}],
            "conversation_b": [{"role": "user", "content": prompt}, {"role": "assistant", "content": b}]}


def test_arena_battles_winner_is_the_choice_ties_are_skipped(tmp_path: Path) -> None:
    path = write(tmp_path / "battles.jsonl", [battle("q1", "model_a"), battle("q2", "model_b"),
                                             battle("q3", "tie"), battle("q4", "tie (bothbad)")], jsonl=True)
    imported = import_comparisons("arena", path)
    assert [(line["id"], preferred(line), line["annotator"]) for line in imported.lines] == [
        ("arena-q1", " yes.", "arena_user_9"), ("arena-q2", " no.", "arena_user_9")]
    assert imported.skipped == {"tie": 2}


@pytest.mark.parametrize(("edit", "message"), [
    ({"winner": "model_c"}, r"battles\.jsonl:1: winner: expected one of model_a, model_b, tie"),
    ({"conversation_a": [{"role": "user", "content": "x"}]}, r":1: conversation_a: expected one user message then one"),
    ({"conversation_b": [{"role": "user", "content": "Other?"}, {"role": "assistant", "content": " no."}]},
     r":1: conversation_b\[0\]\.content: expected the same prompt as conversation_a"),
])
def test_arena_bad_battles_are_refused(tmp_path: Path, edit: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        import_comparisons("arena", write(tmp_path / "battles.jsonl", [battle("q1", "model_a") | edit], jsonl=True))


def test_trl_rows_plain_and_conversational(tmp_path: Path) -> None:
    rows = [{"prompt": "The film was", "chosen": " great.", "rejected": " dull."},
            {"prompt": [{"role": "user", "content": "Say hi"}],
             "chosen": [{"role": "assistant", "content": "Hi!"}], "rejected": [{"role": "assistant", "content": "No."}]}]
    imported = import_comparisons("trl", write(tmp_path / "prefs.jsonl", rows, jsonl=True))
    assert [(line["prompt"], preferred(line), other(line)) for line in imported.lines] == [
        ("The film was", " great.", " dull."), ("Say hi", "Hi!", "No.")]
    with pytest.raises(InputError, match=r"prefs2\.json\[1\]: rejected: expected a non-empty string, found \"\""):
        import_comparisons("trl", write(tmp_path / "prefs2.json", [rows[0], rows[0] | {"rejected": ""}]))


def test_the_chosen_response_is_not_always_first(tmp_path: Path) -> None:
    rows = [{"prompt": f"p{i}", "chosen": " good.", "rejected": " bad."} for i in range(40)]
    imported = import_comparisons("trl", write(tmp_path / "prefs.jsonl", rows, jsonl=True))
    choices = [line["choice"] for line in imported.lines]
    assert 10 < sum(choices) < 30  # both positions, by a hash of each record's id
    assert all(preferred(line) == " good." for line in imported.lines)


def test_cli_writes_what_labeler_file_reads_and_never_overwrites(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    source, out = write(tmp_path / "ls.json", LABEL_STUDIO), tmp_path / "labels.jsonl"
    label.main(["import", "label-studio", str(source), str(out)])
    assert "2 comparisons from" in capsys.readouterr().out
    records = read_comparisons(out)
    assert [(r.id, r.responses[r.choice]) for r in records] == [("ls-7-70", " great fun."), ("ls-7-71", " a bore.")]
    with pytest.raises(SystemExit) as again:
        label.main(["import", "label-studio", str(source), str(out)])
    assert again.value.code == 2 and "exists" in capsys.readouterr().err
    # A file with nothing to import writes nothing.
    with pytest.raises(SystemExit) as empty:
        label.main(["import", "arena", str(write(tmp_path / "ties.jsonl", [battle("q", "tie")], jsonl=True)),
                    str(tmp_path / "none.jsonl")])
    assert empty.value.code == 2 and "no comparison to import (1 tie)" in capsys.readouterr().err
    assert not (tmp_path / "none.jsonl").exists() and not list(tmp_path.glob(".*.tmp"))

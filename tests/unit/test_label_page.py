"""The labelling page (harness/labelers/page.py) through its HTTP interface: answers appended in
the shape labeler=file reads, ties and skips passed over, tokens off loopback, texts escaped,
one answer per annotator and item. (A real browser drives it in tests/slow/test_label_page_browser.py.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from harness.errors import InputError
from harness.labelers.file import read_comparisons
from harness.labelers.page import Labelling, create_app, read_annotators, read_queue, shown_order

ITEMS = [
    {"id": "a", "prompt": "The film was", "responses": [" great.", " dull."]},
    {"id": "b", "prompt": "My day", "responses": [" <script>alert(1)</script>", " was fine & calm."]},
    {"id": "c", "prompt": "Dinner", "responses": [" tasty.", " cold.", " late."]},
]


def queue(tmp_path: Path, items: list[dict] = ITEMS) -> Path:
    path = tmp_path / "queue.jsonl"
    path.write_text("".join(json.dumps(i) + "\n" for i in items))
    return path


def form(page: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page))


def answer(client: TestClient, page: str, **extra: str) -> str:
    fields = {k: v.replace("&#34;", '"') for k, v in form(page).items()} | extra
    response = client.post("/answer", data=fields, follow_redirects=True)
    assert response.status_code == 200, response.text
    return response.text


def test_answers_are_appended_as_labeler_file_reads_them(tmp_path: Path) -> None:
    labels = tmp_path / "labels.jsonl"
    client = TestClient(create_app(Labelling(queue(tmp_path), labels)))
    page = client.get("/").text
    assert "local: 0 of 3 labelled" in page and "The film was" in page
    shown = json.loads(form(page)["shown"].replace("&#34;", '"'))
    assert shown == shown_order("local", "a", 2)
    page = answer(client, page, position="1")  # the response shown second
    assert "local: 1 of 3 labelled" in page and "My day" in page
    page = answer(client, page, outcome="tie")
    page = answer(client, page, outcome="skip")
    assert "Nothing left to label" in page and "3 of 3" in page
    lines = [json.loads(line) for line in labels.read_text().splitlines()]
    assert [(x["item"], x["outcome"], x["annotator"]) for x in lines] == [
        ("a", "choice", "local"), ("b", "tie", "local"), ("c", "skip", "local")]
    first = lines[0]
    assert first["choice"] == shown[1] and first["position"] == 1 and first["shown"] == shown
    assert first["seconds"] is not None and first["seconds"] >= 0
    # labeler=file reads the answers and passes over the tie and the skip.
    [record] = read_comparisons(labels)
    assert (record.id, record.responses[record.choice]) == ("a/local", ITEMS[0]["responses"][shown[1]])


def test_texts_are_escaped(tmp_path: Path) -> None:
    client = TestClient(create_app(Labelling(queue(tmp_path, ITEMS[1:2]), tmp_path / "labels.jsonl")))
    page = client.get("/").text
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "fine &amp; calm" in page


def test_two_annotators_both_count_and_a_repeat_is_ignored(tmp_path: Path) -> None:
    labels = tmp_path / "labels.jsonl"
    client = TestClient(create_app(Labelling(queue(tmp_path), labels)))
    ann = client.get("/?annotator=ann").text
    bob = client.get("/?annotator=bob").text
    assert "ann: 0 of 3" in ann and "bob: 0 of 3" in bob
    answer(client, ann, position="0")
    answer(client, bob, position="0")
    answer(client, ann, position="1")  # the same page submitted again: the first answer stands
    lines = [json.loads(line) for line in labels.read_text().splitlines()]
    assert sorted((x["annotator"], x["item"]) for x in lines) == [("ann", "a"), ("bob", "a")]
    assert "ann: 1 of 3" in client.get("/?annotator=ann").text


def test_off_loopback_every_request_needs_a_valid_token(tmp_path: Path) -> None:
    tokens = {"t" * 20: "ann", "u" * 20: "bob"}
    labels = tmp_path / "labels.jsonl"
    client = TestClient(create_app(Labelling(queue(tmp_path), labels, tokens, require_token=True)))
    assert client.get("/").status_code == 403
    assert client.get("/?token=wrong").status_code == 403
    assert client.get("/?annotator=ann").status_code == 403  # a name is not a token
    page = client.get("/?token=" + "t" * 20).text
    assert "ann: 0 of 3" in page
    refused = client.post("/answer", data={k: v for k, v in form(page).items() if k != "token"} | {"position": "0"})
    assert refused.status_code == 403 and labels.read_text() == ""
    answer(client, page, position="0")
    # Bob's page shows his own progress only; nothing lists or changes Ann's answer.
    assert "bob: 0 of 3" in client.get("/?token=" + "u" * 20).text
    assert client.get("/labels").status_code == 404


def test_bad_answers_and_queues_are_refused(tmp_path: Path) -> None:
    client = TestClient(create_app(Labelling(queue(tmp_path), tmp_path / "labels.jsonl")))
    page = client.get("/").text
    fields = {k: v.replace("&#34;", '"') for k, v in form(page).items()}
    assert client.post("/answer", data=fields | {"position": "5"}).status_code == 400
    assert client.post("/answer", data=fields | {"id": "zzz", "position": "0"}).status_code == 400
    assert client.post("/answer", data=fields | {"outcome": "maybe"}).status_code == 400
    with pytest.raises(InputError, match=r"queue\.jsonl:2: id: expected a non-empty string no other line has"):
        read_queue(queue(tmp_path, [ITEMS[0], ITEMS[0]]))
    with pytest.raises(InputError, match=r"queue\.jsonl:1: responses: expected a list of ≥ 2"):
        read_queue(queue(tmp_path, [{"id": "x", "prompt": "p", "responses": ["only one"]}]))
    with pytest.raises(InputError, match=r"queue\.jsonl:1: responses: expected a list of one non-empty string"):
        read_queue(queue(tmp_path, [{"id": "x", "kind": "rating", "prompt": "p", "responses": ["a", "b"]}]))
    with pytest.raises(InputError, match=r"queue\.jsonl:1: kind: expected comparison or rating, found 'stars'"):
        read_queue(queue(tmp_path, [{"id": "x", "kind": "stars", "prompt": "p", "responses": ["a"]}]))
    (tmp_path / "people.json").write_text(json.dumps({"ann": "short"}))
    with pytest.raises(InputError, match=r"ann: expected a token of ≥ 16 characters"):
        read_annotators(tmp_path / "people.json")


def test_a_rating_item_takes_a_thumbs_up_or_down_and_labeler_file_passes_over_it(tmp_path: Path) -> None:
    items = [{"id": "r1", "kind": "rating", "prompt": "The film was", "responses": [" <b>great</b>."]},
             {"id": "r2", "kind": "rating", "prompt": "My day", "responses": [" dull."]},
             ITEMS[0]]
    labels = tmp_path / "labels.jsonl"
    client = TestClient(create_app(Labelling(queue(tmp_path, items), labels)))
    page = client.get("/").text
    assert "Is this response good?" in page and "&lt;b&gt;great&lt;/b&gt;" in page and 'id="up"' in page
    fields = {k: v.replace("&#34;", '"') for k, v in form(page).items()}
    assert client.post("/answer", data=fields | {"rating": "7"}).status_code == 400
    assert client.post("/answer", data=fields | {"outcome": "tie"}).status_code == 400  # no tie of one response
    page = answer(client, page, rating="1")
    assert "local: 1 of 3 labelled" in page and "My day" in page
    page = answer(client, page, rating="0")
    assert "Which response is better?" in page  # then the comparison
    answer(client, page, position="0")
    lines = [json.loads(line) for line in labels.read_text().splitlines()]
    assert [(x["item"], x["outcome"], x.get("rating"), x["choice"]) for x in lines] == [
        ("r1", "rating", 1, None), ("r2", "rating", 0, None), ("a", "choice", None, shown_order("local", "a", 2)[0])]
    [comparison] = read_comparisons(labels)  # the ratings are not comparisons
    assert comparison.prompt == "The film was" and len(comparison.responses) == 2

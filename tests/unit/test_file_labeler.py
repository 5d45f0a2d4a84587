"""Importing human comparisons from JSONL: round trip, one-line errors, Hydra config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from harness.errors import InputError
from harness.labelers.file import MAX_LINE_BYTES, ComparisonRecord, FileLabeler, read_comparisons
from harness.tasks.base import Example

CONF = Path(__file__).resolve().parents[2] / "harness" / "conf"
GOOD = {"prompt": "The film was", "responses": [" great.", " dull."], "choice": 0}


def line(**fields: Any) -> bytes:
    return json.dumps(GOOD | fields).encode() + b"\n"


def write(tmp_path: Path, data: bytes, name: str = "comps.jsonl") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_round_trip_pairs_with_optional_fields(tmp_path: Path) -> None:
    path = write(tmp_path, line(annotator="r7", id="pair-a") + b"\n" + line(choice=1) + b"   \n")
    records = read_comparisons(path)
    assert records == [
        ComparisonRecord("pair-a", "The film was", (" great.", " dull."), 0, "r7", source=str(path), line=1),
        ComparisonRecord("comps-3", "The film was", (" great.", " dull."), 1, None, source=str(path), line=3),
    ]


def test_round_trip_best_of_four(tmp_path: Path) -> None:
    rows = [
        {"prompt": f"p{i}", "responses": ["a", "b", "c", "d"], "choice": i % 4, "annotator": None, "extra": [1]}
        for i in range(5)
    ]
    path = write(tmp_path, b"".join(json.dumps(r).encode() + b"\n" for r in rows), "four.jsonl")
    records = read_comparisons(path)
    assert [r.id for r in records] == [f"four-{i}" for i in range(1, 6)]
    assert [r.choice for r in records] == [0, 1, 2, 3, 0]
    assert all(r.responses == ("a", "b", "c", "d") and r.annotator is None for r in records)


def test_unicode_bom_and_crlf(tmp_path: Path) -> None:
    # U+2028 is legal raw inside a JSON string and must not split the line.
    text = '\ufeff{"prompt": "é\u2028x", "responses": ["ü", "ß"], "choice": 1}\r\n'
    path = write(tmp_path, text.encode("utf-8") + line())
    records = read_comparisons(path)
    assert records[0].prompt == "é\u2028x" and records[0].responses == ("ü", "ß")
    assert [r.line for r in records] == [1, 2]


def test_labeler_gives_examples_and_provenance(tmp_path: Path) -> None:
    path = write(tmp_path, line(annotator="r1", id="x", responses=["d", "e", "f"]) + line(responses=["a", "b", "c"],
                                                                                          choice=2))
    labeler = FileLabeler(path=str(path))
    assert all(r.provenance == {"labeler": "file", "version": "1", "source": str(path)} for r in labeler.records())
    imported = labeler.as_examples()
    examples, candidates, choices, annotators = imported  # still a 4-tuple: k is a property
    assert examples[0] == Example(id="x", prompt="The film was", meta={"file": str(path), "line": 1})
    assert candidates == [["d", "e", "f"], ["a", "b", "c"]]
    assert choices == [0, 2]
    assert annotators == ["r1", None]
    assert imported.k == 3


@pytest.mark.parametrize("data,lineno,expected", [
    (line() + line() + line(responses=["a", "b", "c", "d"]), 3, "2 responses like line 1, found 4"),
    (b"\n\n" + line(responses=["a", "b", "c"]) + line(), 4, "3 responses like line 3, found 2"),
], ids=["more", "fewer after blank lines"])
def test_every_line_has_the_same_k(tmp_path: Path, data: bytes, lineno: int, expected: str) -> None:
    path = write(tmp_path, data)
    with pytest.raises(InputError) as err:
        read_comparisons(path)
    assert str(err.value) == f"{path}:{lineno}: responses: expected {expected}"


def padded(size: int, filler: bytes = b"x") -> bytes:
    """One valid comparison line of exactly `size` bytes, without its newline."""
    short = json.dumps(GOOD | {"responses": ["", " dull."]}).encode()
    cut = short.index(b'""') + 1
    return short[:cut] + filler * (size - len(short)) + short[cut:]


def test_huge_line_refused_before_decoding(tmp_path: Path) -> None:
    # 50 MB of invalid UTF-8 and JSON inside: the size is the error, so nothing was decoded.
    path = write(tmp_path, line() + line() + padded(50_000_000, b"\xff") + b"\n" + b"{oops\n")
    with pytest.raises(InputError) as err:
        read_comparisons(path)
    assert str(err.value) == f"{path}:3: line: expected at most 1 MB per comparison, found 50.0 MB"
    just_over = write(tmp_path, padded(MAX_LINE_BYTES + 1) + b"\n", "over.jsonl")
    with pytest.raises(InputError, match=r"over\.jsonl:1: line: expected at most 1 MB per comparison, found 1\.0 MB$"):
        read_comparisons(just_over)
    at_limit = write(tmp_path, line() + padded(MAX_LINE_BYTES) + b"\n", "limit.jsonl")
    assert len(read_comparisons(at_limit)[1].responses[0]) == MAX_LINE_BYTES - len(padded(0))


BAD_LINES: list[tuple[str, bytes, str]] = [
    ("invalid json", b'{"prompt": "a", "responses": \n', "json"),
    ("nan is not json", b'{"prompt": "a", "responses": ["x", "y"], "choice": NaN}\n', "json"),
    ("array, not object", b'[{"prompt": "a"}]\n', "record"),
    ("string, not object", b'"hello"\n', "record"),
    ("missing prompt", json.dumps({"responses": ["x", "y"], "choice": 0}).encode() + b"\n", "prompt"),
    ("missing responses", json.dumps({"prompt": "a", "choice": 0}).encode() + b"\n", "responses"),
    ("missing choice", json.dumps({"prompt": "a", "responses": ["x", "y"]}).encode() + b"\n", "choice"),
    ("prompt not a string", line(prompt=5), "prompt"),
    ("responses not a list", line(responses="x y"), "responses"),
    ("response not a string", line(responses=["x", 3]), "responses[1]"),
    ("choice true", line(choice=True), "choice"),
    ("choice false", line(choice=False), "choice"),
    ("choice float", line(choice=1.0), "choice"),
    ("choice string", line(choice="0"), "choice"),
    ("choice out of range", line(choice=2), "choice"),
    ("choice negative", line(choice=-1), "choice"),
    ("empty prompt", line(prompt=""), "prompt"),
    ("blank prompt", line(prompt="  \n "), "prompt"),
    ("empty response", line(responses=["", "y"]), "responses[0]"),
    ("one response", line(responses=["x"]), "responses"),
    ("no responses", line(responses=[]), "responses"),
    ("lone surrogate", b'{"prompt": "a", "responses": ["\\ud800", "y"], "choice": 0}\n', "responses[0]"),
    ("repeated key", b'{"prompt": "a", "responses": ["x", "y"], "choice": 0, "choice": 1}\n', "choice"),
    ("annotator not a string", line(annotator=7), "annotator"),
    ("id not a string", line(id=12), "id"),
    ("duplicate id", line(id="first"), "id"),
    ("default id clashes", line(id="comps-4"), "id"),
    ("not utf-8", b'{"prompt": "caf\xe9", "responses": ["x", "y"], "choice": 0}\n', "encoding"),
]


@pytest.mark.parametrize("bad,field", [(b, f) for _, b, f in BAD_LINES], ids=[c for c, _, _ in BAD_LINES])
def test_bad_line_names_file_line_and_field(tmp_path: Path, bad: bytes, field: str) -> None:
    # Line 1 valid (id "first"), line 2 blank, line 3 bad, line 4 valid without id ("comps-4").
    path = write(tmp_path, line(id="first") + b"\n" + bad + line())
    with pytest.raises(InputError) as err:
        read_comparisons(path)
    message = str(err.value)
    lineno = 4 if b"comps-4" in bad else 3  # an explicit id on line 3 clashes with line 4's default
    assert "\n" not in message
    assert message.startswith(f"{path}:{lineno}: {field}: expected "), message
    assert ", found " in message


def test_messages_say_what_was_found(tmp_path: Path) -> None:
    def message(data: bytes) -> str:
        with pytest.raises(InputError) as err:
            read_comparisons(write(tmp_path, data))
        return str(err.value)

    assert message(line(choice=True)).endswith("choice: expected an int index into responses, 0..1, found bool true")
    assert message(line(choice=2)).endswith("0..1, found int 2")
    assert "already used on line 1" in message(line(id="a") + line(id="a"))
    assert "(the default id) already used on line 1" in message(line(id="comps-2") + line())
    # byte offset counts from the start of the file: line 1 is 3 bytes + newline, then "ab" + 0xff
    assert message(b"\n\n\nab\xffc\n").endswith("found byte 0xff at byte offset 5 (column 3)")


@pytest.mark.parametrize(
    "data,found",
    [(b"", "an empty file"), (b"\n  \n\n", "only blank lines"), (None, "no such file"), (b"dir", "a directory")],
    ids=["empty", "blank lines", "missing", "directory"],
)
def test_bad_file(tmp_path: Path, data: bytes | None, found: str) -> None:
    path = tmp_path / "comps.jsonl"
    if data == b"dir":
        path.mkdir()
    elif data is not None:
        path.write_bytes(data)
    with pytest.raises(InputError) as err:
        read_comparisons(path)
    assert str(err.value).startswith(f"{path}: file: expected ")
    assert str(err.value).endswith(f"found {found}")


def test_bad_line_three_imports_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, line(id="a") + line(id="b") + line(choice=5) + line(id="d"))
    labeler = FileLabeler(path=str(path))
    for read in (labeler.records, labeler.as_examples, lambda: read_comparisons(path)):
        result = None
        with pytest.raises(InputError, match=r"comps\.jsonl:3: choice: "):
            result = read()
        assert result is None


def test_bad_last_line_still_fails(tmp_path: Path) -> None:
    # Validation covers the whole file before anything is returned, not just a prefix.
    path = write(tmp_path, line() * 50 + b"{oops\n")
    with pytest.raises(InputError, match=r":51: json: "):
        read_comparisons(path)


def test_empty_path_rejected() -> None:
    with pytest.raises(InputError, match="path: expected"):
        FileLabeler(path="")


def test_yaml_composes_and_instantiates() -> None:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["labeler=file", "labeler.path=/some/file.jsonl"])
    labeler = instantiate(cfg.labeler)
    assert isinstance(labeler, FileLabeler)
    assert (labeler.name, labeler.version, labeler.path) == ("file", "1", "/some/file.jsonl")
    # Instantiating reads nothing; reading the missing file is a clean InputError.
    with pytest.raises(InputError, match=r"^/some/file\.jsonl: file: .*found no such file$"):
        labeler.records()


def test_yaml_path_is_mandatory() -> None:
    from omegaconf.errors import MissingMandatoryValue

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["labeler=file"])
    with pytest.raises(MissingMandatoryValue):
        instantiate(cfg.labeler)

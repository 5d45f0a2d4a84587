"""Real human comparisons imported from a JSONL file (`labeler=file`).

With this labeler the comparisons come from the file instead of from samples of the initial
policy: each line holds a prompt, the k ≥ 2 responses a person compared, and the index of
the one they preferred. There is no gold (noise-free judgement) for these comparisons: the
file's choice is the only label, so gold reward, gold preference and label agreement cannot
be computed from it.

One JSON object per line; blank lines are skipped and unknown keys ignored:

    {"prompt": "The film was", "responses": [" great.", " dull."], "choice": 0,
     "annotator": "r7", "id": "pair-001"}

A line whose `outcome` is `tie`, `skip` or `rating` (the labelling page records those, with
`choice` null; a rating is a thumbs up or down on one response) names no better response and is
passed over. `annotator` and `id` are optional (null
counts as absent); `id` defaults to
"<file stem>-<line number>". Every line compares the same number k of responses (the
pipeline's labels.k), and a line holds at most MAX_LINE_BYTES. The whole file is validated
before anything is returned, so a file with one bad line imports nothing; the error names the
file, line and field. The file is parsed as plain JSON only: nothing in it is evaluated or
instantiated.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple, NoReturn

from harness.errors import InputError
from harness.labelers.base import Labeler
from harness.tasks.base import Example

# A comparison longer than 1 MB of text (hundreds of thousands of tokens) cannot fit the
# context of any model the harness trains. Such a line is refused before it is decoded, so a
# stray multi-megabyte line fails at once, not after being parsed and then tokenized whole
# (pipeline.check_imported) only to be found too long for the context.
MAX_LINE_BYTES = 1_000_000

REQUIRED = {
    "prompt": "a non-empty string",
    "responses": "a list of ≥ 2 non-empty strings",
    "choice": "an int index into responses",
}


@dataclass(frozen=True)
class ComparisonRecord:
    """One human comparison: `responses[choice]` was preferred among the k responses.

    `source` and `line` say where it was read; `provenance` is for the caller (e.g. labeler
    name and version), in the shape the pipeline stores with every label.
    """

    id: str
    prompt: str
    responses: tuple[str, ...]
    choice: int
    annotator: str | None = None
    source: str | None = None
    line: int | None = None
    provenance: Mapping[str, Any] = field(default_factory=dict, hash=False)


class FileExamples(NamedTuple):
    """A file's comparisons in the pipeline's shapes: candidates[i] are the responses to examples[i]."""

    examples: list[Example]
    candidates: list[list[str]]
    choices: list[int]
    annotators: list[str | None]

    @property
    def k(self) -> int:
        """The number of responses per comparison, the same on every line of the file."""
        return len(self.candidates[0])


class _LineError(Exception):
    """A bad value on the current line; read_comparisons adds the file and line number."""

    def __init__(self, field_name: str, expected: str, found: str) -> None:
        super().__init__(f"{field_name}: expected {expected}, found {found}")


def _show(value: Any, limit: int = 40) -> str:
    """JSON type and a short rendering of a value, always on one line."""
    kinds = {bool: "bool", int: "int", float: "float", str: "string", list: "list", dict: "object"}
    if value is None:
        return "null"
    text = repr(value) if isinstance(value, str) else json.dumps(value)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"{kinds.get(type(value), type(value).__name__)} {text}"


def _text(value: Any, name: str, expected: str) -> str:
    """A non-blank string that is valid Unicode (JSON escapes can smuggle in lone surrogates)."""
    if not isinstance(value, str):
        raise _LineError(name, expected, _show(value))
    if not value.strip():
        raise _LineError(name, expected, f"a blank string {value!r}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise _LineError(name, expected, f"an invalid character {value[err.start]!r} at index {err.start}") from None
    return value


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json keeps the last of repeated keys silently; a repeated "choice" is ambiguous.
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _LineError(key, "each key once per object", "it repeated")
        out[key] = value
    return out


def _reject_constant(name: str) -> NoReturn:
    # NaN and Infinity are Python extensions, not JSON.
    raise ValueError(f"{name} is not valid JSON")


PASSED_OVER = ("tie", "skip", "rating")  # `outcome`s of the labelling page that name no better response


def _parse_line(text: str, path: Path, lineno: int) -> tuple[ComparisonRecord | None, bool]:
    """Validate one non-blank line: the record (None for a tie or a skip) and whether its id is
    the default; raises _LineError."""
    try:
        obj = json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_reject_constant)
    except json.JSONDecodeError as err:
        raise _LineError("json", "one JSON object per line", f"invalid JSON ({err.msg} at column {err.colno})") from None
    except ValueError as err:
        raise _LineError("json", "one JSON object per line", f"invalid JSON ({err})") from None
    except RecursionError:
        raise _LineError("json", "one JSON object per line", "JSON nested too deeply to parse") from None
    if not isinstance(obj, dict):
        hint = " (a JSON array file? expected one object per line)" if isinstance(obj, list) else ""
        raise _LineError("record", "a JSON object", _show(obj) + hint)
    if obj.get("outcome") in PASSED_OVER and obj.get("choice") is None:
        return None, False
    for key, expected in REQUIRED.items():
        if key not in obj:
            keys = ", ".join(sorted(obj)[:8]) + (", …" if len(obj) > 8 else "")
            raise _LineError(key, expected, f"no such key (keys: {keys or 'none'})")

    prompt = _text(obj["prompt"], "prompt", "a non-empty string")
    responses = obj["responses"]
    expected = REQUIRED["responses"]
    if not isinstance(responses, list):
        raise _LineError("responses", expected, _show(responses))
    if len(responses) < 2:
        raise _LineError("responses", expected, f"a list of {len(responses)}")
    responses = tuple(_text(r, f"responses[{i}]", "a non-empty string") for i, r in enumerate(responses))
    choice = obj["choice"]
    k = len(responses)
    if not isinstance(choice, int) or isinstance(choice, bool):  # True would pass as 1
        raise _LineError("choice", f"an int index into responses, 0..{k - 1}", _show(choice))
    if not 0 <= choice < k:
        raise _LineError("choice", f"an int index into responses, 0..{k - 1}", _show(choice))
    annotator = obj.get("annotator")
    if annotator is not None:
        annotator = _text(annotator, "annotator", "a non-empty string or null")
    record_id = obj.get("id")
    default_id = record_id is None
    record_id = f"{path.stem}-{lineno}" if default_id else _text(record_id, "id", "a non-empty string or null")
    record = ComparisonRecord(record_id, prompt, responses, choice, annotator, source=str(path), line=lineno)
    return record, default_id


def read_comparisons(path: Path) -> list[ComparisonRecord]:
    """Every comparison in a JSONL file, or InputError naming the first bad line and field.

    Nothing is returned unless the whole file is valid.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: file: expected a JSONL file of comparisons, found no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: file: expected a JSONL file of comparisons, found a directory") from None
    except OSError as err:
        raise InputError(f"{path}: file: expected a readable JSONL file, found {err.strerror or err}") from None

    records: list[ComparisonRecord] = []
    passed_over = 0
    first_line: dict[str, int] = {}
    offset = 0
    # Split on b"\n" only: str.splitlines would also split at U+2028 etc., which JSON
    # allows unescaped inside strings, and would shift the line numbers.
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        line_start, offset = offset, offset + len(raw) + 1
        if len(raw) > MAX_LINE_BYTES:
            raise InputError(f"{path}:{lineno}: line: expected at most {MAX_LINE_BYTES / 1e6:g} MB per comparison, "
                             f"found {len(raw) / 1e6:.1f} MB")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise InputError(
                f"{path}:{lineno}: encoding: expected UTF-8 text, found byte 0x{raw[err.start]:02x} "
                f"at byte offset {line_start + err.start} (column {err.start + 1})"
            ) from None
        if lineno == 1:
            text = text.removeprefix("\ufeff")  # editors on Windows write a BOM
        if not text.strip():
            continue
        try:
            record, default_id = _parse_line(text, path, lineno)
            if record is None:
                passed_over += 1
                continue
            if records and len(record.responses) != len(records[0].responses):  # one k per file
                expected = f"{len(records[0].responses)} responses like line {records[0].line}"
                raise _LineError("responses", expected, str(len(record.responses)))
            if record.id in first_line:
                how = " (the default id)" if default_id else ""
                raise _LineError("id", "a unique id", f"{record.id!r}{how} already used on line {first_line[record.id]}")
        except _LineError as err:
            raise InputError(f"{path}:{lineno}: {err}") from None
        first_line[record.id] = lineno
        records.append(record)
    if not records:
        found = ("an empty file" if not data else f"only ties, skips and ratings ({passed_over})" if passed_over
                 else "only blank lines")
        raise InputError(f"{path}: file: expected at least one comparison (one JSON object per line), found {found}")
    return records


@dataclass
class FileLabeler(Labeler):
    """Human comparisons from the JSONL file at `path` (see the module docstring for the format)."""

    path: str
    name: str = "file"
    version: str = "1"

    def __post_init__(self) -> None:
        if not str(self.path).strip():
            raise InputError(f"labeler {self.name}: path: expected a JSONL file of comparisons, found an empty string")

    def inputs(self) -> dict[str, Path]:
        return {"path": Path(self.path).expanduser()}

    def records(self) -> list[ComparisonRecord]:
        """The file's comparisons, validated, each carrying this labeler's provenance."""
        return [
            replace(r, provenance={"labeler": self.name, "version": self.version, "source": r.source})
            for r in read_comparisons(Path(self.path).expanduser())
        ]

    def as_examples(self) -> FileExamples:
        """The comparisons as Examples plus their responses, choices and annotators."""
        records = self.records()
        return FileExamples(
            examples=[Example(id=r.id, prompt=r.prompt, meta={"file": r.source, "line": r.line}) for r in records],
            candidates=[list(r.responses) for r in records],
            choices=[r.choice for r in records],
            annotators=[r.annotator for r in records],
        )

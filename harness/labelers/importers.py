"""Comparisons exported by other tools, turned into the JSONL that `labeler=file` reads.

Three formats people already export:

- `label-studio`: a Label Studio export (JSON: a list of tasks) of the pairwise template
  (`<Pairwise name=… toName="text1,text2"/>`): each task's `data` holds the two texts (keys
  `--left` and `--right`, default `text1` and `text2`) and the prompt (`--prompt`, default
  `prompt`); each annotation's pairwise result (`"value": {"selected": "left" | "right"}`) is
  one comparison, its annotator `completed_by`. Cancelled annotations are skipped.
- `arena`: Chatbot-Arena-style battles (JSON list or JSONL): `conversation_a` and
  `conversation_b` (lists of `{"role", "content"}`: one user turn, one assistant turn),
  `winner` one of `model_a`, `model_b`, `tie`, `tie (bothbad)`; `judge` is the annotator,
  `question_id` the id. A tie names no better response: it is skipped and counted.
- `trl`: TRL's preference rows (JSON list or JSONL): `prompt`, `chosen`, `rejected`, each a
  string or, in TRL's conversational form, a list of `{"role", "content"}` messages (the
  prompt's last user message, the responses' assistant message).

Every record is validated; the first bad one stops the import with its file, line (or list
index) and field, and nothing is written. The chosen response's position alternates with a hash
of the record's id, so no format's convention (TRL's chosen-first) becomes a position bias.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import InputError

FORMATS = ("label-studio", "arena", "trl")
ARENA_WINNERS = {"model_a": 0, "model_b": 1}
ARENA_TIES = ("tie", "tie (bothbad)")


@dataclass(frozen=True)
class Imported:
    """The comparisons (as `labeler=file` lines) and what was skipped, with why."""

    lines: list[dict[str, Any]]
    skipped: dict[str, int]


class _Bad(Exception):
    def __init__(self, where: str, field: str, expected: str, found: Any) -> None:
        shown = json.dumps(found, ensure_ascii=False)
        shown = shown if len(shown) <= 60 else shown[:59] + "…"
        super().__init__(f"{where}: {field}: expected {expected}, found {shown}")


def _records(path: Path) -> Iterator[tuple[str, Any]]:
    """(where, record) for a JSON list file or a JSONL file; `where` is `path:line` or `path[index]`."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not a readable UTF-8 text file ({err})") from None
    text = text.removeprefix("\ufeff")
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as err:
            raise InputError(f"{path}:{err.lineno}: json: expected a JSON list, found invalid JSON ({err.msg})") from None
        if not isinstance(items, list):
            raise InputError(f"{path}: json: expected a JSON list of records, found a {type(items).__name__}")
        for index, item in enumerate(items):
            yield f"{path}[{index}]", item
        return
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            yield f"{path}:{lineno}", json.loads(line)
        except json.JSONDecodeError as err:
            raise InputError(f"{path}:{lineno}: json: expected one JSON object per line, found invalid JSON "
                             f"({err.msg} at column {err.colno})") from None


def _text(where: str, field: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Bad(where, field, "a non-empty string", value)
    return value


def _message(where: str, field: str, value: Any, role: str) -> str:
    """A string, or the content of the last `role` message of a list of chat messages."""
    if isinstance(value, str):
        return _text(where, field, value)
    if isinstance(value, list) and value and all(isinstance(m, Mapping) for m in value):
        contents = [m.get("content") for m in value if m.get("role") == role]
        if contents:
            return _text(where, f"{field} ({role} message)", contents[-1])
    raise _Bad(where, field, f"a string or a list of messages with a {role!r} one", value)


def _line(record_id: str, prompt: str, chosen: str, other: str, annotator: Any) -> dict[str, Any]:
    """One `labeler=file` line; the chosen response first or second by a hash of the id."""
    first = hashlib.sha256(record_id.encode()).digest()[0] % 2 == 0
    responses = [chosen, other] if first else [other, chosen]
    line = {"id": record_id, "prompt": prompt, "responses": responses, "choice": 0 if first else 1}
    if annotator is not None and str(annotator).strip():
        line["annotator"] = str(annotator)
    return line


def _object(where: str, item: Any) -> Mapping[str, Any]:
    if not isinstance(item, Mapping):
        raise _Bad(where, "record", "a JSON object", item)
    return item


def _label_studio(path: Path, prompt_key: str = "prompt", left: str = "text1",
                  right: str = "text2") -> Imported:
    lines, skipped = [], {"cancelled annotation": 0, "no pairwise result": 0}
    for where, item in _records(path):
        task = _object(where, item)
        data = task.get("data")
        if not isinstance(data, Mapping):
            raise _Bad(where, "data", "an object with the task's texts", data)
        prompt = _text(where, f"data.{prompt_key}", data.get(prompt_key))
        texts = {"left": _text(where, f"data.{left}", data.get(left)),
                 "right": _text(where, f"data.{right}", data.get(right))}
        annotations = task.get("annotations", [])
        if not isinstance(annotations, list):
            raise _Bad(where, "annotations", "a list", annotations)
        for a, annotation in enumerate(annotations):
            at = f"{where}.annotations[{a}]"
            annotation = _object(at, annotation)
            if annotation.get("was_cancelled"):
                skipped["cancelled annotation"] += 1
                continue
            results = [r for r in annotation.get("result", []) if isinstance(r, Mapping) and r.get("type") == "pairwise"]
            if not results:
                skipped["no pairwise result"] += 1
                continue
            selected = (results[0].get("value") or {}).get("selected")
            if selected not in texts:
                raise _Bad(at, "result[].value.selected", "'left' or 'right'", selected)
            other = "right" if selected == "left" else "left"
            record_id = f"ls-{task.get('id', where)}-{annotation.get('id', a)}"
            lines.append(_line(record_id, prompt, texts[selected], texts[other], annotation.get("completed_by")))
    return Imported(lines, {k: v for k, v in skipped.items() if v})


def _turn(where: str, field: str, conversation: Any) -> tuple[str, str]:
    if not isinstance(conversation, list) or len(conversation) != 2 or not all(isinstance(m, Mapping) for m in conversation):
        raise _Bad(where, field, "one user message then one assistant message (a single turn)", conversation)
    user, assistant = conversation
    if user.get("role") != "user" or assistant.get("role") != "assistant":
        raise _Bad(where, f"{field}[].role", "'user' then 'assistant'", [user.get("role"), assistant.get("role")])
    return _text(where, f"{field}[0].content", user.get("content")), _text(where, f"{field}[1].content",
                                                                            assistant.get("content"))


def _arena(path: Path) -> Imported:
    lines, skipped = [], {"tie": 0}
    for where, item in _records(path):
        battle = _object(where, item)
        winner = battle.get("winner")
        if winner in ARENA_TIES:
            skipped["tie"] += 1
            continue
        if winner not in ARENA_WINNERS:
            raise _Bad(where, "winner", f"one of {', '.join([*ARENA_WINNERS, *ARENA_TIES])}", winner)
        prompt_a, a = _turn(where, "conversation_a", battle.get("conversation_a"))
        prompt_b, b = _turn(where, "conversation_b", battle.get("conversation_b"))
        if prompt_a != prompt_b:
            raise _Bad(where, "conversation_b[0].content", "the same prompt as conversation_a", prompt_b)
        chosen, other = (a, b) if ARENA_WINNERS[winner] == 0 else (b, a)
        record_id = str(battle.get("question_id") or where)
        lines.append(_line(f"arena-{record_id}", prompt_a, chosen, other, battle.get("judge")))
    return Imported(lines, {k: v for k, v in skipped.items() if v})


def _trl(path: Path) -> Imported:
    lines = []
    for where, item in _records(path):
        row = _object(where, item)
        prompt = _message(where, "prompt", row.get("prompt"), "user")
        chosen = _message(where, "chosen", row.get("chosen"), "assistant")
        rejected = _message(where, "rejected", row.get("rejected"), "assistant")
        lines.append(_line(f"trl-{where.rsplit('/', 1)[-1]}", prompt, chosen, rejected, None))
    return Imported(lines, {})


READERS: dict[str, Callable[..., Imported]] = {"label-studio": _label_studio, "arena": _arena, "trl": _trl}


def import_comparisons(kind: str, path: Path, **options: str) -> Imported:
    """Every comparison of an export of `kind` (FORMATS), or InputError naming the first bad
    record and field."""
    if kind not in READERS:
        raise InputError(f"format {kind!r}: expected one of {', '.join(FORMATS)}")
    try:
        imported = READERS[kind](Path(path), **options)
    except _Bad as bad:
        raise InputError(str(bad)) from None
    if not imported.lines:
        skipped = ", ".join(f"{n} {why}" for why, n in imported.skipped.items()) or "no records"
        raise InputError(f"{path}: no comparison to import ({skipped})")
    return imported


def write_jsonl(lines: list[dict[str, Any]], out: Path, check: Callable[[Path], object] | None = None) -> None:
    """The lines written whole or not at all: to a temporary file, `check`ed there (it raises on a
    bad file), then renamed into place."""
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    try:
        if check is not None:
            check(tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(out)

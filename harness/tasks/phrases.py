"""The phrase tables of the embedded corpus generators, kept as data in harness/tasks/data.

Each generating task module reads `<task>.json` (words, names, templates and sentences its
seeded grammar draws from). The generated corpora depend on the exact order of every list,
so the files are edited like code: reordering a list changes every corpus built from it
(tests/unit/test_corpora_pinned.py pins them).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any, NamedTuple


class FactPhrasings(NamedTuple):
    """The ways to word one key fact: in the source text (`src`) and in its reference
    summary (`ref`); a generator picks one of each."""

    src: tuple[str, ...]
    ref: tuple[str, ...]


@functools.cache
def phrase_tables(task: str) -> dict[str, Any]:
    """The tables of `harness/tasks/data/<task>.json`, read once per process.

    The result is shared by every caller, so callers must not modify it.
    """
    # importlib.resources rather than a path from __file__: installed package data need not
    # be a plain file (e.g. a zipped install).
    text = (resources.files("harness.tasks") / "data" / f"{task}.json").read_text(encoding="utf-8")
    tables: dict[str, Any] = json.loads(text)
    return tables


def phrasings(entry: Mapping[str, Sequence[str]]) -> FactPhrasings:
    """A `{"src": [...], "ref": [...]}` table entry."""
    return FactPhrasings(tuple(entry["src"]), tuple(entry["ref"]))

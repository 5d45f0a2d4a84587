"""What every task provides, and the shared loader for real datasets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import InputError

SPLITS = ("train", "eval")
LOCAL_FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


@dataclass(frozen=True)
class Example:
    """One prompt; `reference` is a human-written output where the task has one.

    `prompt` is the exact text the policy continues. `meta` carries what the task knows
    about the example beyond the prompt, for the labelers (e.g. a summarisation task's
    `source` text, its key `facts`, its `preamble`); tasks document their keys.
    """

    id: str
    prompt: str
    reference: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)


class Task:
    """A task gives prompts (and references where it has them) and, optionally, baseline
    outputs that evaluation scores like a policy's (`baselines`).

    A response ends at EOS or, with `stop` set, at the first token ending in the `stop` text
    at response position ≥ `stop_after` (Ziegler et al.'s truncate_token and truncate_after:
    '.' after 16 tokens for their continuation tasks, a newline after 55 for summaries);
    sampling cuts it there (models/sampling.py, `Stop`). None: EOS only, free length.
    """

    name: str
    max_new_tokens: int
    stop: str | None = None
    stop_after: int = 0

    def baselines(self, examples: Sequence[Example]) -> dict[str, list[str]]:
        """Named baseline outputs for `examples` (e.g. lead-3, the reference); none by default."""
        return {}

    def examples(self, split: str) -> list[Example]:
        """The prompts of `split` ('train' or 'eval'), in a fixed order."""
        ...

    def inputs(self) -> dict[str, Path]:
        """Local files the task reads, by the setting (under `task.`) that names them: their
        content is part of a job's identity, so an edited dataset is a new job. A `source` that
        is a local file or directory; none for embedded or hub data."""
        source = getattr(self, "source", None)
        path = Path(source).expanduser() if source and source != "embedded" else None
        return {"source": path} if path is not None and path.exists() else {}


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}: expected one of {SPLITS}")


def load_records(
    source: str, split: str, columns: Mapping[str, str], limit: int | None = None
) -> list[dict[str, str]]:
    """Rows of a real dataset, with columns renamed from the dataset's names to the task's.

    `source` is a local JSONL/CSV/Parquet file, a directory holding `<split>.<ext>`, or a
    Hugging Face dataset name (`name` or `name:config`). `columns` maps the task's field
    (e.g. 'prompt') to the dataset's column (e.g. 'text'); `split` maps through `splits`.
    """
    import datasets  # heavy; only needed for real data

    path = Path(source)
    if path.is_dir():
        candidates = [p for p in sorted(path.iterdir()) if p.stem == split and p.suffix in LOCAL_FORMATS]
        if not candidates:
            raise InputError(
                f"{path}: no file for split {split!r}; expected {split}.jsonl, .csv or .parquet"
            )
        path = candidates[0]
    if path.suffix in LOCAL_FORMATS and path.exists():
        ds = datasets.load_dataset(LOCAL_FORMATS[path.suffix], data_files=str(path), split="train")
        where = str(path)
    elif path.suffix in LOCAL_FORMATS:
        raise InputError(f"dataset file {path} does not exist")
    else:
        name, _, config = source.partition(":")
        ds = datasets.load_dataset(name, config or None, split=split)
        where = f"dataset {source!r} split {split!r}"
    missing = [col for col in columns.values() if col not in ds.column_names]
    if missing:
        raise InputError(
            f"{where}: column(s) {missing} named in the task's `columns` mapping are missing; "
            f"the dataset has {ds.column_names}"
        )
    if limit is not None:
        ds = ds.select(range(min(limit, len(ds))))
    return [{field: str(row[col]) for field, col in columns.items()} for row in ds]

"""Continuation tasks: the policy continues a prompt; no references."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.errors import InputError
from harness.tasks.base import Example, Task, check_split, load_records


@dataclass
class ContinuationTask(Task):
    """Prompts to continue, from an embedded generator or a real dataset.

    `source='embedded'` uses `generate(n, seed)` (subclasses define it; it returns prompts or
    (prompt, meta) pairs); anything else is read by `load_records` (a Hugging Face name, or a
    local file), taking the first `prompt_words` words of the `prompt` column as the prompt.
    """

    name: str = "continuation"
    max_new_tokens: int = 24
    stop: str | None = None  # see Task
    stop_after: int = 0
    source: str = "embedded"
    n_train: int = 1000
    n_eval: int = 200
    seed: int = 0
    prompt_words: int = 24
    columns: Mapping[str, str] = field(default_factory=lambda: {"prompt": "text"})
    splits: Mapping[str, str] = field(default_factory=lambda: {"train": "train", "eval": "test"})

    def generate(self, n: int, seed: int) -> list[tuple[str, Mapping[str, Any]]]:
        raise InputError(f"task {self.name} has no embedded default; set task.source to a dataset")

    def examples(self, split: str) -> list[Example]:
        check_split(split)
        n = self.n_train if split == "train" else self.n_eval
        if self.source == "embedded":
            # One draw for both splits keeps train and eval prompts disjoint.
            drawn = self.generate(self.n_train + self.n_eval, self.seed)
            found = drawn[: self.n_train] if split == "train" else drawn[self.n_train :]
        else:
            rows = load_records(self.source, self.splits[split], self.columns, limit=n)
            found = [(" ".join(r["prompt"].split()[: self.prompt_words]), {}) for r in rows]
        if len(found) < n:
            raise InputError(
                f"task {self.name}: {self.source} has {len(found)} {split} prompts, n_{split} asks for {n}"
            )
        return [Example(id=f"{self.name}-{split}-{i}", prompt=p, meta=m) for i, (p, m) in enumerate(found)]

"""What a labeler is: who compares responses, and whether a noise-free judgement exists."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.tasks.base import Example


class Labeler:
    """A source of labels (`labeler=…`), and, when it can, of the gold that evaluation reports.

    - `label(examples, candidates, rng)` chooses the best of each prompt's k candidates
      (a simulated panel); a labeler whose labels come with their responses (a file of human
      comparisons) instead returns them from `as_examples`.
    - `gold(examples, responses)` is the noise-free reward of each response, or None where no
      such judgement exists (human labels): a judge panel then evaluates.
    """

    name: str
    version: str

    def label(self, examples: Sequence[Example], candidates: Sequence[Sequence[str]], rng: np.random.Generator) -> Any:
        raise NotImplementedError(f"labeler {self.name} does not label samples")

    def gold(self, examples: Sequence[Example], responses: Sequence[str]) -> np.ndarray | None:
        return None

    def usage(self) -> dict[str, float]:
        """What judging cost so far, as metrics (an LLM judge: judge/requests, judge/*_tokens, …);
        logged at the end of a run. None for labelers that cost nothing to ask."""
        return {}

    def as_examples(self) -> Any:
        """Comparisons that come with their prompts and responses (labelers.file.FileExamples);
        None for labelers that label the policy's samples."""
        return None

    def inputs(self) -> dict[str, Path]:
        """Local files the labeler reads, by the setting (under `labeler.`) that names them:
        their content is part of a job's identity. None by default."""
        return {}


def part_inputs(prefix: str, part: object) -> dict[str, Path]:
    """The local files a part reads (its `inputs()`, if it has one), under `prefix.`: a panel's
    scorers name theirs, e.g. annotators.0.scorer.path for a norms table."""
    inputs = getattr(part, "inputs", None)
    return {f"{prefix}.{key}": path for key, path in inputs().items()} if callable(inputs) else {}

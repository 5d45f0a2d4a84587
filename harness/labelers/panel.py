"""Simulated annotators and a panel that votes: the human-eval proxy.

An annotator scores each response with its scorer, divides by `scale` so that annotators
speak in comparable units u, and picks among k responses with the Bradley–Terry / Luce choice
rule P(i) = exp(u_i/T) / Σ_j exp(u_j/T) (T = `temperature`; T = 0 picks the best), then with
probability `flip_rate` replaces its choice by a uniformly drawn other response. The panel's
label is the plurality of its annotators' choices (ties broken at random).

Asked for binary labels (labels.kind=binary), an annotator rates each response alone with the
same rule against a reference point: the median utility of the responses it rates together.

The noise-free judgement is the "gold" that training never sees directly: the gold reward of
a response is the mean of the annotators' u, and the gold preference between two responses
is the majority of the annotators' noise-free preferences.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.errors import InputError
from harness.labelers.base import Labeler, part_inputs
from harness.tasks.base import Example

Scorer = Callable[[Sequence[Example], Sequence[str]], np.ndarray]


@dataclass
class Annotator:
    name: str
    scorer: Scorer
    scale: float = 1.0
    temperature: float = 0.1
    flip_rate: float = 0.0

    def __post_init__(self) -> None:
        if self.scale <= 0:
            raise InputError(f"annotator {self.name}: scale must be > 0, got {self.scale}")
        if self.temperature < 0:
            raise InputError(f"annotator {self.name}: temperature must be ≥ 0, got {self.temperature}")
        if not 0.0 <= self.flip_rate < 1.0:
            raise InputError(f"annotator {self.name}: flip_rate must be in [0, 1), got {self.flip_rate}")

    def utilities(self, examples: Sequence[Example], responses: Sequence[str]) -> np.ndarray:
        return np.asarray(self.scorer(examples, responses), dtype=np.float64) / self.scale

    def choose(self, utilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Noisy choice among k responses for each of N prompts; utilities (N, k) → (N,)."""
        n, k = utilities.shape
        if self.temperature == 0:
            # Random jitter below any real difference breaks exact ties uniformly.
            choice = np.argmax(utilities + 1e-9 * rng.random((n, k)), axis=1)
        else:
            # Gumbel-max draws exactly from softmax(u / T).
            choice = np.argmax(utilities / self.temperature + rng.gumbel(size=(n, k)), axis=1)
        flip = rng.random(n) < self.flip_rate
        other = (choice + rng.integers(1, k, size=n)) % k  # uniform over the k−1 others
        return np.where(flip, other, choice)

    def rate(self, utilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A noisy thumbs up (1) or down (0) on each response alone; utilities (M,) → (M,).

        The same choice rule between the response and a reference point θ, the median of the
        utilities rated in this call: up with probability σ((u − θ)/T) (T = 0: up when u > θ,
        exact ties at random), then flipped with probability `flip_rate`."""
        theta = float(np.median(utilities))
        if self.temperature == 0:
            up = utilities + 1e-9 * (rng.random(utilities.shape) - 0.5) > theta
        else:
            up = rng.random(utilities.shape) < 1.0 / (1.0 + np.exp(-(utilities - theta) / self.temperature))
        flip = rng.random(utilities.shape) < self.flip_rate
        return np.where(flip, ~up, up).astype(np.int64)


@dataclass
class PanelLabels:
    choice: np.ndarray  # (N,) index of the best response per prompt; binary labels: (N, k) of 0/1
    votes: np.ndarray  # (A, N) each annotator's choice (people: per prompt, the list of their choices)
    agreement: float | None  # mean pairwise agreement between annotators; None: not measured (one judge)
    # Each prompt's agreement, where the votes do not line up by annotator (people's ratings:
    # not everyone rated every response); None: stages.row_agreement of the row's votes.
    row_agreement: list[float] | None = None


@dataclass
class Panel(Labeler):
    name: str
    version: str
    annotators: Sequence[Annotator]

    def __post_init__(self) -> None:
        if not self.annotators:
            raise InputError(f"labeler {self.name}: a panel needs at least one annotator")

    def inputs(self) -> dict[str, Path]:
        """The local files its annotators' scorers read (a norms table, an encoder directory)."""
        return {key: path for i, a in enumerate(self.annotators)
                for key, path in part_inputs(f"annotators.{i}.scorer", a.scorer).items()}

    def utilities(self, examples: Sequence[Example], responses: Sequence[str]) -> np.ndarray:
        """Each annotator's noise-free utility of each response: (A, N)."""
        return np.stack([a.utilities(examples, responses) for a in self.annotators])

    def gold(self, examples: Sequence[Example], responses: Sequence[str]) -> np.ndarray:
        """The panel's noise-free reward of each response: (N,)."""
        return self.utilities(examples, responses).mean(0)

    def label(
        self, examples: Sequence[Example], candidates: Sequence[Sequence[str]], rng: np.random.Generator
    ) -> PanelLabels:
        """Best-of-k labels: candidates[i] holds the k responses to examples[i]."""
        k = len(candidates[0])
        if k < 2 or any(len(c) != k for c in candidates):
            raise InputError(f"labeler {self.name}: every prompt needs the same k ≥ 2 responses")
        flat_examples = [e for e in examples for _ in range(k)]
        flat = [r for group in candidates for r in group]
        util = self.utilities(flat_examples, flat).reshape(len(self.annotators), len(examples), k)
        votes = np.stack([a.choose(u, rng) for a, u in zip(self.annotators, util)])  # (A, N)
        counts = np.stack([(votes == j).sum(0) for j in range(k)], axis=1)  # (N, k)
        top = counts == counts.max(1, keepdims=True)
        choice = np.argmax(top + rng.random(top.shape) * 0.5, axis=1)  # random among the tied
        return PanelLabels(choice=choice, votes=votes, agreement=pairwise_agreement(votes))

    def rate(self, examples: Sequence[Example], candidates: Sequence[Sequence[str]],
             rng: np.random.Generator) -> PanelLabels:
        """Binary labels (labels.kind=binary): each of the k responses to examples[i] rated alone by
        every annotator (Annotator.rate); the panel's rating is the majority (ties at random).
        `choice` is (N, k) of 0/1, `votes` (A, N·k)."""
        k = len(candidates[0])
        if any(len(c) != k for c in candidates):
            raise InputError(f"labeler {self.name}: every prompt needs the same k responses")
        flat_examples = [e for e in examples for _ in range(k)]
        flat = [r for group in candidates for r in group]
        util = self.utilities(flat_examples, flat)  # (A, N·k)
        votes = np.stack([a.rate(u, rng) for a, u in zip(self.annotators, util)])
        ups, a = votes.sum(0), len(self.annotators)
        rating = np.where(2 * ups == a, rng.integers(0, 2, ups.shape), (2 * ups > a).astype(np.int64))
        return PanelLabels(choice=rating.reshape(len(examples), k), votes=votes, agreement=pairwise_agreement(votes))

    def compare(self, examples: Sequence[Example], a: Sequence[str], b: Sequence[str]) -> np.ndarray:
        """Noise-free panel preference of a over b per example: 1, 0.5 (tie) or 0."""
        ua, ub = self.utilities(examples, a), self.utilities(examples, b)  # (A, N)
        net = np.sign(ua - ub).sum(0)
        return np.where(net > 0, 1.0, np.where(net < 0, 0.0, 0.5))


def pairwise_agreement(votes: np.ndarray) -> float:
    """Fraction of annotator pairs that made the same choice, averaged over prompts."""
    a = votes.shape[0]
    if a < 2:
        return 1.0
    same = [(votes[i] == votes[j]).mean() for i in range(a) for j in range(i + 1, a)]
    return float(np.mean(same))

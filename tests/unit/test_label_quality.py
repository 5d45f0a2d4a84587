"""How often labels pick the gold-best response (stages.gold_agreement), and the budget split of
online rounds (LabelSettings.round_bounds), against values worked out by hand."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from harness.errors import InputError
from harness.experiment import LabelSettings
from harness.stages import gold_agreement


class Judge:
    def __init__(self, gold: dict[str, float] | None) -> None:
        self.values = gold

    def gold(self, examples, texts):  # noqa: ANN001, ANN201
        return None if self.values is None else np.array([self.values[t] for t in texts])


class Tokenizer:
    def decode(self, ids, skip_special_tokens=True):  # noqa: ANN001, ANN201, ARG002
        return "".join(chr(i) for i in ids)


def _exp(judge: Judge | None, labeler: object = "people") -> SimpleNamespace:
    return SimpleNamespace(judge=judge, labeler=labeler)


def test_gold_agreement_counts_choices_of_the_gold_best_response() -> None:
    judge = Judge({"a": 1.0, "b": 0.0, "c": 0.5, "d": 0.5, "e": -1.0, "f": 2.0})
    groups = [[[ord("a")], [ord("b")]], [[ord("c")], [ord("d")]], [[ord("e")], [ord("f")]]]
    # chose a (best), d (tied best: counts), e (worse): 2 of 3.
    assert gold_agreement(_exp(judge), [None] * 3, groups, [0, 1, 0], Tokenizer()) == pytest.approx(2 / 3)
    assert gold_agreement(_exp(judge), [None] * 3, groups, [0, 0, 1], Tokenizer()) == 1.0


def test_gold_agreement_needs_a_judge_other_than_the_labeler_with_gold() -> None:
    groups, tok = [[[ord("a")], [ord("b")]]], Tokenizer()
    assert gold_agreement(_exp(None), [None], groups, [0], tok) is None
    panel = Judge({"a": 1.0, "b": 0.0})
    assert gold_agreement(_exp(panel, labeler=panel), [None], groups, [0], tok) is None
    assert gold_agreement(_exp(Judge(None)), [None], groups, [0], tok) is None


@pytest.mark.parametrize(("n", "rounds", "bounds"), [
    (400, 4, [(0, 100), (100, 200), (200, 300), (300, 400)]),
    (10, 3, [(0, 4), (4, 7), (7, 10)]),  # the first rounds take the remainder
    (5, 1, [(0, 5)]),
])
def test_the_budget_splits_across_rounds(n: int, rounds: int, bounds: list[tuple[int, int]]) -> None:
    assert LabelSettings(n=n, k=2, desirable_fraction=1.0, rounds=rounds).round_bounds() == bounds


def test_more_rounds_than_labels_is_refused() -> None:
    with pytest.raises(InputError, match=r"labels\.rounds: expected an integer in 1\.\.labels\.n \(3\), got 4"):
        LabelSettings(n=3, k=2, desirable_fraction=1.0, rounds=4)

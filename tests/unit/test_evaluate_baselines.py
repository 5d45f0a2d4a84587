"""The evaluate stage's comparisons with the reference summary: the trained policy, the initial
policy and every other baseline each against the reference, by the same panel."""

from __future__ import annotations

import numpy as np
import pytest

from harness.eval.evaluate import evaluate_policy
from harness.tasks.base import Example


class Tokens:
    """A tokenizer stand-in: token ids are the characters' code points."""

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return "".join(chr(i) for i in ids)


class LongerWins:
    """A panel stand-in: the longer text wins, ties count half."""

    def gold(self, examples: list[Example], texts: list[str]) -> np.ndarray:
        return np.array([float(len(t)) for t in texts])

    def compare(self, examples: list[Example], a: list[str], b: list[str]) -> np.ndarray:
        return np.array([1.0 if len(x) > len(y) else 0.5 if len(x) == len(y) else 0.0 for x, y in zip(a, b)])


def ids(text: str) -> list[int]:
    return [ord(c) for c in text]


def test_initial_policy_and_lead3_are_each_compared_with_the_reference() -> None:
    examples = [Example(f"e{i}", "p", reference="ref ref") for i in range(4)]
    trained = [ids("a much longer summary"), ids("x"), ids("abcdefg"), ids("long long long")]
    initial = [ids("a"), ids("b"), ids("abcdefgh"), ids("c")]  # beats the 7-character reference once
    lead3 = ["lead three sentences", "ld", "ld", "ld"]

    def baselines(exs: list[Example]) -> dict[str, list[str]]:
        return {"lead3": lead3, "reference": [e.reference for e in exs]}

    result = evaluate_policy(Tokens(), LongerWins(), examples, trained, initial, np.zeros(4), baselines)
    m = result.metrics
    assert m["eval/winrate_vs_reference"] == pytest.approx((1 + 0 + 0.5 + 1) / 4)
    assert m["eval/winrate_init_vs_reference"] == pytest.approx(1 / 4)
    assert m["eval/lead3_winrate_vs_reference"] == pytest.approx(1 / 4)
    assert "eval/reference_winrate_vs_reference" not in m
    # Without a reference among the baselines there is nothing to compare against.
    alone = evaluate_policy(Tokens(), LongerWins(), examples, trained, initial, np.zeros(4),
                            lambda exs: {"lead3": lead3})
    assert not any("vs_reference" in k for k in alone.metrics)

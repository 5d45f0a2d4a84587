"""The simulated panel: choice rule, noise model, votes and agreement."""

import numpy as np
import pytest

from harness.errors import InputError
from harness.tasks.base import Example
from harness.labelers.panel import Annotator, Panel, pairwise_agreement


def length_scorer(examples, responses):  # noqa: ANN001, ANN201
    return np.array([float(len(r)) for r in responses])


def test_noise_free_annotator_picks_best() -> None:
    a = Annotator("len", length_scorer, temperature=0.0)
    u = np.array([[1.0, 3.0, 2.0, 0.0], [5.0, 1.0, 1.0, 1.0]])
    assert a.choose(u, np.random.default_rng(0)).tolist() == [1, 0]


def test_bradley_terry_choice_probability() -> None:
    # Two options, u difference 1, T = 1: P(first) = σ(1) = 0.7311
    a = Annotator("bt", length_scorer, temperature=1.0)
    u = np.tile([[1.0, 0.0]], (40_000, 1))
    p = (a.choose(u, np.random.default_rng(1)) == 0).mean()
    assert p == pytest.approx(1 / (1 + np.exp(-1.0)), abs=0.01)


def test_flip_rate_picks_another_response() -> None:
    a = Annotator("flip", length_scorer, temperature=0.0, flip_rate=0.3)
    u = np.tile([[0.0, 5.0, 1.0, 2.0]], (40_000, 1))
    choice = a.choose(u, np.random.default_rng(2))
    assert (choice != 1).mean() == pytest.approx(0.3, abs=0.01)
    # flips are uniform over the three others
    assert np.bincount(choice, minlength=4)[[0, 2, 3]] / 40_000 == pytest.approx([0.1] * 3, abs=0.01)


def test_panel_majority_gold_and_compare() -> None:
    longer = Annotator("long", length_scorer, temperature=0.0)
    shorter = Annotator("short", lambda p, r: -length_scorer(p, r), temperature=0.0)
    panel = Panel("p", "1", [longer, longer, shorter])
    x, y, z = (Example(i, i) for i in "xyz")
    labels = panel.label([x, y], [["aa", "a"], ["b", "bbb"]], np.random.default_rng(0))
    assert labels.choice.tolist() == [0, 1]
    assert labels.agreement == pytest.approx(1 / 3)  # one of three annotator pairs agrees
    assert panel.gold([x], ["abc"]).tolist() == [pytest.approx(1.0)]  # (3 + 3 − 3) / 3
    assert panel.compare([x, y, z], ["aa", "a", "c"], ["a", "aa", "d"]).tolist() == [1.0, 0.0, 0.5]


def test_agreement() -> None:
    assert pairwise_agreement(np.array([[0, 1], [0, 0]])) == 0.5
    assert pairwise_agreement(np.array([[0, 1]])) == 1.0


def test_bad_annotator_settings() -> None:
    with pytest.raises(InputError, match="flip_rate"):
        Annotator("x", length_scorer, flip_rate=1.5)
    with pytest.raises(InputError, match="at least one annotator"):
        Panel("p", "1", [])


def test_sentiment_scorers_agree_on_obvious_cases() -> None:
    from harness.labelers.scorers import TextBlobScorer, VaderScorer

    texts = ["it was wonderful, I loved it", "it was awful and I hated it"]
    for scorer in (VaderScorer(), TextBlobScorer()):
        good, bad = scorer([Example("a", ""), Example("b", "")], texts)
        assert good > 0 > bad


def test_binary_ratings_by_hand() -> None:
    """Annotator.rate against the median of what it rates: T = 0 is a median split; a flip rate
    of ~1 turns every rating over; the panel's rating is its annotators' majority."""
    from harness.labelers.panel import Annotator, Panel

    def scorer(examples, responses):  # noqa: ANN001, ANN202
        return [float(r) for r in responses]

    sharp = Annotator("sharp", scorer, temperature=0.0)
    rng = np.random.default_rng(0)
    assert sharp.rate(np.array([1.0, 2.0, 3.0, 4.0, 5.0]), rng).tolist() == [0, 0, 0, 1, 1]  # median 3: not above
    contrary = Annotator("contrary", scorer, temperature=0.0, flip_rate=0.999999)
    assert contrary.rate(np.array([1.0, 2.0, 4.0, 5.0]), rng).tolist() == [1, 1, 0, 0]
    # Soft: P(up) = σ((u − θ)/T); u − θ = ±1 at T = 1 gives σ(1) ≈ 0.731 and σ(−1) ≈ 0.269.
    soft = Annotator("soft", scorer, temperature=1.0)
    draws = np.stack([soft.rate(np.array([0.0, 1.0, 2.0]), np.random.default_rng(s)) for s in range(4000)])
    assert draws.mean(0) == pytest.approx([1 / (1 + np.e), 0.5, 1 / (1 + np.exp(-1))], abs=0.025)
    panel = Panel("p", "1", [sharp, sharp, contrary])
    ratings = panel.rate([None, None], [["1", "2"], ["4", "5"]], np.random.default_rng(1))
    assert ratings.choice.tolist() == [[0, 0], [1, 1]]  # two sharp annotators outvote the contrary one
    assert ratings.votes.shape == (3, 4) and ratings.agreement == pytest.approx(1 / 3)

import itertools
import math

import numpy as np
import pytest

from harness.eval.metrics import Z95, best_of_n_curve, best_of_n_weights, distinct_n, mean_ci, win_rate


def test_mean_ci_hand_worked() -> None:
    # mean 2, sample sd 1 (values 1, 2, 3), n = 3: half width 1.96/√3
    est = mean_ci([1.0, 2.0, 3.0])
    assert est.mean == 2.0
    assert est.high - est.mean == pytest.approx(Z95 / math.sqrt(3))
    assert est.mean - est.low == pytest.approx(Z95 / math.sqrt(3))
    assert est.n == 3


def test_win_rate_counts_ties_half_and_clips() -> None:
    est = win_rate([1, 1, 0.5, 0])
    assert est.mean == pytest.approx(0.625)
    assert win_rate([1, 1, 1]).high == 1.0
    with pytest.raises(ValueError):
        win_rate([0.3])


def test_win_rate_interval_covers_truth() -> None:
    rng = np.random.default_rng(0)
    covered = 0
    for _ in range(400):
        est = win_rate((rng.random(400) < 0.6).astype(float))
        covered += est.low <= 0.6 <= est.high
    assert 0.92 <= covered / 400 <= 0.98


def test_distinct_n() -> None:
    assert distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)
    assert distinct_n(["a"], 2) == 0.0


def test_best_of_n_weights_by_hand() -> None:
    # Pool of 3, n = 2: the subsets {1,2}, {1,3}, {2,3} keep ranks 2, 3, 3: weights 0, 1/3, 2/3.
    np.testing.assert_allclose(best_of_n_weights(3, 2), [0.0, 1 / 3, 2 / 3], rtol=0, atol=1e-15)
    np.testing.assert_allclose(best_of_n_weights(4, 1), [0.25] * 4, rtol=0, atol=0)
    np.testing.assert_allclose(best_of_n_weights(4, 4), [0, 0, 0, 1], rtol=0, atol=0)
    with pytest.raises(ValueError, match="1 ≤ n ≤ pool"):
        best_of_n_weights(3, 4)


def test_best_of_n_curve_by_hand_and_against_every_subset() -> None:
    # Proxy ranks: sample 1 (0.1) < sample 2 (0.2) < sample 0 (0.3); values 20, 30, 10 in that order.
    curve = best_of_n_curve(np.array([[0.3, 0.1, 0.2]]), np.array([[10.0, 20.0, 30.0]]), [1, 2, 3])
    assert curve == pytest.approx({1: 20.0, 2: 50 / 3, 3: 10.0}, rel=1e-12)
    rng = np.random.default_rng(0)
    proxy, values = rng.normal(size=(3, 6)), rng.normal(size=(3, 6))
    for n in range(1, 7):
        subsets = list(itertools.combinations(range(6), n))
        brute = np.mean([np.mean([values[p, max(s, key=lambda i: proxy[p, i])] for s in subsets]) for p in range(3)])
        assert best_of_n_curve(proxy, values, [n])[n] == pytest.approx(brute, rel=1e-12)
    # Best-of-n of the proxy itself only grows with n.
    own = best_of_n_curve(proxy, proxy, range(1, 7))
    assert all(own[n] <= own[n + 1] for n in range(1, 6))

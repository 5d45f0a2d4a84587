import math

import numpy as np
import pytest

from harness.eval.metrics import Z95, distinct_n, mean_ci, win_rate


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

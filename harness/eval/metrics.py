"""Pure evaluation metrics on arrays (no models, no logging)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Estimate:
    mean: float
    low: float
    high: float
    n: int

    def as_metrics(self, key: str) -> dict[str, float]:
        return {key: self.mean, f"{key}_ci95_low": self.low, f"{key}_ci95_high": self.high}


def mean_ci(values: Sequence[float] | np.ndarray) -> Estimate:
    """Mean with a normal-approximation 95% interval, mean ± 1.96·s/√n."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("mean_ci: no values")
    mean = float(x.mean())
    half = Z95 * float(x.std(ddof=1)) / np.sqrt(x.size) if x.size > 1 else float("inf")
    return Estimate(mean, mean - half, mean + half, int(x.size))


def win_rate(outcomes: Sequence[float] | np.ndarray) -> Estimate:
    """Win rate from per-comparison outcomes in {0, ½, 1} (ties count half), with a 95% CI.

    Normal approximation on the outcome mean, clipped to [0, 1]; with ties this is tighter
    than treating ties as coin flips, and it reduces to the Wald interval without them.
    """
    x = np.asarray(outcomes, dtype=np.float64)
    if ((x != 0) & (x != 0.5) & (x != 1)).any():
        raise ValueError("win_rate: outcomes must be 0, 0.5 or 1")
    est = mean_ci(x)
    return Estimate(est.mean, max(0.0, est.low), min(1.0, est.high), est.n)


def distinct_n(texts: Sequence[str], n: int = 2) -> float:
    """Distinct n-grams over all n-grams across texts (Li et al., 2016): a diversity measure."""
    grams: list[tuple[str, ...]] = []
    for t in texts:
        words = t.split()
        grams.extend(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    return len(set(grams)) / len(grams) if grams else 0.0


def best_of_n_weights(pool: int, n: int) -> np.ndarray:
    """P(the i-th smallest of `pool` scores is the largest of a uniformly drawn n-subset), i = 1..pool:
    w_i = C(i−1, n−1) / C(pool, n) (zero for i < n; the weights sum to 1)."""
    if not 1 <= n <= pool:
        raise ValueError(f"best_of_n_weights: expected 1 ≤ n ≤ pool, got n={n}, pool={pool}")
    total = math.comb(pool, n)
    return np.array([math.comb(i - 1, n - 1) / total for i in range(1, pool + 1)], dtype=np.float64)


def best_of_n_curve(proxy: np.ndarray, values: np.ndarray, ns: Sequence[int]) -> dict[int, float]:
    """The unbiased estimate, from one pool of N samples per prompt, of the mean `values` of the
    sample best-of-n keeps (the highest `proxy` of n drawn without replacement), for each n ≤ N
    (Nakano et al. 2021, App. I; Gao et al. 2022, §3.1):

        E[v(best of n)] = mean over prompts of Σ_i w_i v_(i),  w_i = C(i−1, n−1) / C(N, n),

    with v_(i) the value of the sample whose proxy ranks i-th from the bottom. `proxy` and
    `values` are (prompts, N); ties in proxy are broken by position (a stable sort). Its
    variance is lower than sampling n afresh per prompt, and every n comes from the same draws."""
    proxy, values = np.asarray(proxy, dtype=np.float64), np.asarray(values, dtype=np.float64)
    if proxy.ndim != 2 or proxy.shape != values.shape:
        raise ValueError(f"best_of_n_curve: expected two (prompts, N) arrays, got {proxy.shape} and {values.shape}")
    order = np.argsort(proxy, axis=1, kind="stable")
    ranked = np.take_along_axis(values, order, axis=1)
    return {n: float((ranked @ best_of_n_weights(proxy.shape[1], n)).mean()) for n in ns}

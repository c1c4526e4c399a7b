"""Bootstrap intervals and two-group tests, vectorised so 100,000 games take seconds.

- A rate (a mean of 0/1 values) is resampled as Binomial(n, p) / n: exactly the distribution
  of the resampled mean, at a cost independent of n.
- Means are resampled with a count matrix (B x n, from one bincount) times the value matrix, so
  all metrics of a group share one resample. Groups larger than EXACT_MAX_N games, or any group
  of a table over more than EXACT_MAX_TOTAL games, use the normal approximation of the bootstrap
  distribution (mean, sd / sqrt(n)), which at that size differs from it by less than its own
  Monte Carlo error. Groups of up to ALWAYS_EXACT_N games are always resampled. Every summary
  row says which method it used.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats

EXACT_MAX_N = 5000
EXACT_MAX_TOTAL = 10_000
ALWAYS_EXACT_N = 100
ALPHA = 0.05


@dataclass(frozen=True)
class Boot:
    """Bootstrap settings: resamples, seeded generator (figures are reproducible)."""

    resamples: int = 1000
    seed: int = 0

    def rng(self, *salt: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, *salt])


def use_exact(n: int, table_total: int) -> bool:
    """Resample exactly, or use the normal approximation (see the module docstring)."""
    return n <= ALWAYS_EXACT_N or (n <= EXACT_MAX_N and table_total <= EXACT_MAX_TOTAL)


def mean_draws(x: np.ndarray, boot: Boot, rng: np.random.Generator, exact: bool) -> np.ndarray:
    """(B, m) bootstrap means of the (n, m) value matrix `x` (NaN columns stay NaN)."""
    n, m = x.shape
    b = boot.resamples
    if n == 0:
        return np.full((b, m), np.nan)
    if not exact:
        sd = x.std(axis=0, ddof=1) if n > 1 else np.zeros(m)
        return x.mean(axis=0) + rng.standard_normal((b, m)) * (sd / np.sqrt(n))
    idx = rng.integers(0, n, size=(b, n), dtype=np.int64)
    idx += (np.arange(b, dtype=np.int64) * n)[:, None]
    counts = np.bincount(idx.ravel(), minlength=b * n).reshape(b, n).astype(float)
    return counts @ x / n


def rate_draws(k: np.ndarray, n: np.ndarray, boot: Boot, rng: np.random.Generator) -> np.ndarray:
    """(B, m) bootstrap rates for successes `k` of `n` (arrays of length m)."""
    n = np.asarray(n)
    p = np.divide(k, n, out=np.zeros(len(np.atleast_1d(k)), dtype=float), where=np.asarray(n) > 0)
    draws = rng.binomial(np.maximum(n, 0), p, size=(boot.resamples, len(p))) / np.maximum(n, 1)
    return np.where(n > 0, draws, np.nan)


def interval(draws: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Percentile 95% interval per column."""
    if draws.shape[0] == 0 or np.all(np.isnan(draws)):
        nan = np.full(draws.shape[1], np.nan)
        return nan, nan
    # Only an empty group's column holds NaN (all of it); percentile gives NaN there.
    lo, hi = np.percentile(draws, [100 * ALPHA / 2, 100 * (1 - ALPHA / 2)], axis=0)
    return lo, hi


def fisher_p(k_a: int, n_a: int, k_b: int, n_b: int) -> float:
    """Two-sided Fisher exact test of two rates."""
    if n_a == 0 or n_b == 0:
        return float("nan")
    return float(stats.fisher_exact([[k_a, n_a - k_a], [k_b, n_b - k_b]]).pvalue)


def welch_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided Welch t-test of two means; NaN when a side has < 2 values or no spread."""
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    if np.ptp(a) == 0 and np.ptp(b) == 0:  # no spread: the t statistic is undefined
        return 1.0 if a[0] == b[0] else 0.0
    with warnings.catch_warnings():  # near-constant groups: scipy warns, the p-value is still right
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def pearson(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(r, two-sided p), NaN when fewer than 3 points or a constant series."""
    ok = ~(np.isnan(x) | np.isnan(y))
    x, y = x[ok], y[ok]
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan"), float("nan")
    res = stats.pearsonr(x, y)
    return float(res.statistic), float(res.pvalue)

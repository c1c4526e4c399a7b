"""Group comparisons per feature: streaming moments, Welch's t-test, Cohen's d, Benjamini-Hochberg.

Feature extraction never holds the (games x features) matrix: each group keeps running moments
(count, mean, M2) merged batch by batch (Chan et al.'s parallel update, in float64), which is all
that Welch's t and a pooled-SD Cohen's d need.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


class RunningMoments:
    """Count, mean and sum of squared deviations per column, updated with batches of rows."""

    def __init__(self, width: int):
        self.n = 0
        self.mean = np.zeros(width, dtype=np.float64)
        self.m2 = np.zeros(width, dtype=np.float64)

    def update(self, rows: torch.Tensor | np.ndarray) -> None:
        x = rows.double().cpu().numpy() if isinstance(rows, torch.Tensor) else np.asarray(rows, np.float64)
        if x.shape[0] == 0:
            return
        nb = x.shape[0]
        mb = x.mean(axis=0)
        m2b = ((x - mb) ** 2).sum(axis=0)
        n = self.n + nb
        delta = mb - self.mean
        self.mean = self.mean + delta * (nb / n)
        self.m2 = self.m2 + m2b + delta**2 * (self.n * nb / n)
        self.n = n

    @property
    def var(self) -> np.ndarray:
        """Sample variance (ddof=1); NaN with fewer than two rows."""
        if self.n < 2:
            return np.full_like(self.mean, np.nan)
        return self.m2 / (self.n - 1)


@dataclass
class Comparison:
    """Per-column comparison of group a (e.g. bankrupt) against group b (e.g. stopped)."""

    mean_a: np.ndarray
    mean_b: np.ndarray
    d: np.ndarray
    t: np.ndarray
    p: np.ndarray
    tested: np.ndarray  # False where both groups are constant (no test possible)


def compare(a: RunningMoments, b: RunningMoments) -> Comparison:
    """Welch's t-test (two-sided) and Cohen's d with the pooled SD, column by column."""
    return compare_moments(a.n, a.mean, a.var, b.n, b.mean, b.var)


def compare_moments(
    na: int, ma: np.ndarray, va: np.ndarray, nb: int, mb: np.ndarray, vb: np.ndarray
) -> Comparison:
    from scipy import stats

    if na < 2 or nb < 2:
        raise ValueError(f"each group needs at least 2 members (got {na} and {nb})")
    diff = ma - mb
    pooled = np.sqrt(((na - 1) * va + (nb - 1) * vb) / (na + nb - 2))
    tested = pooled > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where(tested, diff / pooled, 0.0)
        se2_a, se2_b = va / na, vb / nb
        se = np.sqrt(se2_a + se2_b)
        t = np.where(tested, diff / se, 0.0)
        df = (se2_a + se2_b) ** 2 / (se2_a**2 / (na - 1) + se2_b**2 / (nb - 1))
        p = np.where(tested, 2 * stats.t.sf(np.abs(t), np.where(tested, df, 1.0)), 1.0)
    return Comparison(mean_a=ma, mean_b=mb, d=d, t=t, p=p, tested=tested)


def cohen_d(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's d of two samples (pooled SD); 0 when both are constant."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    c = compare_moments(len(a), a.mean(keepdims=True), a.var(ddof=1, keepdims=True),
                        len(b), b.mean(keepdims=True), b.var(ddof=1, keepdims=True))
    return float(c.d[0])


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """BH-adjusted q-values (monotone, capped at 1), same order as `p`."""
    p = np.asarray(p, dtype=np.float64)
    m = p.size
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    ranked = p[order] * m / np.arange(1, m + 1)
    q_sorted = np.minimum.accumulate(ranked[::-1])[::-1]
    q = np.empty(m)
    q[order] = np.minimum(q_sorted, 1.0)
    return q


@dataclass(frozen=True)
class Thresholds:
    """What counts as a significant feature (docs/protocol.md §3.4: |d| >= 0.3, p < 0.001, q < 0.05)."""

    min_abs_d: float = 0.3
    max_p: float = 1e-3
    max_q: float = 0.05

    def significant(self, d: np.ndarray, p: np.ndarray, q: np.ndarray) -> np.ndarray:
        return (np.abs(d) >= self.min_abs_d) & (p < self.max_p) & (q < self.max_q)

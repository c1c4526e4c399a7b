"""Group comparisons per feature: streaming moments, Welch's t-test, Cohen's d, Benjamini-Hochberg.

Feature extraction never holds the (games x features) matrix: each group keeps running moments
(count, mean, M2) merged batch by batch (Chan et al.'s parallel update, in float64), which is all
that Welch's t and a pooled-SD Cohen's d need.

Edges: a column is tested only when its pooled SD exceeds `CONSTANT_RTOL` times its root mean
square, so a column constant in both groups up to rounding noise (float32 activations, float64
merging) is "constant", not a huge d over a noise-sized SD. A column with a NaN or infinite moment
gets NaN p (and d, t); NaN p-values are left out of the BH family and their q is NaN.
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
        with np.errstate(invalid="ignore", over="ignore"):  # a NaN or inf value makes its column NaN
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


#: A column whose pooled SD is at most this share of its root mean square is constant (not tested):
#: far above float32 rounding (1.2e-7), far below any real variation of a feature across games.
CONSTANT_RTOL = 1e-4


@dataclass
class Comparison:
    """Per-column comparison of group a (e.g. bankrupt) against group b (e.g. stopped)."""

    mean_a: np.ndarray
    mean_b: np.ndarray
    d: np.ndarray
    t: np.ndarray
    p: np.ndarray  # 1 where constant, NaN where a moment is NaN or infinite
    tested: np.ndarray  # False where constant in both groups (up to CONSTANT_RTOL) or not finite


def compare(a: RunningMoments, b: RunningMoments, rtol: float = CONSTANT_RTOL) -> Comparison:
    """Welch's t-test (two-sided) and Cohen's d with the pooled SD, column by column."""
    return compare_moments(a.n, a.mean, a.var, b.n, b.mean, b.var, rtol)


def compare_moments(
    na: int, ma: np.ndarray, va: np.ndarray, nb: int, mb: np.ndarray, vb: np.ndarray,
    rtol: float = CONSTANT_RTOL,
) -> Comparison:
    from scipy import stats

    if na < 2 or nb < 2:
        raise ValueError(f"each group needs at least 2 members (got {na} and {nb})")
    diff = ma - mb
    pooled_var = ((na - 1) * va + (nb - 1) * vb) / (na + nb - 2)
    finite = np.isfinite(ma) & np.isfinite(mb) & np.isfinite(va) & np.isfinite(vb)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        mean_square = ((na - 1) * va + na * ma**2 + (nb - 1) * vb + nb * mb**2) / (na + nb)
        tested = finite & (pooled_var > rtol**2 * mean_square)
        pooled = np.sqrt(pooled_var)
        constant = np.where(finite, 0.0, np.nan)
        d = np.where(tested, diff / pooled, constant)
        se2_a, se2_b = va / na, vb / nb
        se = np.sqrt(se2_a + se2_b)
        t = np.where(tested, diff / se, constant)
        df = (se2_a + se2_b) ** 2 / (se2_a**2 / (na - 1) + se2_b**2 / (nb - 1))
        p = np.where(tested, 2 * stats.t.sf(np.abs(t), np.where(tested, df, 1.0)), constant + 1.0)
    return Comparison(mean_a=ma, mean_b=mb, d=d, t=t, p=p, tested=tested)


def cohen_d(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's d of two samples (pooled SD); 0 when both are constant."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    c = compare_moments(len(a), a.mean(keepdims=True), a.var(ddof=1, keepdims=True),
                        len(b), b.mean(keepdims=True), b.var(ddof=1, keepdims=True))
    return float(c.d[0])


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """BH q-values (scipy's `false_discovery_control`), same order as `p`. NaN p-values are not in the
    family (m counts only the others) and get NaN q, so one undefined test does not void the rest."""
    from scipy import stats

    p = np.asarray(p, dtype=np.float64)
    q = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        q[ok] = stats.false_discovery_control(p[ok])
    return q


@dataclass(frozen=True)
class Thresholds:
    """What counts as a significant feature (docs/protocol.md §3.4: |d| >= 0.3, p < 0.001, q < 0.05)."""

    min_abs_d: float = 0.3
    max_p: float = 1e-3
    max_q: float = 0.05

    def significant(self, d: np.ndarray, p: np.ndarray, q: np.ndarray) -> np.ndarray:
        return (np.abs(d) >= self.min_abs_d) & (p < self.max_p) & (q < self.max_q)

"""Welch t, Cohen's d and BH against scipy and hand numbers; streaming moments against numpy."""

import numpy as np
import pytest
from scipy import stats

from sae.stats import RunningMoments, Thresholds, benjamini_hochberg, cohen_d, compare


def moments(x: np.ndarray, batch: int) -> RunningMoments:
    m = RunningMoments(x.shape[1])
    for i in range(0, len(x), batch):
        m.update(x[i : i + batch])
    return m


def test_running_moments_match_numpy():
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(101, 7))
    m = moments(x, 13)
    assert m.n == 101
    assert np.allclose(m.mean, x.mean(0)) and np.allclose(m.var, x.var(0, ddof=1))


def test_welch_matches_scipy():
    rng = np.random.default_rng(1)
    a = rng.normal(0.5, 1.0, size=(40, 5))
    b = rng.normal(0.0, 3.0, size=(25, 5))
    c = compare(moments(a, 7), moments(b, 4))
    ref = stats.ttest_ind(a, b, equal_var=False)
    assert np.allclose(c.t, ref.statistic) and np.allclose(c.p, ref.pvalue)


def test_cohen_d_by_hand():
    # means 3 and 1, sample variances 1 and 1 -> pooled SD 1 -> d = 2
    assert cohen_d([2, 3, 4], [0, 1, 2]) == pytest.approx(2.0)
    # unequal n: var a = 2.5 (n 5), var b = 1 (n 3): pooled = sqrt((4*2.5 + 2*1) / 6) = sqrt(2)
    assert cohen_d([1, 2, 3, 4, 5], [0, 1, 2]) == pytest.approx(2 / np.sqrt(2))


def test_constant_features_are_not_tested():
    a = np.zeros((5, 2))
    a[:, 1] = [0, 1, 0, 2, 0]
    c = compare(moments(a, 2), moments(np.zeros((4, 2)), 2))
    assert c.tested.tolist() == [False, True]
    assert c.p[0] == 1.0 and c.d[0] == 0.0


def test_bh_matches_scipy_and_thresholds():
    p = np.array([0.01, 0.04, 0.03, 0.005, 0.5, 0.0001])
    assert np.allclose(benjamini_hochberg(p), stats.false_discovery_control(p))
    q = benjamini_hochberg(p)
    sig = Thresholds(min_abs_d=0.3, max_p=0.02, max_q=0.05).significant(
        np.array([0.5, 1, 1, -0.4, 1, 0.1]), p, q
    )
    assert sig.tolist() == [True, False, False, True, False, False]


def test_column_constant_up_to_rounding_is_not_tested():
    """3.0 in both groups, float32 rounding noise that follows the group: `pooled > 0` alone made
    it a huge-d, tiny-p feature; under CONSTANT_RTOL it is constant. A real 1 % spread is tested."""
    rng = np.random.default_rng(3)
    a = np.full((40, 3), 3.0)
    b = np.full((30, 3), 3.0)
    a[:, 0] = np.float32(3.0 + 2.4e-7 * rng.integers(0, 2, 40))  # one float32 ulp, mostly in group a
    b[:, 0] = np.float32(3.0 + 2.4e-7 * (rng.random(30) < 0.1))
    a[:, 1] += rng.normal(0.03, 0.03, 40)
    b[:, 1] += rng.normal(0.0, 0.03, 30)
    c = compare(moments(a, 7), moments(b, 4))
    pooled = np.sqrt((39 * a[:, 0].var(ddof=1) + 29 * b[:, 0].var(ddof=1)) / 68)
    assert pooled > 0 and abs(a[:, 0].mean() - b[:, 0].mean()) / pooled > 0.3  # the old rule's verdict
    assert stats.ttest_ind(a[:, 0], b[:, 0], equal_var=False).pvalue < 1e-3
    assert c.tested.tolist() == [False, True, False]
    assert (c.p[0], c.d[0], c.t[0]) == (1.0, 0.0, 0.0)
    assert np.isclose(c.p[1], stats.ttest_ind(a[:, 1], b[:, 1], equal_var=False).pvalue)
    assert compare(moments(a, 7), moments(b, 4), rtol=1e-12).tested[0]  # the tolerance decides


def test_non_finite_moments_give_nan_p_outside_the_bh_family():
    a = np.random.default_rng(4).normal(size=(10, 3))
    b = a[::-1] + 1.0
    a[2, 1], b[0, 2] = np.nan, np.inf
    c = compare(moments(a, 3), moments(b, 3))
    assert c.tested.tolist() == [True, False, False]
    assert np.isnan(c.p[1:]).all() and np.isnan(c.d[1:]).all() and np.isnan(c.t[1:]).all()
    p = np.array([0.01, np.nan, 0.04, 0.03, np.nan, 0.005])
    q = benjamini_hochberg(p)
    # m = 4 finite p-values: sorted 0.005, 0.01, 0.03, 0.04 -> 0.02, 0.02, 0.04, 0.04 (by hand)
    assert np.isnan(q[[1, 4]]).all()
    assert np.allclose(q[[0, 2, 3, 5]], [0.02, 0.04, 0.04, 0.02])
    assert Thresholds(max_p=1.0, min_abs_d=0.0).significant(np.ones(6), p, q).tolist() == [
        True, False, True, True, False, True,
    ]
    assert np.isnan(benjamini_hochberg(np.array([np.nan]))).all()
    assert benjamini_hochberg(np.array([])).size == 0


def test_bh_q_equals_scipy_on_many_p_values_with_ties():
    rng = np.random.default_rng(5)
    p = np.concatenate([rng.uniform(size=500), rng.uniform(0, 1e-4, 50), [1.0, 1.0, 0.5, 0.5, 0.0]])
    assert np.allclose(benjamini_hochberg(p), stats.false_discovery_control(p), rtol=0, atol=1e-15)
    m = p.size  # the definition: q_(i) = min over j >= i of p_(j) m / j, capped at 1
    order = np.argsort(p)
    q_sorted = np.minimum(np.minimum.accumulate((p[order] * m / np.arange(1, m + 1))[::-1])[::-1], 1)
    assert np.allclose(benjamini_hochberg(p)[order], q_sorted)

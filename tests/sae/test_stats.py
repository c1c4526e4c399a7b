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

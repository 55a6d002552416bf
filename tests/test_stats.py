"""biocoreset.stats: rank correlation, length control and split-half stability on known cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from biocoreset.stats import (
    draws_for_reliability,
    length_control,
    rankdata,
    spearman,
    spearman_brown,
    split_half_stability,
)


def test_spearman_equals_scipy_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = np.round(rng.normal(size=200), 1)
        b = np.round(a + rng.normal(size=200), 1)
        assert spearman(a, b) == pytest.approx(sps.spearmanr(a, b).statistic, abs=1e-12)
        np.testing.assert_allclose(rankdata(a), sps.rankdata(a))
    assert math.isnan(spearman(np.ones(5), np.arange(5.0)))


def test_spearman_brown_and_its_inverse():
    for r in (0.1, 0.5, 0.9):
        for k in (2.0, 8.0):
            kr = spearman_brown(r, k)
            assert draws_for_reliability(r, kr) == pytest.approx(k)
    assert draws_for_reliability(0.0) == math.inf


def test_split_half_on_identical_and_independent_halves():
    rng = np.random.default_rng(1)
    a = rng.normal(size=5000)
    same = split_half_stability(a, a.copy(), draws=8)
    assert same["split_half"] == 1.0 and same["projected"] == 1.0
    indep = split_half_stability(a, rng.normal(size=5000), draws=8)
    assert abs(indep["split_half"]) < 0.05 and abs(indep["projected"]) < 0.1


def test_split_half_matches_the_bivariate_normal_value():
    """Halves = signal + independent noise (Pearson r = 1/(1 + σ²)); for a bivariate normal
    Spearman's ρ is (6/π)·asin(r/2). The projection to K = 2·halves is Spearman–Brown."""
    rng = np.random.default_rng(2)
    n, sigma2 = 200_000, 1.0
    signal = rng.normal(size=n)
    a = signal + rng.normal(scale=math.sqrt(sigma2), size=n)
    b = signal + rng.normal(scale=math.sqrt(sigma2), size=n)
    r = 1 / (1 + sigma2)
    rho = 6 / math.pi * math.asin(r / 2)
    got = split_half_stability(a, b, draws=4)
    assert got["split_half"] == pytest.approx(rho, abs=0.005)
    assert got["projected"] == pytest.approx(2 * rho / (1 + rho), abs=0.005)
    # one draw: halves of 2 draws each
    assert got["single_draw"] == pytest.approx(rho / (2 - rho), abs=0.005)


def test_length_regressed_stability_removes_a_shared_length_effect():
    rng = np.random.default_rng(3)
    n = 4000
    L = rng.integers(20, 800, size=n)
    # both halves share a strong length effect; the per-sequence signal beyond length is weak
    signal = 0.3 * rng.normal(size=n)
    a = np.exp(-2 * np.log(L) + signal + rng.normal(size=n))
    b = np.exp(-2 * np.log(L) + signal + rng.normal(size=n))
    got = split_half_stability(a, b, draws=2, lengths=L)
    assert got["split_half"] > 0.6  # length makes the halves agree
    assert got["split_half_length_regressed"] < 0.15  # beyond length, mostly noise


def test_length_control_on_a_known_trend():
    rng = np.random.default_rng(4)
    L = rng.integers(20, 1000, size=3000)
    s = np.exp(5 - 1.5 * np.log(L) + 0.5 * rng.normal(size=3000))
    lc = length_control(s, L)
    assert lc.transform == "log" and lc.spearman_length < -0.8 and lc.r2_length > 0.7
    assert abs(lc.spearman_length_after) < 0.05
    np.testing.assert_allclose(lc.medians, 5 - 1.5 * lc.centers, atol=0.25)
    assert np.median(lc.z) == pytest.approx(0.0, abs=0.1)
    assert np.median(np.abs(lc.z)) == pytest.approx(0.6745, abs=0.08)  # MAD of N(0, 1)
    zeros = length_control(np.r_[0.0, s[1:]], L)
    assert zeros.transform == "identity"

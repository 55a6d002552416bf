"""compare_arms against scipy's Welch test and a hand-computed interval."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from biocoreset.bench.compare import compare_arms, verdict
from biocoreset.errors import InputError


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_scipy_welch(seed):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(1.0, 0.1, size=3), rng.normal(1.1, 0.3, size=4)
    c = compare_arms(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False)
    assert c.welch_t == pytest.approx(float(ref.statistic), rel=1e-12)
    ci = ref.confidence_interval(0.95)
    assert c.ci_low == pytest.approx(float(ci.low), rel=1e-10)
    assert c.ci_high == pytest.approx(float(ci.high), rel=1e-10)
    assert c.gap == pytest.approx(a.mean() - b.mean(), rel=1e-12)
    sd_a, sd_b = a.std(ddof=1), b.std(ddof=1)
    assert c.two_pooled_sd == pytest.approx(2 * math.sqrt((sd_a**2 + sd_b**2) / 2), rel=1e-12)
    assert c.beyond == (abs(c.gap) > c.two_pooled_sd)


def test_rule_and_zero_spread():
    assert compare_arms([1.0, 1.0], [0.0, 0.0]).beyond  # no spread, a gap: beyond
    assert not compare_arms([1.0, 3.0], [1.5, 2.5]).beyond
    c = compare_arms([2.0, 2.0], [2.0, 2.0])
    assert math.isnan(c.welch_t) and c.ci_low == c.ci_high == 0.0 and not c.beyond


def test_errors():
    with pytest.raises(InputError, match="at least 2 seeds"):
        compare_arms([1.0], [1.0, 2.0])
    with pytest.raises(InputError, match="not finite"):
        compare_arms([1.0, float("nan")], [1.0, 2.0])


def test_verdict_follows_the_preregistered_rule():
    lower = compare_arms([1.0, 1.01], [1.2, 1.21])  # a's loss lower, beyond
    higher = compare_arms([1.2, 1.21], [1.0, 1.01])
    same = compare_arms([1.0, 1.2], [1.1, 1.05])
    assert not same.beyond and lower.beyond and higher.beyond
    kw = {"first_higher_is_better": False}
    assert verdict(lower, same, **kw) == "beats"
    assert verdict(lower, higher, **kw) == "beats"  # the second better: still beats
    assert verdict(lower, lower, **kw) == "mixed"  # the second worse beyond the rule
    assert verdict(higher, same, **kw) == "worse"
    assert verdict(higher, higher, **kw) == "mixed"
    assert verdict(same, higher, **kw) == "no difference"  # the first decides

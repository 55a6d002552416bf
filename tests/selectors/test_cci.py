"""CCI follows Algorithm 1 exactly (paper Appendix A.1)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from biocoreset import select
from biocoreset.errors import BudgetError, ConfigError, InputError
from biocoreset.selectors.cci import CCISelector, cci_plan
from biocoreset.testing import check_selector


def reference_cci(scores, budget, beta, k, seed):
    """A literal transcription of Algorithm 1, written independently of the implementation."""
    n = len(scores)
    order = sorted(range(n), key=lambda i: (-scores[i], i))
    cut = set(order[: math.floor(n * beta)])
    kept = [i for i in range(n) if i not in cut]
    lo, hi = min(scores[i] for i in kept), max(scores[i] for i in kept)
    width = (hi - lo) / k
    strata = [[] for _ in range(k)]
    for i in kept:
        s = 0 if width == 0 else min(int((scores[i] - lo) // width), k - 1)
        strata[s].append(i)
    return cut, strata


def test_matches_literal_algorithm():
    rng = np.random.default_rng(1)
    scores = rng.gamma(2.0, size=500)
    plan = cci_plan(scores, 60, beta=0.05, strata=10, seed=3)
    cut, strata = reference_cci(scores.tolist(), 60, 0.05, 10, 3)
    assert set(plan.cut.tolist()) == cut and len(cut) == math.floor(500 * 0.05)
    assert plan.sizes.tolist() == [len(s) for s in strata]
    # allocation: smallest stratum first, min(|B|, floor(m / |B_left|))
    m, left = 60, 10
    expected_taken = [0] * 10
    for s in sorted(range(10), key=lambda j: (len(strata[j]), j)):
        take = min(len(strata[s]), m // left)
        expected_taken[s] = take
        m -= take
        left -= 1
    assert plan.taken.tolist() == expected_taken
    assert plan.selected.size == 60
    for s in range(10):  # taken from the right stratum
        chosen = set(plan.selected.tolist()) & set(strata[s])
        assert len(chosen) == expected_taken[s]
    assert not set(plan.selected.tolist()) & cut


def test_hardest_removed_first_and_ties_by_input_order():
    scores = np.array([5.0, 9.0, 9.0, 1.0, 2.0, 3.0, 4.0, 0.0, 6.0, 7.0])
    plan = cci_plan(scores, 3, beta=0.1, strata=2, seed=0)
    assert plan.cut.tolist() == [1]  # ⌊10 × 0.1⌋ = 1; tie 9.0 at rows 1, 2: earlier first


def test_exact_budget_many_configurations():
    rng = np.random.default_rng(0)
    for trial in range(200):
        n = int(rng.integers(1, 80))
        beta = float(rng.choice([0.0, 0.05, 0.1, 0.3]))
        kept = n - math.floor(n * beta)
        if kept < 1:
            continue
        budget = int(rng.integers(1, kept + 1))
        k = int(rng.integers(1, 120))  # includes k > n
        scores = rng.normal(size=n) * rng.choice([1e-6, 1.0, 1e6])
        plan = cci_plan(scores, budget, beta=beta, strata=k, seed=trial)
        assert plan.selected.size == budget
        assert len(np.unique(plan.selected)) == budget
        assert plan.taken.sum() == budget
        assert np.all(plan.taken <= plan.sizes)


def test_reproducible_with_seed():
    scores = np.random.default_rng(2).normal(size=300)
    a = cci_plan(scores, 40, seed=11).selected
    b = cci_plan(scores, 40, seed=11).selected
    c = cci_plan(scores, 40, seed=12).selected
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_negative_scores():
    scores = -np.arange(1, 101, dtype=float)
    plan = cci_plan(scores, 10, beta=0.05, strata=5, seed=0)
    assert plan.selected.size == 10
    assert set(plan.cut.tolist()) == {0, 1, 2, 3, 4}  # highest = least negative


def test_all_equal_scores():
    plan = cci_plan(np.full(50, 3.0), 7, beta=0.1, strata=50, seed=0)
    assert plan.selected.size == 7
    assert plan.sizes[0] == 45 and plan.sizes[1:].sum() == 0


def test_budget_equal_to_and_above_what_remains():
    scores = np.arange(20, dtype=float)
    plan = cci_plan(scores, 19, beta=0.05, strata=4, seed=0)  # 1 cut, 19 remain: take all
    assert plan.selected.tolist() == list(range(19))
    with pytest.raises(BudgetError, match="exceeds the 19 examples left"):
        cci_plan(scores, 20, beta=0.05, strata=4, seed=0)


def test_k_larger_than_n():
    plan = cci_plan(np.array([0.0, 1.0, 2.0]), 2, beta=0.0, strata=50, seed=0)
    assert plan.selected.size == 2


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_inf_is_a_clear_error(bad):
    scores = np.array([0.0, 1.0, bad, 2.0])
    with pytest.raises(InputError, match=r"NaN or infinite.*index 2"):
        cci_plan(scores, 2)


def test_min_and_max_of_kept_range_are_selectable():
    # 1 value at the minimum, 1 at the maximum of the kept range, many in the middle: with one per
    # stratum the extremes form their own strata and must be taken.
    scores = np.concatenate([[0.0], np.full(30, 0.5), [1.0], [100.0]])
    plan = cci_plan(scores, 3, beta=1 / 33, strata=3, seed=0)
    assert plan.cut.tolist() == [32]
    assert 0 in plan.selected.tolist() and 31 in plan.selected.tolist()
    # and over many seeds, every kept example is reachable (the max is in a closed bin)
    seen = set()
    for seed in range(400):
        seen |= set(cci_plan(scores, 3, beta=1 / 33, strata=3, seed=seed).selected.tolist())
    assert seen == set(range(32))


def test_options_validated():
    with pytest.raises(ConfigError, match="beta"):
        CCISelector(beta=1.5)
    with pytest.raises(ConfigError, match="strata"):
        CCISelector(strata=0)


def test_budget_as_fraction_and_count():
    scores = np.random.default_rng(0).normal(size=200)
    assert select(scores, "cci", budget=0.1).indices.size == 20
    assert select(scores, "cci", budget=17).indices.size == 17
    with pytest.raises(BudgetError):
        select(scores, "cci", budget=201)
    with pytest.raises(BudgetError):
        select(scores, "cci", budget=1.5)


def test_conformance():
    check_selector(CCISelector())

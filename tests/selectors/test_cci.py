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
    # exact: selected indices
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


# -- the released code's choices (paper-compat) ---------------------------------------------------


def literal_released_cci(data, budget, strata, seed, exclude):
    """``stratified_sampling_numpy`` of the released get_coreset_index.py, transcribed from its
    documented behaviour (bins [min + i·step, min + (i+1)·step) up to max·1.0001)."""
    np.random.seed(seed)
    index = np.arange(len(data))
    keep = np.ones(len(data), dtype=bool)
    keep[np.argsort(data)[: int(len(data) * exclude)]] = False
    data, index = data[keep], index[keep]
    lo, hi = data.min(), data.max() * 1.0001
    step = (hi - lo) / strata
    members = [index[(data >= lo + i * step) & (data < lo + (i + 1) * step)] for i in range(strata)]
    counts = np.array([m.size for m in members], dtype=int)
    budgets = np.zeros(strata, dtype=int)
    left = budget
    for i, s in enumerate(np.argsort(counts)):
        budgets[s] = min(counts[s], left // (strata - i))
        left -= budgets[s]
    out = []
    for s in range(strata):
        if budgets[s] > 0 and members[s].size > 0:
            out.extend(np.random.choice(members[s], size=budgets[s], replace=False).tolist())
    return sorted(out)


RELEASED = dict(cut="lowest", edges="released", ties="numpy", rng="legacy")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_released_options_equal_the_released_algorithm(dtype):
    rng = np.random.default_rng(7)
    for trial in range(60):
        n = int(rng.integers(20, 400))
        data = (-rng.gamma(2.0, size=n) * rng.choice([1e-3, 1.0, 1e4])).astype(dtype)
        if trial % 5 == 0:  # many ties
            data = np.round(data, 1).astype(dtype)
        strata = int(rng.choice([5, 50]))
        budget = int(rng.integers(1, n // 3 + 2))
        expected = literal_released_cci(data, budget, strata, 42, 0.1)
        if len(expected) != budget:
            continue  # the released code came up short; checked in the next test
        plan = cci_plan(data, budget, beta=0.1, strata=strata, seed=42, **RELEASED)
        assert plan.selected.tolist() == expected, trial


def test_released_edges_leave_the_largest_negative_score_unreachable():
    scores = -np.arange(1.0, 11.0)  # max -1.0; max * 1.0001 < max
    plan = cci_plan(scores, 9, beta=0.0, strata=3, seed=0, edges="released")
    assert plan.stratum[0] == -2 and 0 not in plan.selected.tolist()
    with pytest.warns(UserWarning, match="selected 9 examples instead of 10"):
        short = cci_plan(scores, 10, beta=0.0, strata=3, seed=0, edges="released")
    assert short.selected.size == 9
    # with the closed edges of Algorithm 1 every kept score is reachable
    assert cci_plan(scores, 10, beta=0.0, strata=3, seed=0).selected.size == 10


def test_cut_end_and_auto_orientation():
    scores = np.arange(10.0)
    assert cci_plan(scores, 2, beta=0.2, strata=2, cut="highest").cut.tolist() == [8, 9]
    assert cci_plan(scores, 2, beta=0.2, strata=2, cut="lowest").cut.tolist() == [0, 1]
    assert CCISelector().oriented(True).cut == "lowest"
    assert CCISelector().oriented(False).cut == "highest"
    assert CCISelector(cut="highest").oriented(True).cut == "highest"


@pytest.mark.parametrize(
    ("option", "value"), [("cut", "hightest"), ("edges", "open"), ("ties", "random"), ("rng", "mt")]
)
def test_bad_option_values_name_the_option(option, value):
    with pytest.raises(ConfigError, match=rf"{option} must be one of"):
        CCISelector(**{option: value})

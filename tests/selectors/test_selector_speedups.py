"""The O(n) Top-I and CCI equal the sort-based reference (the first k of a stable argsort)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from biocoreset.selectors.cci import cci_plan
from biocoreset.selectors.topk import top_indices


def _reference_top(scores, k, largest=True):
    order = np.argsort(-scores if largest else scores, kind="stable")
    return np.sort(order[:k])


def _reference_cci(scores, budget, beta, strata, seed):
    n = scores.size
    order = np.argsort(-scores, kind="stable")
    n_cut = math.floor(n * beta)
    cut, kept = np.sort(order[:n_cut]), np.sort(order[n_cut:])
    vals = scores[kept]
    lo, hi = vals.min(), vals.max()
    idx = (
        np.clip(np.floor((vals - lo) / (hi - lo) * strata).astype(np.int64), 0, strata - 1)
        if hi > lo
        else (np.zeros(vals.size, dtype=np.int64))
    )
    sizes = np.bincount(idx, minlength=strata)
    rng = np.random.default_rng(seed)
    m_left, chosen, taken = budget, [], np.zeros(strata, dtype=np.int64)
    for left, s in zip(
        range(strata, 0, -1), sorted(range(strata), key=lambda s: (sizes[s], s)), strict=True
    ):
        m_b = min(int(sizes[s]), m_left // left)
        if m_b:
            chosen.append(rng.choice(kept[idx == s], size=m_b, replace=False))
        taken[s] = m_b
        m_left -= m_b
    stratum = np.full(n, -1, dtype=np.int64)
    stratum[kept] = idx
    return cut, sizes, taken, stratum, np.sort(np.concatenate(chosen))


def _scores(kind, n, rng):
    if kind == "normal":
        return rng.normal(size=n)
    if kind == "ties":
        return rng.integers(0, 4, size=n).astype(float)
    return np.zeros(n)


@pytest.mark.parametrize("kind", ["normal", "ties", "constant"])
@pytest.mark.parametrize("n", [7, 300, 250_000])
def test_top_indices_equals_stable_sort(kind, n):
    rng = np.random.default_rng(n)
    scores = _scores(kind, n, rng)
    for k in {1, 2, n // 9 + 1, n // 2, n - 1, n}:
        for largest in (True, False):
            # exact: indices
            assert np.array_equal(
                top_indices(scores, k, largest=largest), _reference_top(scores, k, largest)
            )


@pytest.mark.parametrize("kind", ["normal", "ties", "constant"])
@pytest.mark.parametrize(
    ("n", "strata"), [(50, 1), (400, 7), (400, 50), (3000, 126), (3000, 127), (220_000, 50)]
)
def test_cci_plan_equals_the_sort_based_reference(kind, n, strata):
    rng = np.random.default_rng(strata)
    scores = _scores(kind, n, rng)
    budget = max(1, n // 10)
    plan = cci_plan(scores, budget, beta=0.05, strata=strata, seed=3)
    cut, sizes, taken, stratum, selected = _reference_cci(scores, budget, 0.05, strata, 3)
    # exact: integer plans
    assert np.array_equal(plan.cut, cut)
    assert np.array_equal(plan.sizes, sizes) and np.array_equal(plan.taken, taken)
    assert np.array_equal(plan.stratum, stratum)
    assert np.array_equal(plan.selected, selected)


def test_cci_with_extreme_scores_does_not_warn():
    scores = np.random.default_rng(0).random(1000)
    scores[3], scores[4] = 1e308, -1e308
    with np.errstate(all="raise"):
        plan = cci_plan(scores, 50, beta=0.01, strata=50, seed=0)
    assert plan.selected.size == 50

"""Top-I and random selectors."""

from __future__ import annotations

import numpy as np
import pytest

from biocoreset import select
from biocoreset.errors import BudgetError, InputError
from biocoreset.selectors.budget import resolve_budget
from biocoreset.selectors.random import RandomSelector
from biocoreset.selectors.topk import TopKSelector
from biocoreset.testing import check_selector


def test_topk_highest_ties_by_input_order():
    scores = np.array([1.0, 3.0, 2.0, 3.0, 3.0, 0.0])
    assert TopKSelector().select(scores, 2, seed=0).tolist() == [1, 3]
    assert TopKSelector(largest=False).select(scores, 2, seed=0).tolist() == [0, 5]


def test_topk_is_exactly_the_k_largest():
    scores = np.random.default_rng(3).normal(size=1000)
    idx = TopKSelector().select(scores, 50, seed=0)
    assert set(idx.tolist()) == set(np.argsort(-scores)[:50].tolist())


def test_random_uniform_and_reproducible():
    a = RandomSelector().select(np.zeros(100), 10, seed=4)
    # exact: indices
    assert np.array_equal(a, RandomSelector().select(np.zeros(100), 10, seed=4))
    counts = np.zeros(20)
    for seed in range(2000):
        counts[RandomSelector().select(np.zeros(20), 5, seed=seed)] += 1
    assert counts.min() > 400 and counts.max() < 600  # expected 500 each


@pytest.mark.parametrize("selector", [TopKSelector(), RandomSelector()])
def test_conformance(selector):
    check_selector(selector)


def test_nan_rejected():
    with pytest.raises(InputError, match="NaN"):
        select([0.0, np.nan], "topk", budget=1)


@pytest.mark.parametrize(
    ("budget", "n", "expected"),
    [(0.29, 100, 29), (0.1, 30, 3), (1.0, 7, 7), (3, 10, 3), (0.7, 10, 7)],
)
def test_resolve_budget(budget, n, expected):
    assert resolve_budget(budget, n) == expected


@pytest.mark.parametrize("budget", [0, -1, 11, 0.0, 1.2, float("nan"), True, "5"])
def test_resolve_budget_errors(budget):
    with pytest.raises(BudgetError):
        resolve_budget(budget, 10)


def test_topk_numpy_ties_are_numpy_argsort_order():
    scores = np.round(np.random.default_rng(3).normal(size=300), 1)  # many ties
    for k in (1, 7, 50):
        got = TopKSelector(largest=False, ties="numpy").select(scores, k, seed=0)
        assert got.tolist() == sorted(np.argsort(scores)[:k].tolist())
        f32 = scores.astype(np.float32)
        got32 = TopKSelector(largest=False, ties="numpy").select(f32, k, seed=0)
        assert got32.tolist() == sorted(np.argsort(f32)[:k].tolist())


def test_topk_auto_direction():
    assert TopKSelector().oriented(True).largest is False
    assert TopKSelector().oriented(False).largest is True
    assert TopKSelector(largest=True).oriented(True).largest is True

"""The selector conformance checks, each a top-level function of ``(selector, *, n, budget,
seed)`` that raises :class:`AssertionError` saying what failed.

Example:
    >>> from biocoreset.selectors.topk import TopKSelector
    >>> budget_indices(TopKSelector())
"""

from __future__ import annotations

import numpy as np

from biocoreset.protocols import Selector

__all__ = ["SELECTOR_CHECKS", "budget_indices", "protocol", "seed_reproducible"]


def _scores(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=n)


def protocol(selector: Selector, *, n: int = 200, budget: int = 20, seed: int = 0) -> None:
    """It implements :class:`~biocoreset.protocols.Selector`."""
    assert isinstance(selector, Selector), f"{selector!r} does not implement the Selector protocol"


def budget_indices(selector: Selector, *, n: int = 200, budget: int = 20, seed: int = 0) -> None:
    """Exactly ``budget`` distinct in-range ``int64`` indices come back."""
    a = np.asarray(selector.select(_scores(n, seed), budget, seed=seed))
    assert a.dtype == np.int64, f"indices must be int64, got {a.dtype}"
    assert len(a) == budget, f"expected {budget} indices, got {len(a)}"
    assert len(np.unique(a)) == budget, "indices contain duplicates"
    assert a.min() >= 0 and a.max() < n, "indices out of range"


def seed_reproducible(selector: Selector, *, n: int = 200, budget: int = 20, seed: int = 0) -> None:
    """The same scores and seed give the same selection."""
    scores = _scores(n, seed)
    first = np.asarray(selector.select(scores, budget, seed=seed))
    again = np.asarray(selector.select(scores, budget, seed=seed))
    assert np.array_equal(first, again), "the same seed gave different selections"


SELECTOR_CHECKS = (protocol, budget_indices, seed_reproducible)
"""Every selector's checks, in order."""

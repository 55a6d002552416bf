"""The ``topk`` selector (Top-I): the ``budget`` highest scores, ties broken by input order."""

from __future__ import annotations

from typing import Any

import numpy as np

from biocoreset.plugins.hookspecs import hookimpl
from biocoreset.selectors._checks import as_scores

__all__ = ["TopKSelector", "top_indices"]


def _kth(arr: np.ndarray, k: int, largest: bool) -> float:
    """The exact ``k``-th largest (or smallest) value of ``arr`` (1-based ``k``).

    For small ``k`` a sample of the scores bounds the value from one side; only the scores beyond
    that bound are partitioned. The bound is checked (at least ``k`` scores lie beyond it), so the
    result is exact whatever the sample; otherwise the whole array is partitioned.
    """
    n = arr.size
    if n > 200_000 and k * 8 <= n:
        m = 100_000
        sample = arr[np.random.default_rng(0x70C).integers(0, n, m)]
        r = min(m, int(k / n * m * 1.5) + 100)  # rank in the sample, with a generous margin
        if largest:
            bound = np.partition(sample, m - r)[m - r]
            cand = arr[arr >= bound]
            if cand.size >= k:
                return float(np.partition(cand, cand.size - k)[cand.size - k])
        else:
            bound = np.partition(sample, r - 1)[r - 1]
            cand = arr[arr <= bound]
            if cand.size >= k:
                return float(np.partition(cand, k - 1)[k - 1])
    return float(np.partition(arr, n - k)[n - k] if largest else np.partition(arr, k - 1)[k - 1])


def top_indices(scores: np.ndarray, k: int, *, largest: bool = True) -> np.ndarray:
    """Indices (ascending) of the ``k`` highest (or lowest) scores, ties broken by input order.

    Exactly the first ``k`` of a stable argsort, found in O(n): the k-th value ``t`` is found by
    partitioning; every score beyond ``t`` is taken, then the earliest scores equal to ``t`` fill
    the rest. Scores must not be NaN.

    >>> top_indices(np.array([1.0, 3.0, 2.0, 3.0, 3.0, 0.0]), 2).tolist()
    [1, 3]
    >>> top_indices(np.array([1.0, 3.0, 2.0, 3.0, 3.0, 0.0]), 2, largest=False).tolist()
    [0, 5]
    """
    arr = np.asarray(scores, dtype=np.float64)
    n = arr.size
    k = int(k)
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    if k >= n:
        return np.arange(n, dtype=np.int64)
    thr = _kth(arr, k, largest)
    beyond = np.flatnonzero(arr > thr) if largest else np.flatnonzero(arr < thr)
    ties = np.flatnonzero(arr == thr)[: k - beyond.size]
    out = np.concatenate([beyond, ties])
    out.sort()
    return out.astype(np.int64, copy=False)


class TopKSelector:
    """Top-k selection.

    Args:
        largest: Take the highest scores (default) or, with ``False``, the lowest.

    >>> TopKSelector().select(np.array([0.1, 0.5, 0.5, 0.2]), 2, seed=0).tolist()
    [1, 2]
    """

    name = "topk"

    def __init__(self, *, largest: bool = True, **_: Any) -> None:
        self.largest = bool(largest)

    def select(self, scores: np.ndarray, budget: int, *, seed: int = 0) -> np.ndarray:
        """Indices of the selected rows, ascending."""
        arr = as_scores(scores, budget)
        return top_indices(arr, int(budget), largest=self.largest)


@hookimpl
def biocoreset_register_selectors(register: Any) -> None:
    """Register ``topk``."""
    register("topk", TopKSelector, description="Top-I: the highest self-influence scores")

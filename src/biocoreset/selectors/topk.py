"""The ``topk`` selector (Top-I): the ``budget`` most influential scores, ties broken by input order."""

from __future__ import annotations

from typing import ClassVar

import attrs
import numpy as np

from biocoreset.errors import ConfigError
from biocoreset.selectors._checks import as_scores, native_scores, one_of

__all__ = ["TopKSelector", "top_indices"]

TIES = ("stable", "numpy")


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


@attrs.frozen(kw_only=True)
class TopKSelector:
    """Top-k selection (Top-I): the ``budget`` most influential scores.

    Args:
        largest: Take the highest stored scores (``True``) or the lowest (``False``). ``None``
            (default): the most influential end — the highest, or the lowest when the scores are
            stored negated (``-I(z)``, as under ``paper-compat`` and the released code).
        ties: ``"stable"`` (default: ties broken by input order, in O(n)) or ``"numpy"``
            (the first ``budget`` of :func:`numpy.argsort`'s default, unstable, order — what the
            released code's ``monotonic_sampling_numpy`` does; run in the scores' own precision).

    >>> TopKSelector().select(np.array([0.1, 0.5, 0.5, 0.2]), 2, seed=0).tolist()
    [1, 2]
    >>> TopKSelector().oriented(True).select(np.array([0.1, 0.5, 0.5, 0.2]), 2, seed=0).tolist()
    [0, 3]
    """

    name: ClassVar[str] = "topk"

    largest: bool | None = attrs.field(default=None)
    ties: str = attrs.field(default="stable")

    def __attrs_post_init__(self) -> None:
        if self.largest is not None and not isinstance(self.largest, (bool, np.bool_)):
            raise ConfigError(f"largest must be true, false or None (auto), got {self.largest!r}.")
        one_of("ties", self.ties, TIES)

    def oriented(self, negated: bool) -> TopKSelector:
        """This selector for scores stored as ``-I(z)`` (``negated``) or ``I(z)``: resolves
        ``largest=None`` to the most influential end."""
        if self.largest is not None:
            return self
        return attrs.evolve(self, largest=not negated)

    def select(self, scores: np.ndarray, budget: int, *, seed: int = 0) -> np.ndarray:
        """Indices of the selected rows, ascending."""
        arr = as_scores(scores, budget)
        largest = True if self.largest is None else bool(self.largest)
        if self.ties == "numpy":
            native = native_scores(scores)
            order = np.argsort(-native if largest else native)
            return np.sort(order[: int(budget)]).astype(np.int64)
        return top_indices(arr, int(budget), largest=largest)

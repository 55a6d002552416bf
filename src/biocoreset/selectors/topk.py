"""The ``topk`` selector (Top-I): the ``budget`` highest scores, ties broken by input order."""

from __future__ import annotations

from typing import Any

import numpy as np

from biocoreset.plugins.hookspecs import hookimpl
from biocoreset.selectors._checks import as_scores

__all__ = ["TopKSelector"]


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
        order = np.argsort(-arr if self.largest else arr, kind="stable")
        return np.sort(order[: int(budget)]).astype(np.int64)


@hookimpl
def biocoreset_register_selectors(register: Any) -> None:
    """Register ``topk``."""
    register("topk", TopKSelector, description="Top-I: the highest self-influence scores")

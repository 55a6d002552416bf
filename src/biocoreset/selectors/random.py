"""The ``random`` selector: a uniform sample without replacement (the paper's baseline)."""

from __future__ import annotations

from typing import ClassVar

import attrs
import numpy as np

from biocoreset.selectors._checks import as_scores

__all__ = ["RandomSelector"]


@attrs.frozen(kw_only=True)
class RandomSelector:
    """Uniform random selection, reproducible with ``seed``; the scores only fix ``n``. No options.

    >>> len(RandomSelector().select(np.zeros(10), 3, seed=0))
    3
    """

    name: ClassVar[str] = "random"

    def select(self, scores: np.ndarray, budget: int, *, seed: int = 0) -> np.ndarray:
        """Indices of the selected rows, ascending."""
        n = as_scores(scores, budget).size
        rng = np.random.default_rng(seed)
        return np.sort(rng.choice(n, size=int(budget), replace=False)).astype(np.int64)

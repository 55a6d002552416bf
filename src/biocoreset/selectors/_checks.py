"""Input checks shared by selectors."""

from __future__ import annotations

import numpy as np

from biocoreset.errors import BudgetError, InputError

__all__ = ["as_scores"]


def as_scores(scores: np.ndarray, budget: int) -> np.ndarray:
    """Validate ``scores`` (1-D, finite) and ``budget`` (1..n); return float64 scores."""
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim != 1:
        raise InputError(f"scores must be one-dimensional, got shape {arr.shape}.")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise InputError(
            f"{bad.size} score(s) are NaN or infinite (first at index {int(bad[0])}: {arr[bad[0]]!r}). "
            "Rescore those sequences or drop them before selecting."
        )
    n = arr.size
    if isinstance(budget, bool) or int(budget) != budget or not 1 <= int(budget) <= n:
        raise BudgetError(
            f"budget must be an integer between 1 and {n} (the number of scores), got {budget!r}."
        )
    return arr

"""Input checks shared by selectors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from biocoreset.errors import BudgetError, ConfigError, InputError, did_you_mean

__all__ = ["as_scores", "native_scores", "one_of"]


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


def native_scores(scores: Any) -> np.ndarray:
    """``scores`` in their own precision: float32 stays float32, anything else becomes float64.

    The released code's selection arithmetic runs on float32 scores; reproducing it bit for bit
    needs the same precision.

    >>> native_scores(np.ones(2, dtype=np.float32)).dtype, native_scores([1, 2]).dtype
    (dtype('float32'), dtype('float64'))
    """
    arr = np.asarray(scores)
    return arr if arr.dtype == np.float32 else arr.astype(np.float64, copy=False)


def one_of(option: str, value: Any, choices: Sequence[str]) -> None:
    """Raise :class:`ConfigError` unless ``value`` is one of ``choices``.

    >>> one_of("ties", "stable", ("stable", "numpy"))
    """
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(
            f"{option} must be one of {', '.join(map(repr, choices))}, got {value!r}."
            f"{did_you_mean(str(value), choices)}"
        )

"""Budgets: a count, or a fraction of the number of scored sequences."""

from __future__ import annotations

import math
import numbers
from fractions import Fraction

from biocoreset.errors import BudgetError

__all__ = ["resolve_budget"]


def resolve_budget(budget: int | float, n: int) -> int:
    """Number of sequences to select.

    An ``int`` is a count; a ``float`` in (0, 1] is a fraction of ``n``, rounded down using its
    decimal value (``0.29`` of 100 is 29, not 28).

    >>> resolve_budget(0.29, 100)
    29
    >>> resolve_budget(5, 10)
    5

    Raises:
        BudgetError: The budget is not positive, exceeds ``n``, or is a fraction outside (0, 1].
    """
    if isinstance(budget, bool) or not isinstance(budget, numbers.Real):
        raise BudgetError(
            f"budget must be a count (int) or a fraction (float in (0, 1]), got {budget!r}."
        )
    if isinstance(budget, numbers.Integral):
        k = int(budget)
    else:
        b = float(budget)
        if not math.isfinite(b) or not 0.0 < b <= 1.0:
            raise BudgetError(
                f"a fractional budget must be in (0, 1], got {budget!r}; pass an int for a count."
            )
        k = math.floor(Fraction(repr(b)) * n)
    if k < 1:
        raise BudgetError(
            f"budget {budget!r} of {n} sequences selects nothing; it must be >= 1 sequence."
        )
    if k > n:
        raise BudgetError(f"budget {k} exceeds the {n} scored sequences; choose a budget <= {n}.")
    return k

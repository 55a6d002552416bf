"""The ``cci`` selector: Coverage-centric Influence selection (paper Appendix A.1, Algorithm 1).

1. Drop the ⌊nβ⌋ highest-scoring ("hardest") examples (ties: earlier input first).
2. Split the remaining score range [min, max] into ``strata`` equal-width bins. The last bin is
   closed on the right, so both the minimum and the maximum of the kept range can be selected.
3. Visit the bins from the one with fewest examples to the one with most (ties: lower scores
   first); each takes ``min(|bin|, ⌊m_left / bins_left⌋)`` examples uniformly at random, then
   ``m_left`` is reduced by what it took.

The result has exactly ``budget`` examples whenever the budget does not exceed what remains after
the β cut.
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import numpy as np

from biocoreset.errors import BudgetError, ConfigError
from biocoreset.plugins.hookspecs import hookimpl
from biocoreset.selectors._checks import as_scores
from biocoreset.selectors.topk import top_indices

__all__ = ["CCIPlan", "CCISelector", "cci_plan"]

_CHUNK = 1 << 18  # rows per chunk when assigning strata


@attrs.frozen(kw_only=True)
class CCIPlan:
    """What CCI did, for reports and plots.

    Attributes:
        cut: Indices removed as hardest (⌊nβ⌋ of them).
        edges: ``strata + 1`` bin edges over the kept score range.
        stratum: Stratum of every kept example (``-1`` for cut examples), length n, in the smallest
            signed integer dtype that holds the strata (``int8`` up to 126 strata).
        sizes: Examples per stratum.
        taken: Examples selected per stratum.
        selected: Selected indices, ascending.
    """

    cut: np.ndarray
    edges: np.ndarray
    stratum: np.ndarray
    sizes: np.ndarray
    taken: np.ndarray
    selected: np.ndarray


def cci_plan(
    scores: np.ndarray, budget: int, *, beta: float = 0.05, strata: int = 50, seed: int = 0
) -> CCIPlan:
    """Run Algorithm 1 and return the full plan (see :class:`CCISelector`).

    >>> plan = cci_plan(np.arange(20.0), 5, beta=0.1, strata=3, seed=0)
    >>> plan.cut.tolist(), plan.sizes.tolist(), int(plan.taken.sum())
    ([18, 19], [6, 6, 6], 5)
    """
    arr = as_scores(scores, budget)
    if not 0.0 <= beta < 1.0 or not math.isfinite(beta):
        raise ConfigError(
            f"beta (hard cutoff rate) must be in [0, 1), got {beta!r}; the paper uses 0.05."
        )
    if isinstance(strata, bool) or int(strata) != strata or strata < 1:
        raise ConfigError(f"strata must be a positive integer, got {strata!r}; the paper uses 50.")
    n = arr.size
    n_cut = math.floor(n * beta)
    cut = top_indices(arr, n_cut)  # O(n); equal to the first n_cut of a stable argsort of -scores
    keep_mask = np.ones(n, dtype=bool)
    keep_mask[cut] = False
    n_kept = n - cut.size
    if budget > n_kept:
        raise BudgetError(
            f"budget {budget} exceeds the {n_kept} examples left after removing the "
            f"{n_cut} hardest (beta={beta}) of {n}; lower the budget or beta."
        )
    lo = float(np.min(arr, where=keep_mask, initial=np.inf))
    hi = float(np.max(arr, where=keep_mask, initial=-np.inf))
    k = int(strata)
    edges = np.linspace(lo, hi, k + 1)
    # Small stratum numbers make the stable argsort below a one- or two-pass radix sort.
    small = (
        np.int8
        if k + 1 <= np.iinfo(np.int8).max
        else np.int16
        if k + 1 <= np.iinfo(np.int16).max
        else np.int64
    )
    idx = np.zeros(n, dtype=small)
    if hi > lo:
        # floor((v - lo) / (hi - lo) * k), clipped to the last (right-closed) bin, in cache-sized
        # chunks (no second n-sized float array). Truncation equals floor here: v - lo >= 0.
        buf = np.empty(min(n, _CHUNK), dtype=np.float64)
        width = hi - lo
        with np.errstate(over="ignore"):  # cut rows may overflow; they are overwritten below
            for start in range(0, n, _CHUNK):
                stop = min(n, start + _CHUNK)
                tmp = buf[: stop - start]
                np.subtract(arr[start:stop], lo, out=tmp)
                tmp /= width
                tmp *= k
                np.minimum(tmp, k - 1, out=tmp)
                idx[start:stop] = tmp
    idx[cut] = k  # the cut rows form a last, never-visited group
    # Members of each stratum in input order: a stable sort of the stratum numbers.
    by_stratum = np.argsort(idx, kind="stable")
    starts = np.searchsorted(idx[by_stratum], np.arange(k + 2, dtype=small))
    sizes = np.diff(starts[: k + 1]).astype(np.int64)
    taken = np.zeros(k, dtype=np.int64)
    rng = np.random.default_rng(seed)
    visit = sorted(range(k), key=lambda s: (sizes[s], s))
    m_left = int(budget)
    chosen = []
    for left, s in zip(range(k, 0, -1), visit, strict=True):
        m_b = min(int(sizes[s]), m_left // left)
        if m_b:
            members = by_stratum[starts[s] : starts[s + 1]]
            chosen.append(rng.choice(members, size=m_b, replace=False))
        taken[s] = m_b
        m_left -= m_b
    del by_stratum
    stratum = idx  # reused in place: no second n-sized array
    stratum[cut] = -1
    selected = np.sort(np.concatenate(chosen)) if chosen else np.empty(0, dtype=np.int64)
    if selected.size != budget:  # cannot happen when budget <= n_kept; guard the invariant
        raise BudgetError(
            f"CCI selected {selected.size} examples instead of {budget}; please report this."
        )
    return CCIPlan(
        cut=cut,
        edges=edges,
        stratum=stratum,
        sizes=sizes,
        taken=taken,
        selected=selected.astype(np.int64),
    )


class CCISelector:
    """Coverage-centric influence selection.

    Args:
        beta: Hard cutoff rate β: the ⌊nβ⌋ highest scores are removed first (paper: 0.05).
        strata: Number of equal-width strata k (paper: 50).

    >>> sel = CCISelector(beta=0.0, strata=2)
    >>> sel.select(np.array([0.0, 0.1, 0.9, 1.0]), 2, seed=0).size
    2
    """

    name = "cci"

    def __init__(self, *, beta: float = 0.05, strata: int = 50, **_: Any) -> None:
        if not 0.0 <= float(beta) < 1.0:
            raise ConfigError(
                f"beta (hard cutoff rate) must be in [0, 1), got {beta!r}; the paper uses 0.05."
            )
        if isinstance(strata, bool) or int(strata) != strata or strata < 1:
            raise ConfigError(
                f"strata must be a positive integer, got {strata!r}; the paper uses 50."
            )
        self.beta = float(beta)
        self.strata = int(strata)

    def plan(self, scores: np.ndarray, budget: int, *, seed: int = 0) -> CCIPlan:
        """The full plan (cut, strata, counts) behind :meth:`select`."""
        return cci_plan(scores, budget, beta=self.beta, strata=self.strata, seed=seed)

    def select(self, scores: np.ndarray, budget: int, *, seed: int = 0) -> np.ndarray:
        """Indices of the selected rows, ascending."""
        return self.plan(scores, budget, seed=seed).selected


@hookimpl
def biocoreset_register_selectors(register: Any) -> None:
    """Register ``cci``."""
    register(
        "cci",
        CCISelector,
        description="coverage-centric influence: stratified over score strata (Alg. 1)",
    )

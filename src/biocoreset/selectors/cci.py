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

__all__ = ["CCIPlan", "CCISelector", "cci_plan"]


@attrs.frozen(kw_only=True)
class CCIPlan:
    """What CCI did, for reports and plots.

    Attributes:
        cut: Indices removed as hardest (⌊nβ⌋ of them).
        edges: ``strata + 1`` bin edges over the kept score range.
        stratum: Stratum of every kept example (``-1`` for cut examples), length n.
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


def cci_plan(scores: np.ndarray, budget: int, *, beta: float = 0.05, strata: int = 50, seed: int = 0) -> CCIPlan:
    """Run Algorithm 1 and return the full plan (see :class:`CCISelector`).

    >>> plan = cci_plan(np.arange(20.0), 5, beta=0.1, strata=3, seed=0)
    >>> plan.cut.tolist(), plan.sizes.tolist(), int(plan.taken.sum())
    ([18, 19], [6, 6, 6], 5)
    """
    arr = as_scores(scores, budget)
    if not 0.0 <= beta < 1.0 or not math.isfinite(beta):
        raise ConfigError(f"beta (hard cutoff rate) must be in [0, 1), got {beta!r}; the paper uses 0.05.")
    if isinstance(strata, bool) or int(strata) != strata or strata < 1:
        raise ConfigError(f"strata must be a positive integer, got {strata!r}; the paper uses 50.")
    n = arr.size
    n_cut = math.floor(n * beta)
    order = np.argsort(-arr, kind="stable")
    cut = np.sort(order[:n_cut])
    kept = np.sort(order[n_cut:])
    if budget > kept.size:
        raise BudgetError(
            f"budget {budget} exceeds the {kept.size} examples left after removing the "
            f"{n_cut} hardest (beta={beta}) of {n}; lower the budget or beta."
        )
    vals = arr[kept]
    lo, hi = float(vals.min()), float(vals.max())
    k = int(strata)
    edges = np.linspace(lo, hi, k + 1)
    if hi > lo:
        idx = np.floor((vals - lo) / (hi - lo) * k).astype(np.int64)
        idx = np.clip(idx, 0, k - 1)  # the maximum belongs to the last (right-closed) bin
    else:
        idx = np.zeros(vals.size, dtype=np.int64)
    stratum = np.full(n, -1, dtype=np.int64)
    stratum[kept] = idx
    sizes = np.bincount(idx, minlength=k)
    taken = np.zeros(k, dtype=np.int64)
    rng = np.random.default_rng(seed)
    visit = sorted(range(k), key=lambda s: (sizes[s], s))
    m_left = int(budget)
    chosen = []
    for left, s in zip(range(k, 0, -1), visit, strict=True):
        m_b = min(int(sizes[s]), m_left // left)
        if m_b:
            members = kept[idx == s]
            chosen.append(rng.choice(members, size=m_b, replace=False))
        taken[s] = m_b
        m_left -= m_b
    selected = np.sort(np.concatenate(chosen)) if chosen else np.empty(0, dtype=np.int64)
    if selected.size != budget:  # cannot happen when budget <= kept.size; guard the invariant
        raise BudgetError(f"CCI selected {selected.size} examples instead of {budget}; please report this.")
    return CCIPlan(cut=cut, edges=edges, stratum=stratum, sizes=sizes, taken=taken,
                   selected=selected.astype(np.int64))


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
            raise ConfigError(f"beta (hard cutoff rate) must be in [0, 1), got {beta!r}; the paper uses 0.05.")
        if isinstance(strata, bool) or int(strata) != strata or strata < 1:
            raise ConfigError(f"strata must be a positive integer, got {strata!r}; the paper uses 50.")
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
    register("cci", CCISelector, description="coverage-centric influence: stratified over score strata (Alg. 1)")

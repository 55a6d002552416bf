"""The ``cci`` selector: Coverage-centric Influence selection (paper Appendix A.1, Algorithm 1).

1. Drop the ⌊nβ⌋ most influential ("hardest") examples (ties: earlier input first).
2. Split the remaining score range [min, max] into ``strata`` equal-width bins. The last bin is
   closed on the right, so both the minimum and the maximum of the kept range can be selected.
3. Visit the bins from the one with fewest examples to the one with most (ties: lower bin first);
   each takes ``min(|bin|, ⌊m_left / bins_left⌋)`` examples uniformly at random, then ``m_left`` is
   reduced by what it took.

The result has exactly ``budget`` examples whenever the budget does not exceed what remains after
the β cut.

The released bio-coreset code (``coreset/get_coreset_index.py``) differs in four named choices,
each an option here so that ``paper-compat`` reproduces it exactly and any single one can be
switched back:

=================  ==============================  ===============================================
option             default (Algorithm 1)           released code
=================  ==============================  ===============================================
``cut``            ``"auto"``: the most            ``"lowest"`` of the stored −I(z) = the most
                   influential end                 influential (``auto`` resolves to it for
                                                   negated scores)
``edges``          ``"closed"``: [min, max], last  ``"released"``: bins ``min + i·step`` with
                   bin right-closed                ``step = (max·1.0001 − min) / k``, half-open;
                                                   for negative scores ``max·1.0001 < max``, so the
                                                   largest kept score lies in no bin
``ties``           ``"stable"``: input order       ``"numpy"``: :func:`numpy.argsort`'s default
                                                   (unstable) order, for the cut and for the order
                                                   in which strata are visited
``rng``            ``"default"``:                  ``"legacy"``: ``numpy.random.RandomState(seed)``
                   ``default_rng(seed)``, strata   (= ``np.random.seed`` + ``np.random.choice``),
                   drawn in visiting order         strata drawn in bin order
=================  ==============================  ===============================================

With ``edges="released"`` the arithmetic runs in the dtype of the scores given (a float32 array,
such as the released code's ``inf_scores.npy``, stays float32), as the released code's does.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, ClassVar

import attrs
import numpy as np

from biocoreset.errors import BioCoresetWarning, BudgetError, ConfigError
from biocoreset.selectors._checks import as_scores, native_scores, one_of
from biocoreset.selectors.topk import top_indices

__all__ = ["CCIPlan", "CCISelector", "cci_plan"]

_CHUNK = 1 << 18  # rows per chunk when assigning strata

CUTS = ("auto", "highest", "lowest")
EDGES = ("closed", "released")
TIES = ("stable", "numpy")
RNGS = ("default", "legacy")


@attrs.frozen(kw_only=True)
class CCIPlan:
    """What CCI did, for reports and plots.

    Attributes:
        cut: Indices removed as hardest (⌊nβ⌋ of them), ascending.
        edges: ``strata + 1`` bin edges over the kept score range.
        stratum: Stratum of every example, length n, in the smallest signed integer dtype that
            holds the strata (``int8`` up to 125 strata): ``-1`` for cut examples, ``-2`` for kept
            examples that lie in no stratum (only with ``edges="released"``).
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


def _check(beta: Any, strata: Any) -> None:
    if (
        isinstance(beta, bool)
        or not isinstance(beta, (int, float, np.floating, np.integer))
        or not math.isfinite(float(beta))
        or not 0.0 <= float(beta) < 1.0
    ):
        raise ConfigError(
            f"beta (hard cutoff rate) must be in [0, 1), got {beta!r}; the paper uses 0.05."
        )
    if (
        isinstance(strata, bool)
        or not isinstance(strata, (int, float, np.integer, np.floating))
        or int(strata) != strata
        or strata < 1
    ):
        raise ConfigError(f"strata must be a positive integer, got {strata!r}; the paper uses 50.")


def _cut(arr: np.ndarray, n_cut: int, end: str, ties: str) -> np.ndarray:
    """Indices (ascending) of the ``n_cut`` scores at ``end`` of ``arr``."""
    if ties == "stable":
        return top_indices(arr, n_cut, largest=end == "highest")
    order = np.argsort(arr) if end == "lowest" else np.argsort(-arr)
    return np.sort(order[:n_cut]).astype(np.int64)


def _closed_strata(arr: np.ndarray, keep: np.ndarray, k: int, idx: np.ndarray) -> np.ndarray:
    """Fill ``idx`` with ``floor((v - lo) / (hi - lo) · k)`` (last bin right-closed); return edges."""
    lo = float(np.min(arr, where=keep, initial=np.inf))
    hi = float(np.max(arr, where=keep, initial=-np.inf))
    if hi > lo:
        # In cache-sized chunks (no second n-sized float array). Truncation equals floor here:
        # v - lo >= 0 for every kept row.
        buf = np.empty(min(arr.size, _CHUNK), dtype=np.float64)
        width = hi - lo
        with np.errstate(over="ignore"):  # cut rows may overflow; they are overwritten later
            for start in range(0, arr.size, _CHUNK):
                stop = min(arr.size, start + _CHUNK)
                tmp = buf[: stop - start]
                np.subtract(arr[start:stop], lo, out=tmp)
                tmp /= width
                tmp *= k
                np.minimum(tmp, k - 1, out=tmp)
                idx[start:stop] = tmp
    return np.linspace(lo, hi, k + 1)


def _released_strata(native: np.ndarray, keep: np.ndarray, k: int, idx: np.ndarray) -> np.ndarray:
    """The released binning: ``[min + i·step, min + (i+1)·step)`` with ``step = (max·1.0001 − min)/k``,
    computed with the released expressions in the scores' own dtype; rows in no bin get ``-2``."""
    data = native[keep]
    min_score = data.min()
    max_score = data.max() * 1.0001
    step = (max_score - min_score) / k
    edges = np.array([min_score + i * step for i in range(k + 1)], dtype=native.dtype)
    if step > 0:
        # bin i holds edges[i] <= v < edges[i + 1]; the edges are non-decreasing, so the last
        # edge not above v names the bin (empty bins between equal edges stay empty).
        where = np.searchsorted(edges, data, side="right") - 1
        where[(where < 0) | (where >= k)] = -2
    else:  # max·1.0001 <= min (equal non-positive scores): every bin is empty
        where = np.full(data.size, -2, dtype=np.int64)
    idx[keep] = where
    return edges.astype(np.float64)


def cci_plan(
    scores: np.ndarray,
    budget: int,
    *,
    beta: float = 0.05,
    strata: int = 50,
    seed: int = 0,
    cut: str = "highest",
    edges: str = "closed",
    ties: str = "stable",
    rng: str = "default",
) -> CCIPlan:
    """Run Algorithm 1 and return the full plan (see :class:`CCISelector` for the options;
    ``cut="auto"`` means ``"highest"`` here).

    >>> plan = cci_plan(np.arange(20.0), 5, beta=0.1, strata=3, seed=0)
    >>> plan.cut.tolist(), plan.sizes.tolist(), int(plan.taken.sum())
    ([18, 19], [6, 6, 6], 5)
    """
    _check(beta, strata)
    one_of("cut", cut, CUTS)
    one_of("edges", edges, EDGES)
    one_of("ties", ties, TIES)
    one_of("rng", rng, RNGS)
    end = "highest" if cut == "auto" else cut
    arr = as_scores(scores, budget)
    native = native_scores(scores) if (edges == "released" or ties == "numpy") else arr
    n = arr.size
    n_cut = math.floor(n * beta)
    cut_idx = _cut(native, n_cut, end, ties)  # O(n) for "stable"
    keep = np.ones(n, dtype=bool)
    keep[cut_idx] = False
    n_kept = n - cut_idx.size
    if budget > n_kept:
        raise BudgetError(
            f"budget {budget} exceeds the {n_kept} examples left after removing the "
            f"{n_cut} hardest (beta={beta}) of {n}; lower the budget or beta."
        )
    k = int(strata)
    # Small stratum numbers make the stable argsort below a one- or two-pass radix sort.
    small = (
        np.int8
        if k + 2 <= np.iinfo(np.int8).max
        else np.int16
        if k + 2 <= np.iinfo(np.int16).max
        else np.int64
    )
    idx = np.zeros(n, dtype=small)
    if edges == "closed":
        bin_edges = _closed_strata(arr, keep, k, idx)
    else:
        bin_edges = _released_strata(native, keep, k, idx)
    # The cut rows form a last, never-visited group (and rows in no bin, one more).
    idx[cut_idx] = k
    idx[idx == -2] = k + 1
    # Members of each stratum in input order: a stable sort of the stratum numbers.
    by_stratum = np.argsort(idx, kind="stable")
    starts = np.searchsorted(idx[by_stratum], np.arange(k + 3, dtype=small))
    sizes = np.diff(starts[: k + 1]).astype(np.int64)
    taken = np.zeros(k, dtype=np.int64)
    visit = (
        sorted(range(k), key=lambda s: (sizes[s], s))
        if ties == "stable"
        else np.argsort(sizes).tolist()
    )
    m_left = int(budget)
    for left, s in zip(range(k, 0, -1), visit, strict=True):
        taken[s] = min(int(sizes[s]), m_left // left)
        m_left -= int(taken[s])
    chosen = []
    draw_order = visit if rng == "default" else range(k)
    generator: Any = (
        np.random.default_rng(seed) if rng == "default" else np.random.RandomState(seed)
    )
    for s in draw_order:
        if taken[s]:
            members = by_stratum[starts[s] : starts[s + 1]]
            chosen.append(generator.choice(members, size=int(taken[s]), replace=False))
    outside = int(starts[k + 2] - starts[k + 1])
    del by_stratum
    stratum = idx  # reused in place: no second n-sized array
    stratum[cut_idx] = -1
    if outside:
        stratum[stratum == k + 1] = -2
    selected = np.sort(np.concatenate(chosen)) if chosen else np.empty(0, dtype=np.int64)
    if selected.size != budget:
        if edges == "closed":  # cannot happen when budget <= n_kept; guard the invariant
            raise BudgetError(
                f"CCI selected {selected.size} examples instead of {budget}; please report this."
            )
        warnings.warn(
            f"CCI with edges='released' selected {selected.size} examples instead of {budget}: "
            f"{outside} kept example(s) lie above the released upper edge max·1.0001 and every "
            "stratum is exhausted (the released code returns the same shorter set).",
            BioCoresetWarning,
            stacklevel=2,
        )
    return CCIPlan(
        cut=cut_idx,
        edges=bin_edges,
        stratum=stratum,
        sizes=sizes,
        taken=taken,
        selected=selected.astype(np.int64),
    )


@attrs.frozen(kw_only=True)
class CCISelector:
    """Coverage-centric influence selection.

    Args:
        beta: Hard cutoff rate β: the ⌊nβ⌋ most influential scores are removed first (paper: 0.05).
        strata: Number of equal-width strata k (paper: 50).
        cut: Which end of the stored scores the β cut removes: ``"auto"`` (default: the most
            influential end — the highest scores, or the lowest when the scores are stored negated,
            as under ``paper-compat``), ``"highest"`` or ``"lowest"``.
        edges: ``"closed"`` (default) or ``"released"`` (see the module docs).
        ties: ``"stable"`` (default) or ``"numpy"``.
        rng: ``"default"`` or ``"legacy"``.

    >>> sel = CCISelector(beta=0.0, strata=2)
    >>> sel.select(np.array([0.0, 0.1, 0.9, 1.0]), 2, seed=0).size
    2
    """

    name: ClassVar[str] = "cci"

    beta: float = attrs.field(default=0.05)
    strata: int = attrs.field(default=50)
    cut: str = attrs.field(default="auto")
    edges: str = attrs.field(default="closed")
    ties: str = attrs.field(default="stable")
    rng: str = attrs.field(default="default")

    def __attrs_post_init__(self) -> None:
        _check(self.beta, self.strata)
        one_of("cut", self.cut, CUTS)
        one_of("edges", self.edges, EDGES)
        one_of("ties", self.ties, TIES)
        one_of("rng", self.rng, RNGS)

    def oriented(self, negated: bool) -> CCISelector:
        """This selector for scores stored as ``-I(z)`` (``negated``) or ``I(z)``: resolves
        ``cut="auto"`` to the most influential end."""
        if self.cut != "auto":
            return self
        return attrs.evolve(self, cut="lowest" if negated else "highest")

    def plan(self, scores: np.ndarray, budget: int, *, seed: int = 0) -> CCIPlan:
        """The full plan (cut, strata, counts) behind :meth:`select`."""
        return cci_plan(
            scores,
            budget,
            beta=float(self.beta),
            strata=int(self.strata),
            seed=seed,
            cut=self.cut,
            edges=self.edges,
            ties=self.ties,
            rng=self.rng,
        )

    def select(self, scores: np.ndarray, budget: int, *, seed: int = 0) -> np.ndarray:
        """Indices of the selected rows, ascending."""
        return self.plan(scores, budget, seed=seed).selected

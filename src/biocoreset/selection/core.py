"""Selecting a coreset from scores: :func:`select` (also ``biocoreset.select``).

This module imports neither torch nor any model code, so ``from biocoreset import select`` starts
fast; the selector is imported when it is first used.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import attrs
import numpy as np

from biocoreset.config import SelectConfig
from biocoreset.errors import ConfigError, InputError
from biocoreset.plugins import get_registry
from biocoreset.protocols import IdentifiedSelector, OrientedSelector, PlanningSelector
from biocoreset.selectors.budget import resolve_budget
from biocoreset.selectors.debias import check_debias, debias_values
from biocoreset.store.result import ScoreResult

__all__ = ["DEBIAS_METHODS", "Selection", "StrataPlan", "run_selector", "select"]

DEBIAS_METHODS = ("topk", "cci")
"""Selectors that take ``debias="length"``."""


@runtime_checkable
class StrataPlan(Protocol):
    """A :attr:`Selection.plan` over strata of the score range (CCI's), which the selection record
    (``"cci"`` in ``selection.json``) and the selection plot show.

    Attributes:
        cut: Indices removed before stratifying (the β cut).
        edges: The strata's bin edges (one more than the strata).
        sizes: Examples per stratum.
        taken: Examples selected per stratum.
    """

    cut: np.ndarray
    edges: np.ndarray
    sizes: np.ndarray
    taken: np.ndarray


@attrs.frozen(kw_only=True)
class Selection:
    """A selected coreset.

    Attributes:
        indices: Selected row indices (ascending) into the scores.
        ids: Selected ids (``None`` when plain scores were given).
        method: Selector name.
        budget: Number selected (the requested budget, except where a selector documents that it
            may return fewer, e.g. CCI with ``edges="released"``).
        seed: Seed used.
        options: Selector options as resolved (every option of an attrs selector, with ``"auto"``
            directions resolved for the scores' sign convention).
        plan: The selector's plan where it has one (CCI: cut, strata, counts, a
            :class:`StrataPlan`), else ``None``.
            With ``debias`` its values (edges, cut) are on the length-conditional scale.
        debias: The length control's fit (:meth:`biocoreset.stats.LengthControl.summary` plus
            ``"debias": "length"``) when the selection was made with ``debias="length"``, else
            ``None``.
    """

    indices: np.ndarray
    ids: list[str] | None
    method: str
    budget: int
    seed: int
    options: dict[str, Any]
    plan: Any = None
    debias: dict[str, Any] | None = None


def select(
    scores: ScoreResult | Sequence[float] | np.ndarray,
    method: str = "cci",
    *,
    budget: int | float,
    seed: int = 0,
    negated: bool | None = None,
    debias: str | None = None,
    lengths: Sequence[int] | np.ndarray | None = None,
    ids: Sequence[str] | None = None,
    **options: Any,
) -> Selection:
    """Select a coreset from scores.

    Args:
        scores: A :class:`ScoreResult` or an array of scores (a float32 array keeps its precision
            for the selectors' released-code modes).
        method: Selector name: ``"cci"`` (default), ``"topk"``, ``"random"``, ``"cluster"`` (needs
            a :class:`ScoreResult` and ``clusters=<MMseqs2 cluster TSV>``) or a plugin's.
        budget: A count, or a fraction of the number of scores.
        seed: Seed of random choices.
        negated: Whether the scores are stored as ``-I(z)`` (lower = more influential, the
            ``paper-compat`` convention). ``None``: read from the :class:`ScoreResult`'s metadata,
            ``False`` for plain arrays. Selectors with a direction (``topk``'s ``largest``,
            ``cci``'s ``cut``) default to the most influential end either way.
        debias: ``None`` (default, the paper's selection) or ``"length"``: ``topk`` ranks and
            ``cci`` stratifies the length-conditional score instead (each log score compared with
            those of similar length, :mod:`biocoreset.selectors.debias`); the fit is recorded in
            :attr:`Selection.debias`.
        lengths: Sequence lengths for ``debias`` with plain scores (a :class:`ScoreResult` has
            them).
        ids: Sequence ids of plain scores, one per score (a :class:`ScoreResult` has them); the
            ``cluster`` selector needs them.
        **options: Selector options (CCI: ``beta=0.05``, ``strata=50``...).

    Raises:
        BudgetError: The budget is not positive or exceeds the number of scores.
        ConfigError: An unknown ``debias``, or ``debias`` with a selector other than ``topk`` and
            ``cci``, or without lengths.
        InputError: Scores that are empty, complex, not numbers, not one-dimensional, or NaN.

    >>> select([0.3, 0.1, 0.9, 0.5], "topk", budget=2).indices.tolist()
    [2, 3]
    >>> select([0.3, 0.1, 0.9, 0.5], "topk", budget=2, negated=True).indices.tolist()
    [0, 1]
    >>> L = np.repeat([10, 100], 40); s = 1e3 / L * np.tile(np.linspace(1, 2, 40), 2)
    >>> np.unique(L[select(s, "topk", budget=10, debias="length", lengths=L).indices]).tolist()
    [10, 100]
    """
    cfg = SelectConfig(method=method, budget=budget, seed=seed, options=options)
    if isinstance(scores, ScoreResult):
        ids = scores.ids
    if negated is None:
        negated = bool(scores.metadata.get("negated")) if isinstance(scores, ScoreResult) else False
    values = scores.scores if isinstance(scores, ScoreResult) else _as_scores(scores)
    if lengths is None and isinstance(scores, ScoreResult):
        lengths = scores.length
    return run_selector(values, cfg, negated=bool(negated), ids=ids, debias=debias, lengths=lengths)


def _as_scores(values: Any) -> np.ndarray:
    """``values`` as a 1-D float array, or an :class:`InputError` naming what is wrong."""
    if values is None:
        raise InputError(
            "scores is None; pass one number per sequence (a list or array), or a ScoreResult "
            "from biocoreset.score()."
        )
    if np.iscomplexobj(values):
        flat = np.ravel(np.asarray(values))
        odd = np.flatnonzero(flat.imag != 0)
        at = f"e.g. {complex(flat[odd[0]])!r} at index {int(odd[0])}" if odd.size else "0j parts"
        raise InputError(
            f"scores are complex numbers ({at}); pass real scores, one number per "
            "sequence (np.real(scores) if the imaginary parts are meant to be zero)."
        )
    try:
        arr = np.asarray(values)
        if arr.dtype != np.float32:
            arr = arr.astype(np.float64, copy=False)
    except (TypeError, ValueError) as exc:
        bad = next((v for v in np.ravel(np.asarray(values, dtype=object)) if not _number(v)), None)
        raise InputError(
            f"scores must be numbers, got {bad!r} ({type(bad).__name__}) among them; pass one "
            "number per sequence."
        ) from exc
    if arr.ndim != 1:
        raise InputError(
            f"scores must be one-dimensional (one number per sequence), got "
            f"{'a single value' if arr.ndim == 0 else f'shape {arr.shape}'} ({type(values).__name__})."
        )
    if arr.size == 0:
        raise InputError(
            "scores are empty (no sequences to select from); pass one number per sequence."
        )
    return arr


def _number(v: Any) -> bool:
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return not isinstance(v, (str, bytes))


def run_selector(
    values: np.ndarray,
    cfg: SelectConfig,
    *,
    negated: bool = False,
    ids: Sequence[str] | None = None,
    debias: str | None = None,
    lengths: Sequence[int] | np.ndarray | None = None,
) -> Selection:
    """Select ``cfg.budget`` of ``values`` with the selector ``cfg.method`` (options checked by the
    selector; directions oriented by ``negated``).

    Args:
        values: One score per sequence (float32 is kept, anything else becomes float64).
        cfg: Method, budget, seed and options.
        negated: Whether the scores are ``-I(z)``.
        ids: The sequences' ids (``None``: the selection has no ids).
        debias: ``None`` or ``"length"`` (see :func:`select`).
        lengths: One length per score (needed with ``debias``).

    Raises:
        BudgetError: The budget is not positive or exceeds the number of scores.
        InputError: Scores that are empty, complex, not numbers or not one-dimensional.

    >>> run_selector(np.array([0.3, 0.1, 0.9]), SelectConfig(method="topk", budget=1)).indices
    array([2])
    """
    values = _as_scores(values)
    k = resolve_budget(cfg.budget, values.size)
    fit = None
    if check_debias(debias) is not None:
        if cfg.method not in DEBIAS_METHODS:
            raise ConfigError(
                f"debias={debias!r} applies to the selectors {', '.join(DEBIAS_METHODS)}, not "
                f"{cfg.method!r}; drop debias or choose one of them."
            )
        if lengths is None:
            raise ConfigError(
                f"debias={debias!r} needs the sequence lengths: pass a ScoreResult or lengths=."
            )
        values, fit = debias_values(values, np.asarray(lengths), negated=bool(negated))
        fit = {"debias": debias, **fit}
        negated = False  # the length-conditional score is oriented: higher = more influential
    selector = get_registry().get("selector", cfg.method).factory(**cfg.options)
    if isinstance(selector, OrientedSelector):
        selector = selector.oriented(bool(negated))
    resolved = attrs.asdict(selector) if attrs.has(type(selector)) else dict(cfg.options)
    if isinstance(selector, IdentifiedSelector):
        if ids is None:
            raise ConfigError(
                f"the {cfg.method!r} selector needs the scored sequences' ids: select from a "
                "ScoreResult (or a score file), not a plain array."
            )
        if len(ids) != values.size:
            raise InputError(f"{len(ids)} ids for {values.size} scores; pass one id per score.")
        selector = selector.with_ids(ids)
    plan = (
        selector.plan(values, k, seed=cfg.seed) if isinstance(selector, PlanningSelector) else None
    )
    chosen = plan.selected if plan is not None else selector.select(values, k, seed=cfg.seed)
    idx = np.asarray(chosen, dtype=np.int64)
    return Selection(
        indices=idx,
        ids=[ids[i] for i in idx.tolist()] if ids is not None else None,
        method=cfg.method,
        budget=int(idx.size),
        seed=cfg.seed,
        options=resolved,
        plan=plan,
        debias=fit,
    )

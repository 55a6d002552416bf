"""Running a selector on scores: the engine behind :func:`biocoreset.select`.

Example:
    >>> from biocoreset.config import SelectConfig
    >>> run_selector(np.array([0.3, 0.1, 0.9]), SelectConfig(method="topk", budget=1)).indices
    array([2])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np

from biocoreset.config import SelectConfig
from biocoreset.errors import InputError
from biocoreset.plugins import get_registry
from biocoreset.selectors.budget import resolve_budget

__all__ = ["Selection", "run_selector"]


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
        plan: The selector's plan where it has one (CCI: cut, strata, counts), else ``None``.
    """

    indices: np.ndarray
    ids: list[str] | None
    method: str
    budget: int
    seed: int
    options: dict[str, Any]
    plan: Any = None


def run_selector(
    values: np.ndarray,
    cfg: SelectConfig,
    *,
    negated: bool = False,
    ids: Sequence[str] | None = None,
) -> Selection:
    """Select ``cfg.budget`` of ``values`` with the selector ``cfg.method`` (options checked by the
    selector; directions oriented by ``negated``).

    Args:
        values: One score per sequence (float32 is kept, anything else becomes float64).
        cfg: Method, budget, seed and options.
        negated: Whether the scores are ``-I(z)``.
        ids: The sequences' ids (``None``: the selection has no ids).

    Raises:
        BudgetError: The budget is not positive or exceeds the number of scores.
        InputError: Scores that are not one-dimensional.
    """
    values = np.asarray(values)
    if values.dtype != np.float32:
        values = values.astype(np.float64, copy=False)
    if values.ndim != 1:
        raise InputError(f"scores must be one-dimensional, got shape {values.shape}.")
    k = resolve_budget(cfg.budget, values.size)
    selector: Any = get_registry().get("selector", cfg.method).factory(**cfg.options)
    if hasattr(selector, "oriented"):
        selector = selector.oriented(bool(negated))
    plan = selector.plan(values, k, seed=cfg.seed) if hasattr(selector, "plan") else None
    chosen = plan.selected if plan is not None else selector.select(values, k, seed=cfg.seed)
    idx = np.asarray(chosen, dtype=np.int64)
    resolved = attrs.asdict(selector) if attrs.has(type(selector)) else dict(cfg.options)
    return Selection(
        indices=idx,
        ids=[ids[i] for i in idx.tolist()] if ids is not None else None,
        method=cfg.method,
        budget=int(idx.size),
        seed=cfg.seed,
        options=resolved,
        plan=plan,
    )

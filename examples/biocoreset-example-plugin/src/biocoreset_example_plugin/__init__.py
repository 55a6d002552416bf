"""An example biocoreset plugin: the ``quantile-strata`` selector."""

from __future__ import annotations

from typing import Any

import numpy as np

import biocoreset

__all__ = ["QuantileStrataSelector", "biocoreset_register_selectors"]


class QuantileStrataSelector:
    """Split the sequences into ``strata`` groups of (nearly) equal size by score rank, then take
    (nearly) the same number uniformly at random from each.

    Args:
        strata: Number of quantile strata.
    """

    name = "quantile-strata"

    def __init__(self, *, strata: int = 10) -> None:
        if int(strata) < 1:
            raise ValueError(f"strata must be >= 1, got {strata!r}")
        self.strata = int(strata)

    def select(self, scores: np.ndarray, budget: int, *, seed: int = 0) -> np.ndarray:
        """Indices of the selected rows, ascending."""
        scores = np.asarray(scores, dtype=np.float64)
        if not np.all(np.isfinite(scores)):
            raise ValueError("scores must be finite")
        if not 1 <= budget <= scores.size:
            raise ValueError(f"budget must be in [1, {scores.size}], got {budget}")
        rng = np.random.default_rng(seed)
        groups = np.array_split(np.argsort(scores, kind="stable"), min(self.strata, scores.size))
        quota = np.full(len(groups), budget // len(groups))
        quota[: budget % len(groups)] += 1
        chosen, spare = [], budget
        for group, q in zip(groups, quota, strict=True):
            take = min(int(q), group.size)
            chosen.append(rng.choice(group, size=take, replace=False))
            spare -= take
        picked = np.concatenate(chosen)
        if spare:  # groups smaller than their quota: fill from what is left
            rest = np.setdiff1d(np.arange(scores.size), picked)
            picked = np.concatenate([picked, rng.choice(rest, size=spare, replace=False)])
        return np.sort(picked).astype(np.int64)


@biocoreset.hookimpl
def biocoreset_register_selectors(register: Any) -> None:
    """Register ``quantile-strata``."""
    register(
        "quantile-strata",
        QuantileStrataSelector,
        description="equal-count score strata (example plugin)",
    )

"""The ``identity`` curvature: ``I(z) = ‖g_z‖²`` (no fit, no damping)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from biocoreset.plugins.hookspecs import hookimpl
from biocoreset.protocols import LayerFactors, ParamBlock

__all__ = ["IdentityCurvature"]


class IdentityCurvature:
    """``C = I``: the score is the squared gradient norm. Damping is ignored and recorded as 0.

    >>> IdentityCurvature().needs_fit
    False
    """

    name = "identity"
    needs_fit = False

    def __init__(self, **_: Any) -> None:
        self.blocks: list[ParamBlock] = []

    def fit_begin(self, blocks: Sequence[ParamBlock]) -> None:
        """Nothing to allocate."""
        self.blocks = list(blocks)

    def fit_accumulate(self, factors: LayerFactors) -> None:
        """Nothing to accumulate."""

    def fit_end(
        self, num_samples: int, reduce: Callable[[torch.Tensor], None] | None = None
    ) -> None:
        """Nothing to finalise."""

    def quadratic_form(self, factors: LayerFactors) -> torch.Tensor:
        """``‖g_b‖²`` over the block, float64."""
        return factors.squared_norms().to(torch.float64)

    def metadata(self) -> dict[str, Any]:
        """Records ``damping = 0``."""
        return {"curvature": self.name, "damping": 0.0}


@hookimpl
def biocoreset_register_curvatures(register: Any) -> None:
    """Register ``identity``."""
    register("identity", IdentityCurvature, description="C = I: squared gradient norm")

"""The ``identity`` curvature: ``I(z) = ‖g_z‖²`` (no fit, no damping)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import attrs
import torch

from biocoreset.protocols import LayerFactors, ParamBlock

__all__ = ["IdentityCurvature"]


@attrs.define(kw_only=True, eq=False, slots=False)
class IdentityCurvature:
    """``C = I``: the score is the squared gradient norm. Damping is ignored and recorded as 0.

    Args:
        damping: Accepted (every curvature is built with it) and ignored.
        damping_relative: Accepted and ignored.

    >>> IdentityCurvature().needs_fit
    False
    """

    name: ClassVar[str] = "identity"
    needs_fit: ClassVar[bool] = False

    damping_option: float | None = attrs.field(default=None, alias="damping")
    damping_relative: float | None = None
    blocks: list[ParamBlock] = attrs.field(factory=list, init=False, repr=False)

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

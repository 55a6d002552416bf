"""The ``self-influence`` scorer: ``I(z) = g_zᵀ C⁻¹ g_z`` summed over parameter blocks (Eq. 11)."""

from __future__ import annotations

from typing import ClassVar

import attrs
import torch

from biocoreset.errors import ConfigError
from biocoreset.protocols import Batch, CurvatureEstimator, Engine, LayerFactors, ModelAdapter

__all__ = ["SelfInfluenceScorer"]


@attrs.frozen(kw_only=True)
class SelfInfluenceScorer:
    """Subset-based self-influence with the fitted curvature.

    >>> SelfInfluenceScorer().needs_curvature
    True
    """

    name: ClassVar[str] = "self-influence"
    needs_curvature: ClassVar[bool] = True
    needs_gradients: ClassVar[bool] = True

    def score_batch(
        self,
        adapter: ModelAdapter,
        batch: Batch,
        engine: Engine,
        curvature: CurvatureEstimator | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the engine once and sum the curvature's quadratic form over blocks."""
        if curvature is None:
            raise ConfigError("the 'self-influence' scorer needs a curvature (e.g. 'diagonal').")
        total = torch.zeros(len(batch), dtype=torch.float64)

        def on_block(factors: LayerFactors) -> None:
            total.add_(curvature.quadratic_form(factors).to(total.device, torch.float64))

        losses = engine.run(batch, on_block)
        return total, losses.to("cpu", torch.float64)

"""The ``self-influence`` scorer: ``I(z) = g_zᵀ C⁻¹ g_z`` summed over parameter blocks (Eq. 11)."""

from __future__ import annotations

from typing import ClassVar

import attrs
import torch

from biocoreset.errors import ConfigError
from biocoreset.grads.totals import BatchTotal
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
        """Run the engine once and sum the curvature's quadratic form over blocks (on the device;
        the batch's scores and losses reach the host in one transfer)."""
        if curvature is None:
            raise ConfigError("the 'self-influence' scorer needs a curvature (e.g. 'diagonal').")
        total = BatchTotal(len(batch))

        def on_block(factors: LayerFactors) -> None:
            total.add(curvature.quadratic_form(factors))

        losses = engine.run(batch, on_block)
        scores, host_losses = total.to_host(losses)
        return scores, host_losses

"""The ``self-influence`` scorer: ``I(z) = g_zᵀ C⁻¹ g_z`` summed over parameter blocks (Eq. 11)."""

from __future__ import annotations

from typing import Any

import torch

from biocoreset.errors import ConfigError
from biocoreset.grads.totals import BatchTotal
from biocoreset.plugins.hookspecs import hookimpl
from biocoreset.protocols import Batch, CurvatureEstimator, LayerFactors, ModelAdapter

__all__ = ["SelfInfluenceScorer"]


class SelfInfluenceScorer:
    """Subset-based self-influence with the fitted curvature.

    >>> SelfInfluenceScorer().needs_curvature
    True
    """

    name = "self-influence"
    needs_curvature = True
    needs_gradients = True

    def __init__(self, **_: Any) -> None:
        pass

    def score_batch(
        self, adapter: ModelAdapter, batch: Batch, engine: Any, curvature: CurvatureEstimator | None
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


@hookimpl
def biocoreset_register_scorers(register: Any) -> None:
    """Register ``self-influence``."""
    register("self-influence", SelfInfluenceScorer, description="g_zᵀ (C + λ)⁻¹ g_z (paper Eq. 11)")

"""The ``grad-norm`` scorer: ``‖g_z‖`` (a baseline; the square root of identity self-influence)."""

from __future__ import annotations

from typing import Any

import torch

from biocoreset.grads.totals import BatchTotal
from biocoreset.plugins.hookspecs import hookimpl
from biocoreset.protocols import Batch, CurvatureEstimator, LayerFactors, ModelAdapter

__all__ = ["GradNormScorer"]


class GradNormScorer:
    """Score = Euclidean norm of the per-sample gradient over the scored parameters.

    >>> GradNormScorer().needs_curvature
    False
    """

    name = "grad-norm"
    needs_curvature = False
    needs_gradients = True

    def __init__(self, **_: Any) -> None:
        pass

    def score_batch(
        self, adapter: ModelAdapter, batch: Batch, engine: Any, curvature: CurvatureEstimator | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sum squared norms over blocks, then take the square root."""
        total = BatchTotal(len(batch))

        def on_block(factors: LayerFactors) -> None:
            total.add(factors.squared_norms())

        losses = engine.run(batch, on_block)
        squares, host_losses = total.to_host(losses)
        return squares.sqrt(), host_losses


@hookimpl
def biocoreset_register_scorers(register: Any) -> None:
    """Register ``grad-norm``."""
    register("grad-norm", GradNormScorer, description="per-sample gradient norm (baseline)")

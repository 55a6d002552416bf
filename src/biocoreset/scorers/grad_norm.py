"""The ``grad-norm`` scorer: ``‖g_z‖`` (a baseline; the square root of identity self-influence)."""

from __future__ import annotations

from typing import ClassVar

import attrs
import torch

from biocoreset.grads.totals import BatchTotal
from biocoreset.protocols import Batch, CurvatureEstimator, Engine, LayerFactors, ModelAdapter

__all__ = ["GradNormScorer"]


@attrs.frozen(kw_only=True)
class GradNormScorer:
    """Score = Euclidean norm of the per-sample gradient over the scored parameters.

    >>> GradNormScorer().needs_curvature
    False
    """

    name: ClassVar[str] = "grad-norm"
    needs_curvature: ClassVar[bool] = False
    needs_gradients: ClassVar[bool] = True

    def score_batch(
        self,
        adapter: ModelAdapter,
        batch: Batch,
        engine: Engine,
        curvature: CurvatureEstimator | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sum squared norms over blocks, then take the square root."""
        total = BatchTotal(len(batch))

        def on_block(factors: LayerFactors) -> None:
            total.add(factors.squared_norms())

        losses = engine.run(batch, on_block)
        squares, host_losses = total.to_host(losses)
        return squares.sqrt(), host_losses

"""The ``grad-norm`` scorer: ``‖g_z‖`` (a baseline; the square root of identity self-influence)."""

from __future__ import annotations

from typing import ClassVar

import attrs
import torch

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
        total = torch.zeros(len(batch), dtype=torch.float64)

        def on_block(factors: LayerFactors) -> None:
            total.add_(factors.squared_norms().to("cpu", torch.float64))

        losses = engine.run(batch, on_block)
        return total.sqrt(), losses.to("cpu", torch.float64)

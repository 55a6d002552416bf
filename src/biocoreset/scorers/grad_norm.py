"""The ``grad-norm`` scorer: ``‖g_z‖`` (a baseline; the square root of identity self-influence)."""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import torch

from biocoreset.protocols import CurvatureEstimator, LayerFactors
from biocoreset.scorers.base import BlockScorer

__all__ = ["GradNormScorer"]


@attrs.frozen(kw_only=True)
class GradNormScorer(BlockScorer):
    """Score = Euclidean norm of the per-sample gradient over the scored parameters.

    >>> GradNormScorer().needs_curvature
    False
    """

    name: ClassVar[str] = "grad-norm"  # needs gradients, no curvature (the base's defaults)

    def block_values(
        self, factors: LayerFactors, curvature: CurvatureEstimator | None
    ) -> torch.Tensor:
        """The block's squared norms (summed over blocks, then square-rooted)."""
        return factors.squared_norms()

    def finish(self, totals: torch.Tensor) -> torch.Tensor:
        """The square root of the summed squared norms."""
        return totals.sqrt()

    def reference_scores(self, brute_force: Any, curvature: Any) -> torch.Tensor:
        """``‖g‖`` of the brute-force per-sample gradients (for the conformance kit)."""
        return sum(g.square().sum(1) for g in brute_force.grads.values()).sqrt()

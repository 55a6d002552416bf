"""The ``self-influence`` scorer: ``I(z) = g_zᵀ C⁻¹ g_z`` summed over parameter blocks (Eq. 11)."""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import torch

from biocoreset.errors import ConfigError
from biocoreset.protocols import CurvatureEstimator, LayerFactors
from biocoreset.scorers.base import BlockScorer

__all__ = ["SelfInfluenceScorer"]


@attrs.frozen(kw_only=True)
class SelfInfluenceScorer(BlockScorer):
    """Subset-based self-influence with the fitted curvature: the curvature's quadratic form summed
    over blocks (on the device; the batch's scores and losses reach the host in one transfer).

    >>> SelfInfluenceScorer().needs_curvature
    True
    """

    name: ClassVar[str] = "self-influence"
    needs_curvature: ClassVar[bool] = True
    needs_gradients: ClassVar[bool] = True

    def check(self, curvature: CurvatureEstimator | None) -> None:
        """Refuse a missing curvature."""
        if curvature is None:
            raise ConfigError("the 'self-influence' scorer needs a curvature (e.g. 'diagonal').")

    def block_values(
        self, factors: LayerFactors, curvature: CurvatureEstimator | None
    ) -> torch.Tensor:
        """The curvature's quadratic form on the block."""
        assert curvature is not None  # check() ran first
        return curvature.quadratic_form(factors)

    def reference_scores(
        self, brute_force: Any, curvature: CurvatureEstimator | None
    ) -> torch.Tensor:
        """``Σ_blocks gᵀ K g`` of the brute-force per-sample gradients, ``K`` the matrix the
        fitted curvature applies (for the conformance kit)."""
        assert curvature is not None
        return brute_force.quadratic_forms(curvature)

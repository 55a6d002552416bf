"""The ``loss`` scorer: the per-sample masked-LM loss, a cheap baseline (forward only)."""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import torch

from biocoreset.protocols import Batch, ModelAdapter
from biocoreset.scorers.base import BlockScorer

__all__ = ["LossScorer"]


@attrs.frozen(kw_only=True)
class LossScorer(BlockScorer):
    """Score = per-sample masked-LM loss (no gradients, no curvature).

    >>> LossScorer().needs_gradients
    False
    """

    name: ClassVar[str] = "loss"
    needs_curvature: ClassVar[bool] = False
    needs_gradients: ClassVar[bool] = False

    def forward_scores(
        self, adapter: ModelAdapter, batch: Batch
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One forward pass without gradients."""
        with torch.no_grad():
            loss = adapter.per_sample_loss(batch).to("cpu", torch.float64)
        return loss.clone(), loss

    def reference_scores(self, brute_force: Any, curvature: Any) -> torch.Tensor:
        """The brute-force per-sample losses (for the conformance kit)."""
        return brute_force.losses

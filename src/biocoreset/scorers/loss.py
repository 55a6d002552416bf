"""The ``loss`` scorer: the per-sample masked-LM loss, a cheap baseline (forward only)."""

from __future__ import annotations

from typing import Any

import torch

from biocoreset.plugins.hookspecs import hookimpl
from biocoreset.protocols import Batch, CurvatureEstimator, ModelAdapter

__all__ = ["LossScorer"]


class LossScorer:
    """Score = per-sample masked-LM loss (no gradients, no curvature).

    >>> LossScorer().needs_gradients
    False
    """

    name = "loss"
    needs_curvature = False
    needs_gradients = False

    def __init__(self, **_: Any) -> None:
        pass

    def score_batch(
        self, adapter: ModelAdapter, batch: Batch, engine: Any, curvature: CurvatureEstimator | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One forward pass without gradients."""
        with torch.no_grad():
            loss = adapter.per_sample_loss(batch).to("cpu", torch.float64)
        return loss.clone(), loss


@hookimpl
def biocoreset_register_scorers(register: Any) -> None:
    """Register ``loss``."""
    register("loss", LossScorer, description="per-sample masked-LM loss (baseline)")

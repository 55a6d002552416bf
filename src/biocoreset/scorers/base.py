"""The per-block loop every built-in scorer shares.

A scorer that needs gradients runs the engine once per batch and adds one ``[B]`` value per
parameter block (:meth:`BlockScorer.block_values`) into a :class:`~biocoreset.grads.totals.BatchTotal`;
the batch's totals and losses reach the host in one transfer. A scorer without gradients
(``needs_gradients = False``) answers from a forward pass (:meth:`BlockScorer.forward_scores`).
"""

from __future__ import annotations

from typing import ClassVar

import torch

from biocoreset.grads.totals import BatchTotal
from biocoreset.protocols import Batch, CurvatureEstimator, Engine, LayerFactors, ModelAdapter

__all__ = ["BlockScorer"]

Curvature = CurvatureEstimator | None
"""A scorer's curvature: fitted, or ``None`` for scorers without one."""


class BlockScorer:
    """Base of the built-in scorers: :meth:`score_batch` once, the per-block value in subclasses.

    Subclasses set ``name``, ``needs_curvature`` and ``needs_gradients`` and override
    :meth:`block_values` (and :meth:`finish`, to map the summed values to scores) or, without
    gradients, :meth:`forward_scores`.
    """

    name: ClassVar[str]
    needs_curvature: ClassVar[bool] = False
    needs_gradients: ClassVar[bool] = True

    def score_batch(
        self, adapter: ModelAdapter, batch: Batch, engine: Engine, curvature: Curvature
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(scores [B] float64, losses [B] float64)``: the sum of :meth:`block_values` over the
        blocks, through :meth:`finish` (or :meth:`forward_scores` without gradients)."""
        if not self.needs_gradients:
            return self.forward_scores(adapter, batch)
        self.check(curvature)
        total = BatchTotal(len(batch))

        def on_block(factors: LayerFactors) -> None:
            total.add(self.block_values(factors, curvature))

        losses = engine.run(batch, on_block)
        values, host_losses = total.to_host(losses)
        return self.finish(values), host_losses

    def check(self, curvature: CurvatureEstimator | None) -> None:
        """Refuse a missing component before any work (default: nothing to check)."""

    def block_values(
        self, factors: LayerFactors, curvature: CurvatureEstimator | None
    ) -> torch.Tensor:
        """``[B]`` float64 values of one block."""
        raise NotImplementedError

    def finish(self, totals: torch.Tensor) -> torch.Tensor:
        """The scores from the summed block values (default: the sums)."""
        return totals

    def forward_scores(
        self, adapter: ModelAdapter, batch: Batch
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(scores, losses)`` from a forward pass (scorers with ``needs_gradients = False``)."""
        raise NotImplementedError

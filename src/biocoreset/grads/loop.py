"""The reference per-sample gradient path: one forward pass, one ``autograd.grad`` per sample.

Exact for any model whose per-sample losses are batch-separable, whatever the parameters are used
for (tied weights, bare biases, functional calls). It holds the per-sample gradients of one batch
for the scored parameters (``B × P`` numbers), never those of the whole data set. The hook engine
(:mod:`biocoreset.grads.engine`) is the fast path; this one is its fallback and its reference.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from biocoreset.protocols import Batch, LayerFactors, ModelAdapter, ParamBlock

__all__ = ["LoopEngine", "blocks_by_module"]


def blocks_by_module(
    params: Mapping[str, torch.nn.Parameter], kind: str = "generic"
) -> list[ParamBlock]:
    """Group parameters by owning module (the name up to the last dot), in the given order."""
    grouped: dict[str, dict[str, torch.nn.Parameter]] = {}
    for name, p in params.items():
        owner = name.rpartition(".")[0]
        grouped.setdefault(owner, {})[name] = p
    return [ParamBlock(name=owner, kind=kind, params=ps) for owner, ps in grouped.items()]


class LoopEngine:
    """Per-sample gradients by a loop of ``torch.autograd.grad`` calls over one shared forward.

    Args:
        adapter: The model adapter (its ``per_sample_loss`` defines the loss).
        params: Scored parameters by qualified name.
        dtype: Optional dtype the per-sample gradients are cast to (e.g. ``torch.float64``).
    """

    name = "loop"

    def __init__(
        self,
        adapter: ModelAdapter,
        params: Mapping[str, torch.nn.Parameter],
        *,
        dtype: torch.dtype | None = None,
    ) -> None:
        self.adapter = adapter
        self.params = dict(params)
        self.dtype = dtype
        self.blocks = blocks_by_module(self.params)

    def run(
        self, batch: Batch, on_block: Callable[[LayerFactors], None] | None = None
    ) -> torch.Tensor:
        """Compute per-sample losses and hand each block's per-sample gradients to ``on_block``.

        Returns:
            ``[B]`` detached per-sample losses.
        """
        names = list(self.params)
        tensors = [self.params[n] for n in names]
        with torch.enable_grad():
            loss = self.adapter.per_sample_loss(batch)
            if on_block is None:
                return loss.detach()
            B = loss.shape[0]
            per = {
                n: torch.zeros((B, *p.shape), dtype=self.dtype or p.dtype, device=p.device)
                for n, p in zip(names, tensors, strict=True)
            }
            for b in range(B):
                grads = torch.autograd.grad(
                    loss[b], tensors, retain_graph=b < B - 1, allow_unused=True
                )
                for n, g in zip(names, grads, strict=True):
                    if g is not None:
                        per[n][b] = g
        for block in self.blocks:
            sub = {n: per[n] for n in block.params}
            on_block(LayerFactors(block, B, _returning(sub)))
        return loss.detach()


def _returning(grads: dict[str, torch.Tensor]) -> Callable[[], dict[str, torch.Tensor]]:
    """A function returning ``grads`` (bound now, not when the loop variable changes)."""
    return lambda: grads

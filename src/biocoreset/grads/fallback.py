"""Exact per-sample gradients of parameters no handler covers, by batched autograd on the sub-graph.

Some parameters are used outside any handled module call: ``EsmForMaskedLM``'s ``lm_head.bias``
(added after the decoder), weights passed to ``F.linear`` or ``F.multi_head_attention_forward``.
For those, the gradient of ``loss[b]`` is taken directly — with :func:`torch.autograd.grad` and
``is_grads_batched=True`` (``torch.vmap`` over the backward pass, seeded with the rows of the
identity), so autograd only walks the part of the graph between the loss and those parameters, once
for all ``B`` samples. Where a backward formula has no batching rule, it falls back to one
``autograd.grad`` per sample on the same retained graph.

Example:
    >>> import torch
    >>> w = torch.nn.Parameter(torch.randn(3))
    >>> x = torch.randn(4, 3)
    >>> loss = (x * w).sum(1) ** 2
    >>> (g,) = per_sample_autograd(loss, [w])
    >>> ref = torch.stack([torch.autograd.grad(loss[b], w, retain_graph=True)[0] for b in range(4)])
    >>> bool(torch.allclose(g, ref))
    True
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch

__all__ = ["per_sample_autograd"]


def per_sample_autograd(
    loss: torch.Tensor, tensors: Sequence[torch.Tensor], *, scale: float = 1.0, batched: bool = True
) -> list[torch.Tensor]:
    """``[B, *t.shape]`` gradients of each ``loss[b]`` (times ``scale``) w.r.t. each of ``tensors``.

    The graph is retained. Tensors the loss does not depend on get zeros.

    Args:
        loss: ``[B]`` per-sample losses (batch-separable).
        tensors: Leaves (normally parameters) to differentiate.
        scale: Seed of the backward pass (loss scaling for float16); the result is *not* unscaled.
        batched: Try the vmapped backward first.
    """
    B = loss.shape[0]
    tensors = list(tensors)
    grads: Sequence[torch.Tensor | None] | None = None
    if batched and B > 1:
        seed = torch.eye(B, dtype=loss.dtype, device=loss.device) * scale
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*performance drop.*")
                warnings.filterwarnings("ignore", message=".*batching rule.*")
                grads = torch.autograd.grad(
                    loss,
                    tensors,
                    grad_outputs=seed,
                    retain_graph=True,
                    allow_unused=True,
                    is_grads_batched=True,
                )
        except (RuntimeError, NotImplementedError):
            grads = None
    if grads is None:
        rows: list[list[torch.Tensor | None]] = [[] for _ in tensors]
        seed1 = torch.full((), scale, dtype=loss.dtype, device=loss.device)
        for b in range(B):
            gb = torch.autograd.grad(
                loss[b], tensors, grad_outputs=seed1, retain_graph=True, allow_unused=True
            )
            for i, g in enumerate(gb):
                rows[i].append(g)
        grads = [
            None
            if all(g is None for g in r)
            else torch.stack([g if g is not None else torch.zeros_like(t) for g in r])
            for r, t in zip(rows, tensors, strict=True)
        ]
    return [
        g if g is not None else torch.zeros((B, *t.shape), dtype=t.dtype, device=t.device)
        for g, t in zip(grads, tensors, strict=True)
    ]

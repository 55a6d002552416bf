"""Brute-force float64 references: one sample at a time, ``torch.autograd.grad`` per sample."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def per_sample_grads(
    adapter,
    records: Sequence[tuple[str, str]],
    names: Sequence[str],
    *,
    seed: int = 0,
    draw: int = 0,
    draws: int = 1,
    with_losses: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, np.ndarray]:
    """``[N, P]`` flattened per-sample gradients over ``names``, each from its own forward pass,
    under mask draw ``draw`` of ``draws`` (and, ``with_losses``, the ``[N]`` losses too)."""
    params = dict(adapter.model.named_parameters())
    tensors = [params[n] for n in names]
    rows, losses = [], []
    for rec in records:
        batch = adapter.collate([rec], seed=seed, draw=draw, draws=draws)
        loss = adapter.per_sample_loss(batch)[0]
        grads = torch.autograd.grad(loss, tensors, allow_unused=True)
        rows.append(
            torch.cat(
                [
                    (g if g is not None else torch.zeros_like(t)).reshape(-1).to(torch.float64)
                    for g, t in zip(grads, tensors, strict=True)
                ]
            )
        )
        losses.append(float(loss.detach()))
    if with_losses:
        return torch.stack(rows), np.array(losses)
    return torch.stack(rows)


def diagonal_scores(
    grads: torch.Tensor, subset_rows: Sequence[int], damping: float
) -> torch.Tensor:
    """``Σ_j g_j² / (F_j + λ)`` with ``F`` the mean squared gradient over ``subset_rows``."""
    fisher = grads[list(subset_rows)].pow(2).mean(0)
    return (grads.pow(2) / (fisher + damping)).sum(1)

"""Factors of groups of rows: per-sample gradients summed over the rows of each group.

A batch of ``K × B`` rows whose row ``k·B + b`` is draw ``k`` of sequence ``b`` (``K`` masked copies
of ``B`` sequences, draw-major) gives, through one engine run, each row's factors. The gradient of
sequence ``b`` summed over its draws, ``Σ_k g_{b,k}``, is the gradient of a "group" of rows. For a
linear layer it needs no new product: ``G_b = Σ_k Σ_t δ_{bkt} x_{bkt}ᵀ`` is one sample's factor
product over the ``K·T`` positions of its rows side by side, so :func:`group_factors` only
re-lays the factors ``[K·B, T, d] → [B, K·T, d]`` and a curvature's ``quadratic_form`` (diagonal,
identity, K-FAC, EK-FAC, or any that reads ``inputs``/``output_grads`` or ``per_sample_grads()``)
gives ``‖Σ_k g_{b,k}‖²_W`` at the cost of the per-row form. Embedding tables sum their compact
rows; any other block sums its per-sample gradients.

Example:
    >>> import torch
    >>> from biocoreset.grads.factors import LinearFactors
    >>> from biocoreset.protocols import ParamBlock
    >>> layer = torch.nn.Linear(3, 2).double()
    >>> block = ParamBlock(name="l", kind="linear", params={"l.weight": layer.weight})
    >>> x, g = torch.randn(6, 4, 3, dtype=torch.float64), torch.randn(6, 4, 2, dtype=torch.float64)
    >>> rows = LinearFactors(block, x, g, weight="l.weight", bias=None)
    >>> grouped = group_factors(rows, 3)  # 3 draws of 2 sequences
    >>> per_row = rows.per_sample_grads()["l.weight"].view(3, 2, 2, 3).sum(0)
    >>> bool(torch.allclose(grouped.per_sample_grads()["l.weight"], per_row))
    True
"""

from __future__ import annotations

import torch

from biocoreset.errors import ConfigError
from biocoreset.grads.factors import EmbeddingFactors, LinearFactors
from biocoreset.protocols import LayerFactors

__all__ = ["group_factors", "group_rows"]


def group_rows(t: torch.Tensor, groups: int) -> torch.Tensor:
    """``[K·B, T, ...] → [B, K·T, ...]``: the ``K`` draw-major rows of each sample side by side."""
    n = t.shape[0]
    b = n // groups
    t = t.reshape(groups, b, *t.shape[1:]).transpose(0, 1)
    return t.reshape(b, groups * t.shape[2], *t.shape[3:])


def group_factors(factors: LayerFactors, groups: int, rows: slice | None = None) -> LayerFactors:
    """The factors of ``n // groups`` samples, sample ``b`` being the sum of rows
    ``b, B + b, ..., (groups − 1)·B + b`` (draw-major rows) of the ``n`` rows ``rows`` (all rows
    by default; a contiguous range of whole draws, e.g. the first half of the draws).

    Raises:
        ConfigError: The rows do not split into ``groups`` equal parts.
    """
    pick = rows if rows is not None else slice(None)
    n = len(range(factors.batch_size)[pick])
    if groups < 1 or n % groups or pick.step not in (None, 1):
        raise ConfigError(f"cannot group rows {pick} of {factors.batch_size} into {groups} draws.")
    b = n // groups
    if isinstance(factors, LinearFactors):
        x, g = factors._x[pick], factors._g[pick]
        if x.dim() == 2:  # one position per sample
            x, g = x.unsqueeze(1), g.unsqueeze(1)
        elif x.dim() > 3:
            x, g = x.flatten(1, -2), g.flatten(1, -2)
        return LinearFactors(
            factors.block,
            group_rows(x, groups),
            group_rows(g, groups),
            weight=factors._weight,
            bias=factors._bias,
            fast_path=factors._fast_path,
            dtype=factors.dtype,
            workspace_bytes=factors.workspace_bytes,
        )
    if isinstance(factors, EmbeddingFactors):
        grouped = EmbeddingFactors.__new__(EmbeddingFactors)
        compact = factors._compact[pick]
        grouped._rows = factors._rows
        grouped._compact = compact.reshape(groups, b, *compact.shape[1:]).sum(0)
        grouped._weight = factors._weight

        def dense() -> dict[str, torch.Tensor]:
            full = factors.per_sample_grads()[factors._weight][pick]
            return {factors._weight: full.reshape(groups, b, *full.shape[1:]).sum(0)}

        LayerFactors.__init__(grouped, factors.block, b, dense)
        return grouped

    def summed() -> dict[str, torch.Tensor]:
        return {
            name: t[pick].reshape(groups, b, *t.shape[1:]).sum(0)
            for name, t in factors.per_sample_grads().items()
        }

    inputs, outputs = factors.inputs, factors.output_grads
    if inputs is not None and outputs is not None:  # Kronecker factors of another engine
        return LayerFactors(
            factors.block,
            b,
            summed,
            inputs=group_rows(inputs[pick], groups),
            output_grads=group_rows(outputs[pick], groups),
        )
    return LayerFactors(factors.block, b, summed)

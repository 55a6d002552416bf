""":class:`~biocoreset.protocols.LayerFactors` for linear blocks: Kronecker factors, lazy gradients.

A linear layer's per-sample weight gradient is ``G_b = Σ_t g_bt x_btᵀ`` — the product of the
layer's output gradients and inputs. :class:`LinearFactors` keeps those two factors and only forms
``G_b`` when a curvature asks for it; the squared norm ``‖G_b‖²`` can instead come from the Gram
matrices (the "ghost norm"), ``Σ_{t,s} (x_t·x_s)(g_t·g_s)``, which is cheaper when the sequence is
short relative to the layer: ``T·(d_in + d_out) < d_in·d_out``.

The reductions a diagonal curvature needs — ``Σ_j w_j G_{b,j}²`` while scoring and ``Σ_b G_b²``
while fitting — are computed chunk by chunk (at most :data:`CHUNK_BYTES` of per-sample gradients
at a time, in one reused workspace that stays in cache, reduced at once), never forming
``[B, d_out, d_in]``.
:class:`EmbeddingFactors` does the same for embedding tables, touching only the rows a batch uses.

Example:
    >>> import torch
    >>> from biocoreset.protocols import ParamBlock
    >>> layer = torch.nn.Linear(8, 8)
    >>> block = ParamBlock(name="l", kind="linear", params={"l.weight": layer.weight, "l.bias": layer.bias})
    >>> x, g = torch.randn(2, 3, 8, dtype=torch.float64), torch.randn(2, 3, 8, dtype=torch.float64)
    >>> f = LinearFactors(block, x, g, weight="l.weight", bias="l.bias", fast_path=True)
    >>> tuple(f.inputs.shape)  # a trailing ones column for the bias
    (2, 3, 9)
    >>> ghost = f.squared_norms()
    >>> full = sum(t.flatten(1).pow(2).sum(1) for t in f.per_sample_grads().values())
    >>> bool(torch.allclose(ghost, full))
    True
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping

import torch

from biocoreset.protocols import LayerFactors, ParamBlock

__all__ = ["CHUNK_BYTES", "FAST_PATHS", "EmbeddingFactors", "LinearFactors", "ghost_norm_pays"]

FAST_PATHS = ("auto", True, False)
CHUNK_BYTES = 8 * 2**20
"""Bytes of per-sample gradients formed at once by the chunked reductions."""


def ghost_norm_pays(tokens: int, d_in: int, d_out: int) -> bool:
    """Whether the Gram form of ``‖G_b‖²`` costs less than forming ``G_b``.

    Gram form: ``T²·(d_in + d_out)`` multiply-adds per sample; direct: ``T·d_in·d_out``.

    >>> ghost_norm_pays(128, 640, 2560), ghost_norm_pays(1024, 64, 64)
    (True, False)
    """
    return tokens * (d_in + d_out) < d_in * d_out


def _linear_grads(
    x: torch.Tensor, g: torch.Tensor, weight: str | None, bias: str | None
) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    if weight is not None:
        out[weight] = torch.bmm(g.transpose(1, 2), x)
    if bias is not None:
        out[bias] = g.sum(1)
    return out


class LinearFactors(LayerFactors):
    """Factors of one linear block: ``inputs`` ``[B, T, d_in (+1)]`` and ``output_grads`` ``[B, T, d_out]``.

    Args:
        block: The parameter block (a weight, and the bias when it is scored).
        x: Layer inputs ``[B, T, d_in]`` in the compute dtype.
        g: Output gradients ``[B, T, d_out]`` in the compute dtype (zero at positions that do not
            count in the loss, e.g. padding).
        weight: Qualified name of the weight, or ``None`` when it is not in the block.
        bias: Qualified name of the bias, or ``None`` when the layer has none or it is not scored.
        fast_path: ``"auto"`` (Gram form of :meth:`squared_norms` when it is cheaper), ``True``
            (always) or ``False`` (never).
    """

    def __init__(
        self,
        block: ParamBlock,
        x: torch.Tensor,
        g: torch.Tensor,
        *,
        weight: str | None,
        bias: str | None,
        fast_path: str | bool = "auto",
    ) -> None:
        self._x = x
        self._weight = weight
        self._bias = bias
        self._fast_path = fast_path
        self._inputs: torch.Tensor | None = None
        # A closure, not a bound method: no reference cycle, so the factors (and any per-sample
        # gradients cached on them) are freed as soon as the caller drops them.
        super().__init__(
            block, g.shape[0], lambda: _linear_grads(x, g, weight, bias), output_grads=g
        )

    @property
    def inputs(self) -> torch.Tensor:
        """``[B, T, d_in]`` layer inputs, with a trailing ones column when the bias is in the block."""
        if self._inputs is None:
            x = self._x if self._weight is not None else self._x[..., :0]
            if self._bias is not None:
                x = torch.cat([x, x.new_ones((*x.shape[:-1], 1))], dim=-1)
            self._inputs = x
        return self._inputs

    @inputs.setter
    def inputs(self, value: torch.Tensor | None) -> None:
        if value is not None:
            self._inputs = value

    def uses_ghost_norm(self) -> bool:
        """Whether :meth:`squared_norms` takes the Gram-matrix form (see ``fast_path``)."""
        if self._fast_path is True:
            return True
        if self._fast_path is False or self._weight is None:
            return False
        _, T, d_in = self._x.shape
        return ghost_norm_pays(T, d_in + (self._bias is not None), self.output_grads.shape[-1])  # type: ignore[union-attr]

    def squared_norms(self) -> torch.Tensor:
        """``[B]`` ``‖G_b‖²`` over the block, from the Gram matrices when that pays."""
        if self._grads is not None or not self.uses_ghost_norm():
            return super().squared_norms()
        g = self.output_grads
        assert g is not None
        gg = torch.bmm(g, g.transpose(1, 2))
        if self._weight is not None:
            xx = torch.bmm(self._x, self._x.transpose(1, 2))
            if self._bias is not None:
                xx += 1.0
        else:
            xx = torch.ones_like(gg)
        return (xx * gg).sum((1, 2))

    def _chunks(self, dtype: torch.dtype) -> Iterator[tuple[slice, slice, torch.Tensor]]:
        """``(samples, rows, G[samples, rows])`` chunks of the per-sample weight gradients in ``dtype``.

        Chunks are written into one reused workspace of at most :data:`CHUNK_BYTES`: several samples
        at a time for small layers, a band of output rows of one sample for large ones. (Reusing the
        memory matters: a fresh multi-megabyte tensor per chunk costs page faults on every chunk.)
        """
        x, g = self._x.to(dtype), self.output_grads.to(dtype)  # type: ignore[union-attr]
        B, _, d_in = x.shape
        d_out = g.shape[-1]
        gt = g.transpose(1, 2)  # [B, d_out, T]
        item = torch.finfo(dtype).bits // 8
        per_sample = d_out * d_in * item
        work = _workspace(CHUNK_BYTES // item, dtype, g.device)
        if per_sample <= CHUNK_BYTES:
            k = max(1, min(B, CHUNK_BYTES // max(per_sample, 1)))
            rows = slice(None)
            for lo in range(0, B, k):
                hi = min(lo + k, B)
                G = work[: (hi - lo) * d_out * d_in].view(hi - lo, d_out, d_in)
                torch.bmm(gt[lo:hi], x[lo:hi], out=G)
                yield slice(lo, hi), rows, G
        else:
            step = max(1, CHUNK_BYTES // (d_in * item))
            for b in range(B):
                for lo in range(0, d_out, step):
                    hi = min(lo + step, d_out)
                    G = work[: (hi - lo) * d_in].view(1, hi - lo, d_in)
                    torch.mm(gt[b, lo:hi], x[b], out=G[0])
                    yield slice(b, b + 1), slice(lo, hi), G

    def weighted_squared_norms(self, weights: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``[B]`` float64 ``Σ_j w_j G_{b,j}²``, chunk by chunk (no ``[B, d_out, d_in]`` tensor)."""
        if self._grads is not None:
            return super().weighted_squared_norms(weights)
        g = self.output_grads
        assert g is not None
        dtype = torch.promote_types(g.dtype, next(iter(weights.values())).dtype)
        acc = torch.zeros(self.batch_size, dtype=dtype, device=g.device)
        if self._weight is not None:
            w = weights[self._weight].to(dtype)
            for samples, rows, G in self._chunks(dtype):
                part = acc[samples]
                part.addmv_(G.square_().view(G.shape[0], -1), w[rows].reshape(-1))
        if self._bias is not None:
            acc.addmv_(g.to(dtype).sum(1).square_(), weights[self._bias].to(dtype))
        return acc.to(device="cpu", dtype=torch.float64)

    def sum_squared_grads(self, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
        """``Σ_b G_b²`` per parameter, chunk by chunk."""
        if self._grads is not None:
            return super().sum_squared_grads(dtype)
        g = self.output_grads
        assert g is not None
        dtype = torch.promote_types(g.dtype, dtype or g.dtype)
        out: dict[str, torch.Tensor] = {}
        if self._weight is not None:
            acc = torch.zeros((g.shape[-1], self._x.shape[-1]), dtype=dtype, device=g.device)
            for _, rows, G in self._chunks(dtype):
                acc[rows] += G.square_().sum(0)
            out[self._weight] = acc
        if self._bias is not None:
            gb = g.to(dtype).sum(1)
            out[self._bias] = gb.square().sum(0)
        return out


_LOCAL = threading.local()


def _workspace(numel: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A flat scratch buffer of ``numel`` elements, reused across calls (per thread, dtype, device)."""
    buffers: dict[tuple[torch.dtype, torch.device], torch.Tensor] = getattr(_LOCAL, "buffers", {})
    _LOCAL.buffers = buffers
    buf = buffers.get((dtype, device))
    if buf is None or buf.numel() < numel:
        buf = torch.empty(numel, dtype=dtype, device=device)
        buffers[(dtype, device)] = buf
    return buf


class EmbeddingFactors(LayerFactors):
    """Factors of one embedding table: token ids ``[B, T]`` and output gradients ``[B, T, d]``.

    The per-sample gradient of sample ``b`` is non-zero only in the rows of the ids it uses; the
    reductions work on those rows alone (``[B, U, d]`` for the ``U`` distinct ids of the batch).

    Args:
        block: The parameter block (the table).
        ids: ``[B, T]`` token ids.
        g: ``[B, T, d]`` output gradients in the compute dtype.
        weight: Qualified name of the table.
        num_embeddings: Rows of the table.
        padding_idx: Row that never receives a gradient, or ``None``.
    """

    def __init__(
        self,
        block: ParamBlock,
        ids: torch.Tensor,
        g: torch.Tensor,
        *,
        weight: str,
        num_embeddings: int,
        padding_idx: int | None,
    ) -> None:
        if padding_idx is not None:
            g = g.masked_fill((ids == padding_idx).unsqueeze(-1), 0.0)
        B, T, d = g.shape
        rows, inverse = torch.unique(ids, return_inverse=True)
        U = rows.numel()
        flat = (inverse + torch.arange(B, device=ids.device).unsqueeze(1) * U).reshape(-1)
        compact = torch.zeros(B * U, d, dtype=g.dtype, device=g.device).index_add_(
            0, flat, g.reshape(B * T, d)
        )
        compact = compact.view(B, U, d)
        self._rows = rows
        self._compact = compact
        self._weight = weight

        def dense(
            compact: torch.Tensor = compact, rows: torch.Tensor = rows
        ) -> dict[str, torch.Tensor]:
            out = torch.zeros((B, num_embeddings, d), dtype=compact.dtype, device=compact.device)
            out[:, rows] = compact
            return {weight: out}

        super().__init__(block, B, dense)

    def squared_norms(self) -> torch.Tensor:
        """``[B]`` ``‖G_b‖²`` from the used rows."""
        return self._compact.square().sum((1, 2))

    def weighted_squared_norms(self, weights: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``[B]`` float64 ``Σ_j w_j G_{b,j}²`` over the used rows."""
        w = weights[self._weight]
        dtype = torch.promote_types(self._compact.dtype, w.dtype)
        c = self._compact.to(dtype).square()
        q = c.reshape(c.shape[0], -1) @ w[self._rows].to(dtype).reshape(-1)
        return q.to(device="cpu", dtype=torch.float64)

    def sum_squared_grads(self, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
        """``Σ_b G_b²``: zero outside the used rows."""
        p = self.block.params[self._weight]
        dtype = torch.promote_types(self._compact.dtype, dtype or self._compact.dtype)
        c = self._compact.to(dtype)
        out = torch.zeros(p.shape, dtype=dtype, device=c.device)
        out[self._rows] = c.square().sum(0)
        return {self._weight: out}

""":class:`~biocoreset.protocols.LayerFactors` for linear blocks: Kronecker factors, lazy gradients.

A linear layer's per-sample weight gradient is ``G_b = Σ_t g_bt x_btᵀ`` — the product of the
layer's output gradients and inputs. :class:`LinearFactors` keeps those two factors and only forms
``G_b`` when a curvature asks for it; the squared norm ``‖G_b‖²`` can instead come from the Gram
matrices (the "ghost norm"), ``Σ_{t,s} (x_t·x_s)(g_t·g_s)``, which is cheaper when the sequence is
short relative to the layer: ``T·(d_in + d_out) < d_in·d_out``.

The reductions a diagonal curvature needs — ``Σ_j w_j G_{b,j}²`` while scoring and ``Σ_b G_b²``
while fitting — are computed chunk by chunk in a workspace of per-sample products, sized by device
(:func:`workspace_bytes_for`): :data:`CHUNK_BYTES` (8 MiB, reused, stays in cache) on the CPU, a
fraction of the free memory on a CUDA device, so that there one layer's products for a whole batch
are one batched matmul. ``[B, d_out, d_in]`` is formed at once only when it fits the workspace.
Under bf16 autocast the factors stay in bfloat16 (they are bf16 values: the layer ran in bf16) and
the products are formed in float32 from them — on CUDA by a bf16 matmul with a float32 output,
which gives the same products without upcast copies (see :func:`mixed_products`).
:class:`EmbeddingFactors` does the same for embedding tables, touching only the rows a batch uses.

Per-sample reductions (``[B]`` values) stay on the factors' device, in float64
(:func:`score_dtype`), so a scorer moves one batch's scores to the host once, not once per block.

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
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import torch

from biocoreset.protocols import LayerFactors, ParamBlock

__all__ = [
    "CHUNK_BYTES",
    "CUDA_WORKSPACE_FRACTION",
    "FAST_PATHS",
    "EmbeddingFactors",
    "LinearFactors",
    "ghost_norm_pays",
    "mixed_products",
    "score_dtype",
    "workspace_bytes_for",
]

FAST_PATHS = ("auto", True, False)
CHUNK_BYTES = 8 * 2**20
"""Workspace bytes on the CPU (and any non-CUDA device): per-sample products formed at once."""
CUDA_WORKSPACE_FRACTION = 0.25
"""Fraction of a CUDA device's available memory (free + cached by torch, unused) for the workspace."""
_REUSE_MAX = 64 * 2**20
"""CPU workspaces up to this size are kept and reused across calls (per thread); larger ones are not."""
_HALF = (torch.bfloat16, torch.float16)


def workspace_bytes_for(device: torch.device | str) -> int:
    """Default workspace size for per-sample products on ``device``.

    :data:`CHUNK_BYTES` on the CPU (and MPS, XPU...); on CUDA, :data:`CUDA_WORKSPACE_FRACTION` of
    the memory available now (free on the device plus what torch has cached but not allocated), at
    least :data:`CHUNK_BYTES`. Call it when the batch's activations exist (the engine does so once
    per batch, during the backward pass).

    >>> workspace_bytes_for("cpu") == CHUNK_BYTES
    True
    """
    device = torch.device(device)
    if device.type != "cuda":
        return CHUNK_BYTES
    try:
        free, _ = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    except (RuntimeError, AssertionError):  # no usable CUDA runtime: behave as on the CPU
        return CHUNK_BYTES
    return max(CHUNK_BYTES, int(CUDA_WORKSPACE_FRACTION * (free + max(cached, 0))))


def score_dtype(device: torch.device | str) -> torch.dtype:
    """Dtype of per-sample scores accumulated on ``device``: float64, or float32 where the device has
    no float64 (MPS).

    >>> score_dtype("cpu")
    torch.float64
    """
    return torch.float32 if torch.device(device).type == "mps" else torch.float64


_MIXED: dict[tuple[torch.device, torch.dtype], bool] = {}


def mixed_products(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether ``torch.bmm``/``torch.mm`` take ``dtype`` (bf16/fp16) inputs with a float32 output on
    ``device`` (``out_dtype=``; CUDA builds of recent torch). Probed once per device and dtype.

    The products of bf16 (or fp16) values are exact in float32 and accumulate in float32, so this
    forms the same per-sample gradients as upcasting first, without the upcast copies and on the
    tensor cores.

    >>> mixed_products(torch.device("cpu"), torch.bfloat16)
    False
    """
    if device.type != "cuda" or dtype not in _HALF:
        return False
    key = (device, dtype)
    if key not in _MIXED:
        try:
            a = torch.ones((1, 2, 2), dtype=dtype, device=device)
            out = torch.empty((1, 2, 2), dtype=torch.float32, device=device)
            torch.bmm(a, a, out_dtype=torch.float32, out=out)
            torch.mm(a[0], a[0], out_dtype=torch.float32, out=out[0])
            _MIXED[key] = bool((out == 2).all())
        except (TypeError, RuntimeError, NotImplementedError):
            _MIXED[key] = False
    return _MIXED[key]


def _give_up_mixed(device: torch.device, dtype: torch.dtype, exc: BaseException) -> None:
    """A mixed-precision matmul failed although the probe passed: upcast from now on, and say so."""
    _MIXED[(device, dtype)] = False
    warnings.warn(
        f"{dtype} matmuls with a float32 output failed on {device} ({type(exc).__name__}: "
        f"{str(exc)[:200]}); per-sample products are formed from upcast float32 factors from now on "
        "(the same numbers, slower).",
        RuntimeWarning,
        stacklevel=3,
    )


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
        x: Layer inputs ``[B, T, d_in]``, in the compute dtype or, under autocast, the layer's own
            half dtype (then exactly as the layer saw them).
        g: Output gradients ``[B, T, d_out]``, likewise (zero at positions that do not count in the
            loss, e.g. padding).
        weight: Qualified name of the weight, or ``None`` when it is not in the block.
        bias: Qualified name of the bias, or ``None`` when the layer has none or it is not scored.
        fast_path: ``"auto"`` (Gram form of :meth:`squared_norms` when it is cheaper), ``True``
            (always) or ``False`` (never).
        dtype: Dtype of per-sample quantities (default: that of ``x`` and ``g`` promoted).
            ``inputs``, ``output_grads`` and per-sample gradients are in this dtype.
        workspace_bytes: Bytes of per-sample products formed at once by the chunked reductions
            (default: :func:`workspace_bytes_for` the factors' device).
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
        dtype: torch.dtype | None = None,
        workspace_bytes: int | None = None,
    ) -> None:
        self._x = x
        self._g = g
        self._weight = weight
        self._bias = bias
        self._fast_path = fast_path
        self.dtype = dtype = dtype or torch.promote_types(x.dtype, g.dtype)
        self.workspace_bytes = workspace_bytes
        self._inputs: torch.Tensor | None = None
        self._output_grads: torch.Tensor | None = None
        # A closure, not a bound method: no reference cycle, so the factors (and any per-sample
        # gradients cached on them) are freed as soon as the caller drops them.
        super().__init__(
            block, g.shape[0], lambda: _linear_grads(x.to(dtype), g.to(dtype), weight, bias)
        )

    @property
    def output_grads(self) -> torch.Tensor:
        """``[B, T, d_out]`` output gradients in :attr:`dtype`."""
        if self._output_grads is None:
            self._output_grads = self._g.to(self.dtype)
        return self._output_grads

    @output_grads.setter
    def output_grads(self, value: torch.Tensor | None) -> None:
        if value is not None:
            self._output_grads = value

    @property
    def inputs(self) -> torch.Tensor:
        """``[B, T, d_in]`` layer inputs, with a trailing ones column when the bias is in the block."""
        if self._inputs is None:
            x = self._x.to(self.dtype)
            x = x if self._weight is not None else x[..., :0]
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
        return ghost_norm_pays(T, d_in + (self._bias is not None), self._g.shape[-1])

    def squared_norms(self) -> torch.Tensor:
        """``[B]`` ``‖G_b‖²`` over the block, from the Gram matrices when that pays."""
        if self._grads is not None or not self.uses_ghost_norm():
            return super().squared_norms()
        g = self.output_grads
        gg = torch.bmm(g, g.transpose(1, 2))
        if self._weight is not None:
            x = self._x.to(self.dtype)
            xx = torch.bmm(x, x.transpose(1, 2))
            if self._bias is not None:
                xx += 1.0
        else:
            xx = torch.ones_like(gg)
        return (xx * gg).sum((1, 2))

    def _chunks(self, dtype: torch.dtype) -> Iterator[tuple[slice, slice, torch.Tensor]]:
        """``(samples, rows, G[samples, rows])`` chunks of the per-sample weight gradients in ``dtype``.

        Chunks are written into one workspace of at most :attr:`workspace_bytes`: as many whole
        samples as fit (the whole batch in one batched matmul when it fits), else a band of output
        rows of one sample at a time. On the CPU a workspace of up to 64 MiB is reused across calls
        (a fresh multi-megabyte tensor per chunk costs page faults on every chunk); elsewhere it
        comes from the device's caching allocator.
        """
        x, g = self._x, self._g
        mixed = (
            dtype == torch.float32
            and x.dtype == g.dtype
            and x.dtype in _HALF
            and mixed_products(g.device, x.dtype)
        )
        if not mixed:
            x, g = x.to(dtype), g.to(dtype)
        B, _, d_in = x.shape
        d_out = g.shape[-1]
        # [B, d_out, T] and [B, T, d_in]; upcast in place of the mixed matmuls if those fail
        state: dict[str, Any] = {"gt": g.transpose(1, 2), "x": x, "mixed": mixed}

        def product(
            op: Any, at_g: tuple[Any, ...], at_x: tuple[Any, ...], out: torch.Tensor
        ) -> None:
            if state["mixed"]:
                try:
                    op(state["gt"][at_g], state["x"][at_x], out=out, out_dtype=dtype)
                    return
                except (RuntimeError, NotImplementedError, TypeError) as exc:
                    if "out of memory" in str(exc).lower():
                        raise
                    _give_up_mixed(out.device, state["x"].dtype, exc)
                    state.update(mixed=False, gt=state["gt"].to(dtype), x=state["x"].to(dtype))
            op(state["gt"][at_g], state["x"][at_x], out=out)

        item = torch.finfo(dtype).bits // 8
        budget = self.workspace_bytes or workspace_bytes_for(g.device)
        per_sample = d_out * d_in * item
        if per_sample <= budget:
            k = max(1, min(B, budget // max(per_sample, 1)))
            work = _workspace(k * d_out * d_in, dtype, g.device)
            rows = slice(None)
            for lo in range(0, B, k):
                hi = min(lo + k, B)
                G = work[: (hi - lo) * d_out * d_in].view(hi - lo, d_out, d_in)
                product(torch.bmm, (slice(lo, hi),), (slice(lo, hi),), G)
                yield slice(lo, hi), rows, G
        else:
            step = max(1, budget // (d_in * item))
            work = _workspace(min(step, d_out) * d_in, dtype, g.device)
            for b in range(B):
                for lo in range(0, d_out, step):
                    hi = min(lo + step, d_out)
                    G = work[: (hi - lo) * d_in].view(1, hi - lo, d_in)
                    product(torch.mm, (b, slice(lo, hi)), (b,), G[0])
                    yield slice(b, b + 1), slice(lo, hi), G

    def weighted_squared_norms(self, weights: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``[B]`` ``Σ_j w_j G_{b,j}²``, chunk by chunk (no ``[B, d_out, d_in]`` tensor unless it fits
        the workspace); float64 (:func:`score_dtype`) on the factors' device."""
        if self._grads is not None:
            return super().weighted_squared_norms(weights)
        g = self._g
        dtype = torch.promote_types(self.dtype, next(iter(weights.values())).dtype)
        acc = torch.zeros(self.batch_size, dtype=dtype, device=g.device)
        if self._weight is not None:
            w = weights[self._weight].to(dtype)
            for samples, rows, G in self._chunks(dtype):
                part = acc[samples]
                part.addmv_(G.square_().view(G.shape[0], -1), w[rows].reshape(-1))
        if self._bias is not None:
            acc.addmv_(g.to(dtype).sum(1).square_(), weights[self._bias].to(dtype))
        return acc.to(score_dtype(acc.device))

    def sum_squared_grads(self, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
        """``Σ_b G_b²`` per parameter, chunk by chunk."""
        if self._grads is not None:
            return super().sum_squared_grads(dtype)
        g = self._g
        dtype = torch.promote_types(self.dtype, dtype or self.dtype)
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
    """A flat scratch buffer of at least ``numel`` elements.

    On the CPU, buffers up to :data:`_REUSE_MAX` bytes are kept and reused (per thread and dtype);
    elsewhere, and for larger ones, a fresh tensor (from the caching allocator on CUDA).
    """
    if device.type != "cpu" or numel * (torch.finfo(dtype).bits // 8) > _REUSE_MAX:
        return torch.empty(numel, dtype=dtype, device=device)
    buffers: dict[tuple[torch.dtype, torch.device], torch.Tensor] = getattr(_LOCAL, "buffers", {})
    _LOCAL.buffers = buffers
    buf = buffers.get((dtype, device))
    if buf is None or buf.numel() < numel:
        least = min(CHUNK_BYTES, _REUSE_MAX) // (torch.finfo(dtype).bits // 8)
        buf = torch.empty(max(numel, least), dtype=dtype, device=device)
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
        """``[B]`` ``Σ_j w_j G_{b,j}²`` over the used rows, float64 on the factors' device."""
        w = weights[self._weight]
        dtype = torch.promote_types(self._compact.dtype, w.dtype)
        c = self._compact.to(dtype).square()
        q = c.reshape(c.shape[0], -1) @ w[self._rows].to(dtype).reshape(-1)
        return q.to(score_dtype(q.device))

    def sum_squared_grads(self, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
        """``Σ_b G_b²``: zero outside the used rows."""
        p = self.block.params[self._weight]
        dtype = torch.promote_types(self._compact.dtype, dtype or self._compact.dtype)
        c = self._compact.to(dtype)
        out = torch.zeros(p.shape, dtype=dtype, device=c.device)
        out[self._rows] = c.square().sum(0)
        return {self._weight: out}

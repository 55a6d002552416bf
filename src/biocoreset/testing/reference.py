"""Brute-force float64 references for the conformance checks: one sample at a time,
``torch.autograd.grad`` per sample, and the dense matrix a curvature applies.

Gradients of a parameter block are flattened in one fixed layout: for a ``"linear"`` block the
column-stacked ``vec([W | b])`` (so a Kronecker block is ``A ⊗ S`` with ``A`` over the inputs and
``S`` over the outputs, as in :mod:`biocoreset.curvature.kfac`); for any other block the
parameters' gradients concatenated in the block's order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import torch

from biocoreset.protocols import CurvatureEstimator, LayerFactors, ModelAdapter, ParamBlock

__all__ = [
    "BruteForce",
    "brute_force",
    "fit",
    "flatten_block",
    "implied_matrix",
    "split_linear",
]

F64 = torch.float64
MAX_PROBE = 600
"""Largest block (parameters) whose implied matrix is probed densely."""


def split_linear(block: ParamBlock) -> tuple[str | None, str | None, int, int]:
    """``(weight name, bias name, d_in including the bias column, d_out)`` of a linear block."""
    weight = next((n for n, p in block.params.items() if p.dim() == 2), None)
    bias = next((n for n, p in block.params.items() if p.dim() == 1), None)
    d_out = block.params[weight].shape[0] if weight else block.params[bias].shape[0]  # type: ignore[index]
    d_in = (block.params[weight].shape[1] if weight else 0) + (1 if bias else 0)
    return weight, bias, d_in, d_out


def flatten_block(block: ParamBlock, grads: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """``[B, P]`` per-sample gradients (``grads``: ``[B, *shape]`` per parameter) in the block's
    layout (see the module docstring)."""
    if block.kind == "linear":
        weight, bias, _, _ = split_linear(block)
        parts = ([grads[weight]] if weight else []) + ([grads[bias].unsqueeze(-1)] if bias else [])
        g = torch.cat(parts, -1)  # [B, d_out, d_in]
        return g.transpose(1, 2).reshape(g.shape[0], -1)
    return torch.cat([grads[n].reshape(grads[n].shape[0], -1) for n in block.params], 1)


@attrs.frozen(kw_only=True)
class BruteForce:
    """Per-sample quantities of ``records``, each from its own forward pass, in float64.

    Attributes:
        records: The ``(id, sequence)`` records, in order.
        blocks: The parameter blocks (the engine's), in order.
        losses: ``[N]`` per-sample losses.
        grads: Block name → ``[N, P]`` flattened per-sample gradients.
        inputs: Linear block name → per sample, ``[T, d_in]`` layer inputs (ones column for the
            bias) at every position.
        output_grads: Linear block name → per sample, ``[T, d_out]`` gradients of the loss with
            respect to the layer output.
    """

    records: list[tuple[str, str]]
    blocks: list[ParamBlock]
    losses: torch.Tensor
    grads: dict[str, torch.Tensor]
    inputs: dict[str, list[torch.Tensor]]
    output_grads: dict[str, list[torch.Tensor]]

    def quadratic_forms(self, curvature: CurvatureEstimator) -> torch.Tensor:
        """``[N]`` ``Σ_blocks gᵀ K g`` with ``K`` the matrix ``curvature`` applies on each block
        (:func:`implied_matrix`)."""
        total = torch.zeros(len(self.records), dtype=F64)
        for block in self.blocks:
            k = implied_matrix(curvature, block)
            g = self.grads[block.name]
            total += ((g @ k) * g).sum(1)
        return total


def brute_force(
    adapter: ModelAdapter,
    records: Sequence[tuple[str, str]],
    blocks: Sequence[ParamBlock],
    *,
    seed: int = 0,
) -> BruteForce:
    """One forward pass and one ``torch.autograd.grad`` per record (a batch of one).

    Linear blocks must belong to modules called once per forward pass with the layer input as
    first argument (``nn.Linear``), named as the block.
    """
    linear = [b for b in blocks if b.kind == "linear"]
    names = [n for b in blocks for n in b.params]
    tensors = [p for b in blocks for p in b.params.values()]
    losses, rows = [], []
    inputs: dict[str, list[torch.Tensor]] = {b.name: [] for b in linear}
    deltas: dict[str, list[torch.Tensor]] = {b.name: [] for b in linear}
    for record in records:
        caught: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        handles = [
            adapter.model.get_submodule(b.name).register_forward_hook(
                lambda mod, args, out, name=b.name, caught=caught: caught.__setitem__(
                    name, (args[0], out)
                )
            )
            for b in linear
        ]
        try:
            with torch.enable_grad():
                loss = adapter.per_sample_loss(adapter.collate([record], seed=seed))[0]
                outs = [caught[b.name][1] for b in linear]
                grads = torch.autograd.grad(loss, [*tensors, *outs], allow_unused=True)
        finally:
            for h in handles:
                h.remove()
        losses.append(float(loss.detach()))
        by_name = {
            n: (g if g is not None else torch.zeros_like(t)).detach().to(F64).unsqueeze(0)
            for n, g, t in zip(names, grads[: len(tensors)], tensors, strict=True)
        }
        rows.append({b.name: flatten_block(b, by_name)[0] for b in blocks})
        for b, d in zip(linear, grads[len(tensors) :], strict=True):
            weight, bias, _, _ = split_linear(b)
            x = caught[b.name][0].detach().to(F64)[0]
            x = x.reshape(-1, x.shape[-1])
            cols = ([x] if weight else []) + ([x.new_ones(x.shape[0], 1)] if bias else [])
            inputs[b.name].append(torch.cat(cols, 1))
            dd = torch.zeros_like(caught[b.name][1]) if d is None else d
            deltas[b.name].append(dd.detach().to(F64)[0].reshape(x.shape[0], -1))
    return BruteForce(
        records=list(records),
        blocks=list(blocks),
        losses=torch.tensor(losses, dtype=F64),
        grads={b.name: torch.stack([r[b.name] for r in rows]) for b in blocks},
        inputs=inputs,
        output_grads=deltas,
    )


def fit(
    curvature: CurvatureEstimator,
    adapter: ModelAdapter,
    engine: Any,
    records: Sequence[tuple[str, str]],
    *,
    batch_size: int = 3,
    seed: int = 0,
) -> None:
    """Fit ``curvature`` on ``records`` as the pipeline does: ``fit_begin(engine.blocks)``, then
    ``fit_passes`` passes of ``fit_accumulate`` over every block of every batch and ``fit_end``."""
    from biocoreset.protocols import MultiPassCurvature

    curvature.fit_begin(engine.blocks)
    if not curvature.needs_fit:
        curvature.fit_end(len(records))
        return
    passes = curvature.fit_passes if isinstance(curvature, MultiPassCurvature) else 1
    for _ in range(int(passes)):
        for start in range(0, len(records), batch_size):
            batch = adapter.collate(list(records[start : start + batch_size]), seed=seed)
            engine.run(batch, curvature.fit_accumulate)
        curvature.fit_end(len(records))


def _probe_factors(block: ParamBlock, vectors: torch.Tensor) -> LayerFactors:
    """Factors whose per-sample gradients are the rows of ``vectors`` (``[B, P]``, each a sum of
    at most two basis vectors), with matching Kronecker factors for a linear block."""
    B = vectors.shape[0]
    device = next(iter(block.params.values())).device
    dtype = next(iter(block.params.values())).dtype
    vectors = vectors.to(device=device, dtype=dtype)
    if block.kind == "linear":
        weight, bias, d_in, d_out = split_linear(block)
        x = torch.zeros(B, 2, d_in, dtype=dtype, device=device)
        d = torch.zeros(B, 2, d_out, dtype=dtype, device=device)
        for b in range(B):
            for t, k in enumerate(torch.nonzero(vectors[b]).flatten().tolist()):
                c, r = divmod(k, d_out)
                x[b, t, c] = 1.0
                d[b, t, r] = vectors[b, k]
        g = torch.bmm(d.transpose(1, 2), x)  # [B, d_out, d_in]

        def grads() -> dict[str, torch.Tensor]:
            out = {}
            if weight:
                out[weight] = g[:, :, : d_in - (1 if bias else 0)]
            if bias:
                out[bias] = g[:, :, -1]
            return out

        return LayerFactors(block, B, grads, inputs=x, output_grads=d)
    shapes = [(n, p.shape, p.numel()) for n, p in block.params.items()]

    def plain() -> dict[str, torch.Tensor]:
        out, start = {}, 0
        for name, shape, numel in shapes:
            out[name] = vectors[:, start : start + numel].reshape(B, *shape)
            start += numel
        return out

    return LayerFactors(block, B, plain)


def implied_matrix(curvature: CurvatureEstimator, block: ParamBlock) -> torch.Tensor:
    """The ``[P, P]`` float64 matrix ``K`` with ``quadratic_form(g) = gᵀ K g`` on ``block``,
    recovered by polarisation from ``P (P + 1) / 2`` probes (one batched call).

    Raises:
        ValueError: The block has more than :data:`MAX_PROBE` parameters.
    """
    P = block.numel
    if P > MAX_PROBE:
        raise ValueError(
            f"block {block.name!r} has {P} parameters; the dense check takes <= {MAX_PROBE}."
        )
    eye = torch.eye(P, dtype=F64)
    i, j = torch.triu_indices(P, P, offset=1)
    probes = torch.cat([eye, eye[i] + eye[j]])
    q = curvature.quadratic_form(_probe_factors(block, probes)).to("cpu", F64)
    diag = q[:P]
    k = torch.diag(diag)
    off = (q[P:] - diag[i] - diag[j]) / 2
    k[i, j] = off
    k[j, i] = off
    return k


DenseReference = Callable[[BruteForce, CurvatureEstimator], dict[str, torch.Tensor]]
"""``(brute force over D_sub, fitted curvature) -> {block name: undamped C}``."""

"""Chunked and sparse reductions of the engine's factors equal the dense per-sample formulas."""

from __future__ import annotations

import pytest
import torch

import biocoreset.grads.factors as factors_mod
from biocoreset.grads.factors import EmbeddingFactors, LinearFactors
from biocoreset.grads.handlers import EmbeddingHandler, LayerNormHandler, LinearHandler
from biocoreset.protocols import LayerFactors, ParamBlock

F64 = torch.float64


def dense_reductions(grads: dict[str, torch.Tensor], weights: dict[str, torch.Tensor]):
    q = sum((g.square() * weights[n]).flatten(1).sum(1) for n, g in grads.items())
    s = {n: g.square().sum(0) for n, g in grads.items()}
    return q, s


@pytest.mark.parametrize(("d_in", "d_out"), [(5, 9), (9, 5)])
@pytest.mark.parametrize("with_bias", [True, False])
# chunks of bands of rows within one sample / of two whole samples
@pytest.mark.parametrize("chunk", [3 * 5 * 8, 2 * 45 * 8])
def test_linear_chunked_reductions(monkeypatch, d_in, d_out, with_bias, chunk):
    monkeypatch.setattr(factors_mod, "CHUNK_BYTES", chunk)
    torch.manual_seed(0)
    layer = torch.nn.Linear(d_in, d_out, bias=with_bias).double()
    params = {"l.weight": layer.weight} | ({"l.bias": layer.bias} if with_bias else {})
    block = ParamBlock(name="l", kind="linear", params=params)
    x, g = torch.randn(3, 4, d_in, dtype=F64), torch.randn(3, 4, d_out, dtype=F64)
    weights = {n: torch.rand(p.shape, dtype=F64) for n, p in params.items()}

    def make():
        return LinearFactors(block, x, g, weight="l.weight", bias="l.bias" if with_bias else None)

    grads = make().per_sample_grads()
    names = ["weight", "bias"] if with_bias else ["weight"]
    direct = LinearHandler().per_sample(layer, x, g, names)
    for local, t in direct.items():
        torch.testing.assert_close(grads[f"l.{local}"], t)
    q, s = dense_reductions(grads, weights)
    torch.testing.assert_close(make().weighted_squared_norms(weights), q)
    for n, t in make().sum_squared_grads().items():
        torch.testing.assert_close(t, s[n])
    # float32 factors, float64 weights: computed in float64
    f32 = LinearFactors(
        block, x.float(), g.float(), weight="l.weight", bias="l.bias" if with_bias else None
    )
    torch.testing.assert_close(f32.weighted_squared_norms(weights), q, rtol=1e-5, atol=0)
    assert f32.sum_squared_grads(F64)["l.weight"].dtype == F64


@pytest.mark.parametrize("padding_idx", [None, 0])
def test_embedding_sparse_reductions(padding_idx):
    torch.manual_seed(1)
    emb = torch.nn.Embedding(12, 3, padding_idx=padding_idx).double()
    block = ParamBlock(name="e", kind="embedding", params={"e.weight": emb.weight})
    ids = torch.tensor([[0, 3, 3, 5], [7, 0, 0, 11], [3, 3, 3, 3]])
    g = torch.randn(3, 4, 3, dtype=F64)
    f = EmbeddingFactors(
        block, ids, g, weight="e.weight", num_embeddings=12, padding_idx=padding_idx
    )
    dense = EmbeddingHandler().per_sample(emb, ids, g, ["weight"])["weight"]
    torch.testing.assert_close(f.per_sample_grads()["e.weight"], dense)
    if padding_idx is not None:
        assert not dense[:, padding_idx].any()
    w = {"e.weight": torch.rand(12, 3, dtype=F64)}
    q, s = dense_reductions({"e.weight": dense}, w)
    torch.testing.assert_close(f.weighted_squared_norms(w), q)
    torch.testing.assert_close(f.sum_squared_grads()["e.weight"], s["e.weight"])
    torch.testing.assert_close(f.squared_norms(), dense.flatten(1).square().sum(1))


def test_embedding_per_sample_matches_autograd():
    torch.manual_seed(2)
    emb = torch.nn.Embedding(6, 2, padding_idx=1).double()
    ids = torch.tensor([[1, 2, 2], [4, 1, 5]])
    g = torch.randn(2, 3, 2, dtype=F64)
    got = EmbeddingHandler().per_sample(emb, ids, g, ["weight"])["weight"]
    for b in range(2):
        (ref,) = torch.autograd.grad(emb(ids[b : b + 1]), emb.weight, g[b : b + 1])
        torch.testing.assert_close(got[b], ref)


@pytest.mark.parametrize("bias", [True, False])
def test_layernorm_per_sample_matches_autograd(bias):
    torch.manual_seed(3)
    ln = torch.nn.LayerNorm((2, 3), bias=bias).double()
    with torch.no_grad():
        ln.weight.add_(torch.randn_like(ln.weight))
    x = torch.randn(2, 4, 2, 3, dtype=F64)
    g = torch.randn(2, 4, 2, 3, dtype=F64)
    names = ["weight", "bias"] if bias else ["weight"]
    got = LayerNormHandler().per_sample(ln, x, g, names)
    for b in range(2):
        params = [ln.weight, ln.bias] if bias else [ln.weight]
        ref = torch.autograd.grad(ln(x[b : b + 1]), params, g[b : b + 1])
        for name, r in zip(names, ref, strict=True):
            torch.testing.assert_close(got[name][b], r)


def test_base_layer_factors_reductions():
    block = ParamBlock(
        name="m", kind="generic", params={"a": torch.nn.Parameter(torch.zeros(2, 2))}
    )
    grads = {"a": torch.randn(3, 2, 2, dtype=F64)}
    f = LayerFactors(block, 3, lambda: grads)
    w = {"a": torch.rand(2, 2, dtype=F64)}
    q, s = dense_reductions(grads, w)
    torch.testing.assert_close(f.weighted_squared_norms(w), q)
    torch.testing.assert_close(f.sum_squared_grads()["a"], s["a"])
    assert f.sum_squared_grads(torch.float32)["a"].dtype == F64  # never narrowed


def test_addend_per_sample_sums_each_sample():
    from biocoreset.grads.graph import addend_per_sample

    g = torch.randn(4, 3, 5, 2, dtype=F64)  # batch in dim 1, addend of shape [5, 1] broadcast
    got = addend_per_sample(g, 1, torch.Size([5, 1]), 3)
    for b in range(3):
        torch.testing.assert_close(got[b], g[:, b].sum(0).sum(-1, keepdim=True))


@pytest.mark.parametrize("batched", [True, False])
def test_fallback_autograd_matches_per_sample_loop(batched):
    from biocoreset.grads.fallback import per_sample_autograd

    torch.manual_seed(4)
    w = torch.nn.Parameter(torch.randn(3, dtype=F64))
    unused = torch.nn.Parameter(torch.randn(2, dtype=F64))
    x = torch.randn(5, 3, dtype=F64)
    loss = torch.log1p((x * w).sum(1) ** 2)
    got, zero = per_sample_autograd(loss, [w, unused], batched=batched)
    for b in range(5):
        (ref,) = torch.autograd.grad(loss[b], w, retain_graph=True)
        torch.testing.assert_close(got[b], ref)
    assert zero.shape == (5, 2) and not zero.any()

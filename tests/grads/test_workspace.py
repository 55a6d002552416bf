"""The engine's GPU shape: workspace sized by device, reductions on the device, bf16 factors, sdpa.

The shape test counts matmul-like operator calls with the torch profiler: with a workspace large
enough for a whole batch, one batch costs the same number of matmuls whatever its size (each linear
layer's per-sample products are one batched matmul), while a small workspace makes the count grow
with the batch (so the counter does see the products).
"""

from __future__ import annotations

import collections

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

import biocoreset.grads.factors as factors_mod
from biocoreset.adapters.hf import HFAdapter
from biocoreset.curvature.diagonal import DiagonalFisher
from biocoreset.errors import ConfigError
from biocoreset.grads.engine import HookEngine
from biocoreset.grads.factors import (
    CHUNK_BYTES,
    EmbeddingFactors,
    LinearFactors,
    score_dtype,
    workspace_bytes_for,
)
from biocoreset.grads.totals import BatchTotal
from biocoreset.protocols import ParamBlock
from biocoreset.scorers.self_influence import SelfInfluenceScorer
from biocoreset.testing import random_rna, tiny_esm
from floats import assert_equal_to_rounding
from reference import diagonal_scores, per_sample_grads

RECORDS = random_rna(16, seed=2, min_len=8, max_len=24)
MATMULS = {
    "aten::mm",
    "aten::bmm",
    "aten::matmul",
    "aten::addmm",
    "aten::baddbmm",
    "aten::addbmm",
    "aten::mv",
    "aten::addmv",
    "aten::addmv_",
    "aten::dot",
    "aten::einsum",
}


def fitted(adapter, **options):
    engine = HookEngine(adapter, adapter.scored_parameters(), **options)
    curvature = DiagonalFisher(damping_relative=0.1)
    curvature.fit_begin(engine.blocks)
    engine.run(adapter.collate(RECORDS[:4], seed=0), curvature.fit_accumulate)
    curvature.fit_end(4)
    return engine, curvature


def matmul_calls(fn) -> dict[str, int]:
    fn()  # warm-up: lazy initialisation outside the count
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return dict(collections.Counter(e.name for e in prof.events() if e.name in MATMULS))


def per_batch_counts(adapter, workspace_bytes, sizes=(2, 8)):
    engine, curvature = fitted(adapter, workspace_bytes=workspace_bytes)
    scorer = SelfInfluenceScorer()
    out = {}
    for B in sizes:
        batch = adapter.collate(RECORDS[:B], seed=1)
        out[("score", B)] = matmul_calls(
            lambda batch=batch: scorer.score_batch(adapter, batch, engine, curvature)
        )
        out[("fit", B)] = matmul_calls(
            lambda batch=batch: engine.run(batch, lambda f: f.sum_squared_grads(torch.float32))
        )
    return out


def test_matmul_count_does_not_depend_on_batch_size_with_a_large_workspace(hf):
    adapter = hf("esm", dtype=torch.float32)
    big = per_batch_counts(adapter, 2**30)
    for phase in ("score", "fit"):
        assert sum(big[(phase, 2)].values()) > 0
        assert big[(phase, 2)] == big[(phase, 8)], phase
    # the counter sees the per-sample products: with room for one band of rows, B x bands matmuls
    small = per_batch_counts(adapter, 256)
    for phase in ("score", "fit"):
        assert sum(small[(phase, 8)].values()) > sum(small[(phase, 2)].values()) + 50, phase
        assert sum(small[(phase, 2)].values()) > sum(big[(phase, 2)].values()), phase


@pytest.mark.parametrize("workspace", [None, 64, 3000, 2**30])
def test_workspace_changes_no_score_float64(hf, workspace):
    adapter = hf("esm")
    engine, curvature = fitted(adapter, workspace_bytes=workspace)
    batch = adapter.collate(RECORDS, seed=1)
    scores, _ = SelfInfluenceScorer().score_batch(adapter, batch, engine, curvature)
    names = list(adapter.scored_parameters())
    grads = torch.cat(
        [
            per_sample_grads(adapter, RECORDS[:4], names),
            per_sample_grads(adapter, RECORDS, names, seed=1),
        ]
    )
    ref = diagonal_scores(grads, range(4), curvature.damping)[4:]
    torch.testing.assert_close(scores, ref, rtol=1e-9, atol=0)
    default_engine, default_curvature = fitted(adapter)
    base, _ = SelfInfluenceScorer().score_batch(adapter, batch, default_engine, default_curvature)
    torch.testing.assert_close(scores, base, rtol=1e-12, atol=0)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "8MiB"])
def test_bad_workspace_is_a_config_error(hf, bad):
    adapter = hf("esm")
    with pytest.raises(ConfigError, match="workspace_bytes"):
        HookEngine(adapter, adapter.scored_parameters(), workspace_bytes=bad)


def test_describe_reports_the_workspace(hf):
    adapter = hf("esm")
    params = adapter.scored_parameters()
    assert HookEngine(adapter, params).describe()["workspace_bytes"] == "auto"
    assert HookEngine(adapter, params, workspace_bytes=2**20).describe()["workspace_bytes"] == 2**20


def test_workspace_by_device(monkeypatch):
    assert workspace_bytes_for("cpu") == CHUNK_BYTES
    assert workspace_bytes_for(torch.device("meta")) == CHUNK_BYTES
    monkeypatch.setattr(factors_mod, "CHUNK_BYTES", 123)
    assert workspace_bytes_for("cpu") == 123  # read at call time
    # CUDA: a fraction of free + cached-but-unused memory, never below the CPU size
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (40 * 2**30, 80 * 2**30))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 10 * 2**30)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 6 * 2**30)
    expected = int(factors_mod.CUDA_WORKSPACE_FRACTION * 44 * 2**30)
    assert workspace_bytes_for("cuda") == expected
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (0, 80 * 2**30))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 0)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 0)
    assert workspace_bytes_for("cuda") == 123

    def broken(device=None):
        raise RuntimeError("no CUDA")

    monkeypatch.setattr(torch.cuda, "mem_get_info", broken)
    assert workspace_bytes_for("cuda:0") == 123


def test_reductions_stay_on_the_device():
    """Per-sample reductions come back on the factors' device (meta here: moving to the CPU would
    fail), in float64."""
    meta = torch.device("meta")
    layer = torch.nn.Linear(6, 5, device=meta)
    block = ParamBlock(
        name="l", kind="linear", params={"l.weight": layer.weight, "l.bias": layer.bias}
    )
    x = torch.empty(3, 4, 6, device=meta)
    g = torch.empty(3, 4, 5, device=meta)
    weights = {n: torch.empty(p.shape, device=meta) for n, p in block.params.items()}
    for ws in (None, 8, 2**20):
        f = LinearFactors(block, x, g, weight="l.weight", bias="l.bias", workspace_bytes=ws)
        q = f.weighted_squared_norms(weights)
        assert (q.device, q.dtype, tuple(q.shape)) == (meta, torch.float64, (3,))
    assert score_dtype("mps") == torch.float32 and score_dtype("cuda") == torch.float64
    total = BatchTotal(3)
    total.add(torch.empty(3, device=meta))
    assert total._acc is not None and total._acc.device == meta


def test_embedding_reduction_stays_float64_on_its_device():
    emb = torch.nn.Embedding(7, 3)
    block = ParamBlock(name="e", kind="embedding", params={"e.weight": emb.weight})
    f = EmbeddingFactors(
        block,
        torch.tensor([[1, 2], [3, 3]]),
        torch.randn(2, 2, 3),
        weight="e.weight",
        num_embeddings=7,
        padding_idx=None,
    )
    q = f.weighted_squared_norms({"e.weight": torch.ones(7, 3)})
    assert q.dtype == torch.float64 and q.device.type == "cpu"


def test_scores_reach_the_host_once_per_batch(hf, monkeypatch):
    adapter = hf("esm", dtype=torch.float32)
    engine, curvature = fitted(adapter)
    calls = []
    original = BatchTotal.to_host

    def counting(self, *others):
        calls.append(len(others))
        return original(self, *others)

    monkeypatch.setattr(BatchTotal, "to_host", counting)
    scores, losses = SelfInfluenceScorer().score_batch(
        adapter, adapter.collate(RECORDS[:5], seed=1), engine, curvature
    )
    assert calls == [1]  # one transfer, scores and losses together
    assert scores.dtype == losses.dtype == torch.float64 and scores.device.type == "cpu"
    assert bool((scores > 0).all())


def test_bf16_factors_and_mixed_products_change_no_number(hf, monkeypatch):
    """Under bf16 autocast the linear factors stay bf16; the products formed from them (upcast, or a
    bf16 matmul with a float32 output where the device has one) equal those of upcasting first."""
    adapter = hf("esm", dtype=torch.float32)
    batch = adapter.collate(RECORDS, seed=1)

    def scores(**options):
        engine, curvature = fitted(adapter, autocast="bf16", **options)
        dtypes = set()

        def on_block(f):
            if isinstance(f, LinearFactors):
                dtypes.add((f._x.dtype, f._g.dtype, f.inputs.dtype, f.output_grads.dtype))
            total.add(curvature.quadratic_form(f))

        total = BatchTotal(len(batch))
        engine.run(batch, on_block)
        return total.to_host()[0], dtypes

    plain, dtypes = scores()
    assert dtypes == {(torch.bfloat16, torch.bfloat16, torch.float32, torch.float32)}
    # emulate a device with mixed-precision matmuls (CUDA's out_dtype=) on the CPU
    used = []
    bmm, mm = torch.bmm, torch.mm

    def upcast(op):
        def call(a, b, *, out=None, out_dtype=None):
            if out_dtype is not None:
                used.append(op.__name__)
                assert a.dtype == b.dtype == torch.bfloat16 and out_dtype == out.dtype
                a, b = a.to(out_dtype), b.to(out_dtype)
            return op(a, b, out=out)

        return call

    monkeypatch.setattr(factors_mod, "mixed_products", lambda device, dtype: True)
    monkeypatch.setattr(torch, "bmm", upcast(bmm))
    monkeypatch.setattr(torch, "mm", upcast(mm))
    mixed, _ = scores()
    small, _ = scores(workspace_bytes=64)  # the band path (torch.mm) too
    assert "bmm" in used and "mm" in used
    # invariant: the mixed products are the upcast products (recomputed: to float64 rounding)
    assert_equal_to_rounding(mixed, plain)
    torch.testing.assert_close(plain, small, rtol=1e-6, atol=0)

    # a device whose mixed matmuls fail after the probe passed: warn, upcast, same numbers
    def failing(op):
        def call(a, b, *, out=None, out_dtype=None):
            if out_dtype is not None:
                raise RuntimeError("CUBLAS_STATUS_NOT_SUPPORTED")
            return op(a, b, out=out)

        return call

    monkeypatch.setattr(factors_mod, "_MIXED", {})
    monkeypatch.setattr(torch, "bmm", failing(bmm))
    monkeypatch.setattr(torch, "mm", failing(mm))
    with pytest.warns(RuntimeWarning, match="upcast float32 factors"):
        fallback, _ = scores()
    assert_equal_to_rounding(fallback, plain)
    assert dict(factors_mod._MIXED) == {(torch.device("cpu"), torch.bfloat16): False}


def test_sdpa_attention_equals_bruteforce_float64():
    """With sdpa attention the hook engine still equals the per-sample float64 reference."""
    model, tokenizer = tiny_esm(seed=3)
    model.set_attn_implementation("sdpa")
    adapter = HFAdapter(model, tokenizer)
    assert model.config._attn_implementation == "sdpa"
    names = list(adapter.scored_parameters())
    engine = HookEngine(adapter, adapter.scored_parameters())
    grads = {}

    def on_block(f):
        grads.update({n: g.detach().clone() for n, g in f.per_sample_grads().items()})

    engine.run(adapter.collate(RECORDS, seed=4), on_block)
    got = torch.cat([grads[n].flatten(1) for n in names], dim=1)
    ref = per_sample_grads(adapter, RECORDS, names, seed=4)
    err = (got - ref).norm(dim=1) / ref.norm(dim=1)
    assert float(err.max()) < 1e-10

"""The hook engine equals the brute-force float64 loop, covers every parameter, and forms no .grad."""

from __future__ import annotations

import weakref

import numpy as np
import pytest
import torch

from biocoreset import score
from biocoreset.curvature.identity import IdentityCurvature
from biocoreset.errors import ConfigError
from biocoreset.grads import make_engine
from biocoreset.grads.engine import HookEngine
from biocoreset.grads.factors import LinearFactors
from biocoreset.grads.loop import LoopEngine
from biocoreset.testing import random_rna
from reference import per_sample_grads

RECORDS = random_rna(7, seed=3, min_len=3, max_len=22)  # varied lengths: padded batches


def collect(engine, batch):
    """Run ``engine`` on ``batch``; return losses, {param: [B, ...]} and the factors in call order."""
    grads: dict[str, torch.Tensor] = {}
    seen: list[tuple[str, str]] = []

    def on_block(f):
        seen.append((f.block.name, f.block.kind))
        for n, g in f.per_sample_grads().items():
            assert n not in grads, f"{n} delivered twice"
            grads[n] = g.detach().clone()

    losses = engine.run(batch, on_block)
    return losses, grads, seen


def flat(grads, names):
    return torch.cat([grads[n].flatten(1) for n in names], dim=1)


def assert_matches_reference(got: torch.Tensor, ref: torch.Tensor) -> None:
    """Per sample: relative error of the whole gradient ≤ 1e-6, and elementwise to 1e-6 relative."""
    err = (got - ref).norm(dim=1) / ref.norm(dim=1)
    assert float(err.max()) < 1e-6, err
    torch.testing.assert_close(got, ref, rtol=1e-6, atol=1e-9 * float(ref.abs().max()))


def test_per_sample_grads_equal_bruteforce(adapter):
    params = adapter.scored_parameters()
    engine = HookEngine(adapter, params)
    batch = adapter.collate(RECORDS, seed=5)
    assert bool((batch.attention_mask == 0).any()), "the batch must contain padding"
    losses, grads, _ = collect(engine, batch)
    names = list(params)
    assert set(grads) == set(names)
    ref = per_sample_grads(adapter, RECORDS, names, seed=5)
    assert_matches_reference(flat(grads, names), ref)
    for i, rec in enumerate(RECORDS):
        with torch.no_grad():
            expected = adapter.per_sample_loss(adapter.collate([rec], seed=5))[0]
        assert float(losses[i]) == pytest.approx(float(expected), rel=1e-12)


def test_blocks_partition_scored_parameters(adapter):
    params = adapter.scored_parameters()
    engine = HookEngine(adapter, params)
    names = [n for b in engine.blocks for n in b.params]
    assert sorted(names) == sorted(params), "every scored parameter in exactly one block"
    for b in engine.blocks:
        if b.kind == "linear":
            weight = [p for p in b.params.values() if p.dim() == 2]
            assert len(weight) == 1 and len(b.params) <= 2


def test_no_parameter_grad_is_formed(adapter):
    engine = HookEngine(adapter, adapter.scored_parameters())
    collect(engine, adapter.collate(RECORDS, seed=0))
    assert all(p.grad is None for p in adapter.model.parameters())


def test_esm_plan(hf):
    adapter = hf("esm")
    engine = HookEngine(adapter, adapter.scored_parameters())
    kinds = {b.name: b.kind for b in engine.blocks}
    assert engine.plan.addends == {"lm_head.bias": 0}  # added outside any module call
    assert engine.plan.fallback_params == []
    assert kinds["esm.embeddings.word_embeddings"] == "generic"  # tied to lm_head.decoder
    assert kinds["esm.encoder.layer.0.attention.self.query"] == "linear"
    assert kinds["esm.embeddings.position_embeddings"] == "embedding"
    assert kinds["esm.encoder.layer.0.LayerNorm"] == "layernorm"


def test_awkward_plan(awkward):
    adapter = awkward()
    params = dict(adapter.model.named_parameters())  # includes the unused layer
    engine = HookEngine(adapter, params)
    kinds = {b.name: b.kind for b in engine.blocks}
    assert kinds["mix"] == "linear" and kinds["tbe"] == "linear"  # reused; batch in dim 1
    assert kinds["tok"] == "generic"  # embedding + tied decoder, summed
    assert kinds["pos"] == "embedding"  # broadcast over the batch by an addition
    assert kinds["ln0"] == "layernorm" and kinds["ln2"] == "layernorm"
    reasons = engine.plan.reasons
    assert engine.plan.addends == {"bias": 0}
    assert set(reasons) == {"side.weight", "unused.weight", "unused.bias"}
    assert "outside" in reasons["side.weight"] and "not used" in reasons["unused.weight"]
    assert engine.describe()["fallback"] == reasons
    _, grads, _ = collect(engine, adapter.collate(RECORDS, seed=1))
    assert not grads["unused.weight"].any()
    ref = per_sample_grads(adapter, RECORDS, list(params), seed=1)
    assert_matches_reference(flat(grads, list(params)), ref)


@pytest.mark.parametrize(
    ("kind", "patterns"),
    [
        ("esm", ["lm head", "*layer.1.output.*"]),
        ("bert", ["lm head", "*layer.1.output.*"]),
        ("esm", ["lm_head.bias"]),
        ("esm", ["lm_head.bias", "*layer.0.attention.self.query.*"]),
    ],
)
def test_subset_of_parameters(hf, kind, patterns):
    """Only some parameters scored; a bare addend alone is captured at the end of the backward pass."""
    adapter = hf(kind)
    params = adapter.scored_parameters(patterns)
    engine = HookEngine(adapter, params)
    _, grads, _ = collect(engine, adapter.collate(RECORDS, seed=2))
    ref = per_sample_grads(adapter, RECORDS, list(params), seed=2)
    assert_matches_reference(flat(grads, list(params)), ref)


def test_linear_factors_are_kronecker_factors(adapter):
    engine = HookEngine(adapter, adapter.scored_parameters())
    batch = adapter.collate(RECORDS, seed=0)
    checked = []

    def on_block(f):
        if f.block.kind != "linear":
            return
        assert isinstance(f, LinearFactors)
        x, g = f.inputs, f.output_grads
        weight, bias = engine.plan.linear[engine.blocks.index(f.block)]
        grads = f.per_sample_grads()
        assert x.shape[:2] == g.shape[:2] and x.shape[0] == len(batch)
        full = torch.einsum("bto,bti->boi", g, x)
        if bias is not None:
            # exact: the bias column is filled with ones
            assert torch.equal(x[..., -1], torch.ones_like(x[..., -1]))
            torch.testing.assert_close(full[..., -1], grads[bias])
            full = full[..., :-1]
        torch.testing.assert_close(full, grads[weight])
        checked.append(f.block.name)

    engine.run(batch, on_block)
    assert checked


@pytest.mark.parametrize("kind", ["esm", "bert"])
def test_padding_and_unlabelled_positions_contribute_nothing(hf, kind):
    adapter = hf(kind)
    engine = HookEngine(adapter, adapter.scored_parameters())
    batch = adapter.collate(RECORDS, seed=0)
    pad = batch.attention_mask == 0
    unlabelled = batch.labels == -100
    heads = 0

    def on_block(f):
        nonlocal heads
        if f.block.kind != "linear":
            return
        g = f.output_grads
        assert not g[pad].any(), f"{f.block.name}: non-zero output gradient at padding"
        if "lm_head" in f.block.name or "cls.predictions" in f.block.name:
            heads += 1  # position-wise head after the last attention: only labelled positions
            assert not g[unlabelled].any()

    engine.run(batch, on_block)
    assert heads >= 1


def test_multi_batch_scores_equal_loop_and_bruteforce(adapter):
    records = random_rna(11, seed=4, min_len=3, max_len=25)
    kw = {"subset": 5, "batch_size": 4, "seed": 3}
    hooks = score(adapter, records, engine="hooks", **kw)
    loop = score(adapter, records, engine="loop", **kw)
    assert hooks.metadata["engine"] == "hooks" and loop.metadata["engine"] == "loop"
    np.testing.assert_allclose(hooks.scores, loop.scores, rtol=1e-9)
    np.testing.assert_allclose(hooks.loss, loop.loss, rtol=1e-12)
    assert hooks.metadata["damping"] == pytest.approx(loop.metadata["damping"], rel=1e-9)
    ident = score(adapter, records, engine="hooks", curvature="identity", batch_size=4)
    ref = per_sample_grads(adapter, records, list(adapter.scored_parameters()))
    np.testing.assert_allclose(ident.scores, ref.pow(2).sum(1).numpy(), rtol=1e-6)


def test_fast_path_does_not_change_scores_float32(hf):
    adapter = hf("esm", dtype=torch.float32)
    params = adapter.scored_parameters()
    batch = adapter.collate(random_rna(6, seed=8, min_len=4, max_len=30), seed=0)
    curv = IdentityCurvature()
    out = {}
    for fast in (True, False):
        engine = HookEngine(adapter, params, fast_path=fast)
        total = torch.zeros(len(batch), dtype=torch.float64)
        ghost = []

        def on_block(f, total=total, ghost=ghost):
            if isinstance(f, LinearFactors):
                ghost.append(f.uses_ghost_norm())
            total.add_(curv.quadratic_form(f))

        engine.run(batch, on_block)
        assert ghost and all(g is fast for g in ghost)
        out[fast] = total
    torch.testing.assert_close(out[True], out[False], rtol=1e-6, atol=0)


def test_fast_path_auto_rule():
    x, g = torch.randn(2, 3, 64, dtype=torch.float64), torch.randn(2, 3, 64, dtype=torch.float64)
    layer = torch.nn.Linear(64, 64)
    from biocoreset.protocols import ParamBlock

    block = ParamBlock(name="l", kind="linear", params={"w": layer.weight})
    short = LinearFactors(block, x, g, weight="w", bias=None)
    long_ = LinearFactors(
        block,
        torch.randn(2, 300, 64, dtype=torch.float64),
        torch.randn(2, 300, 64, dtype=torch.float64),
        weight="w",
        bias=None,
    )
    assert short.uses_ghost_norm() and not long_.uses_ghost_norm()
    full = short.per_sample_grads()["w"].flatten(1).pow(2).sum(1)
    fresh = LinearFactors(block, x, g, weight="w", bias=None)
    torch.testing.assert_close(fresh.squared_norms(), full)


def test_blocks_are_released_after_on_block(hf):
    adapter = hf("esm")
    engine = HookEngine(adapter, adapter.scored_parameters())
    alive: list[weakref.ref] = []
    order: list[str] = []

    def on_block(f):
        # every earlier block's factors are gone (no reference cycles, no GC needed):
        # at most one block's gradients exist at a time
        assert all(r() is None for r in alive)
        f.per_sample_grads()
        alive.append(weakref.ref(f))
        order.append(f.block.name)

    engine.run(adapter.collate(RECORDS, seed=0), on_block)
    # emitted during the backward pass: the head before the first layer
    assert order.index("lm_head.dense") < order.index("esm.encoder.layer.0.attention.self.query")


def test_run_without_callback_returns_losses(adapter):
    engine = HookEngine(adapter, adapter.scored_parameters())
    batch = adapter.collate(RECORDS, seed=0)
    with torch.no_grad():
        expected = adapter.per_sample_loss(batch)
    torch.testing.assert_close(engine.run(batch), expected)
    assert LoopEngine(adapter, adapter.scored_parameters()).run(batch).shape == expected.shape


def test_float64_request_on_float32_model(hf):
    adapter = hf("esm", dtype=torch.float32)
    engine = HookEngine(adapter, adapter.scored_parameters(), dtype=torch.float64)
    _, grads, _ = collect(engine, adapter.collate(RECORDS[:3], seed=0))
    assert all(g.dtype == torch.float64 for g in grads.values())


@pytest.mark.parametrize("autocast", ["bf16", "fp16"])
def test_autocast_forward_float32_quantities(hf, autocast):
    adapter = hf("esm", dtype=torch.float32)
    params = adapter.scored_parameters()
    batch = adapter.collate(RECORDS, seed=0)
    _, exact, _ = collect(HookEngine(adapter, params), batch)
    engine = HookEngine(adapter, params, autocast=autocast)
    _, grads, _ = collect(engine, batch)
    assert all(g.dtype == torch.float32 for g in grads.values())
    names = list(params)
    a, b = flat(grads, names), flat(exact, names)
    rel = (a - b).norm(dim=1) / b.norm(dim=1)
    assert float(rel.max()) < 0.1  # half-precision forward, float32 per-sample quantities
    assert all(p.grad is None for p in adapter.model.parameters())


def test_make_engine_auto_is_hooks(hf):
    adapter = hf("esm")
    params = adapter.scored_parameters()
    assert make_engine(adapter, params).name == "hooks"
    assert make_engine(adapter, params, engine="loop").name == "loop"


@pytest.mark.parametrize(
    ("option", "value"), [("fast_path", "yes"), ("autocast", "fp8"), ("dtype", torch.float16)]
)
def test_bad_options(hf, option, value):
    adapter = hf("esm")
    with pytest.raises(ConfigError, match=option):
        HookEngine(adapter, adapter.scored_parameters(), **{option: value})


def test_adapter_without_probe_is_refused(awkward_model_class):
    class Bare:
        model = awkward_model_class()

    with pytest.raises(ConfigError, match="probe"):
        HookEngine(Bare(), dict(Bare.model.named_parameters()))  # type: ignore[arg-type]


def test_use_outside_the_plan_is_caught(awkward):
    """A parameter used outside its module only after planning is reported, not silently missed."""
    adapter = awkward()
    params = adapter.scored_parameters()
    engine = HookEngine(adapter, params)
    model = adapter.model
    original = model.forward

    def sneaky(ids, attention_mask):
        return original(ids, attention_mask) + torch.nn.functional.linear(
            model.tok(ids), model.mix.weight
        ).sum(-1, keepdim=True)

    model.forward = sneaky
    with pytest.raises(ConfigError, match=r"mix\.weight"):
        engine.run(adapter.collate(RECORDS, seed=0), lambda f: None)


def test_native_rna_fm_functional_weights_use_the_fallback():
    """The ``fm`` package's RNA-FM passes attention weights to F.multi_head_attention_forward, ties
    its LM head through F.linear and runs layers in (T, B, E): still exact."""
    fm = pytest.importorskip("fm")
    import argparse

    from biocoreset.adapters.base import MaskedLMAdapter

    alphabet = fm.Alphabet.from_architecture("roberta_large", theme="rna")
    args = argparse.Namespace(
        arch="roberta_large",
        layers=1,
        embed_dim=16,
        ffn_embed_dim=32,
        attention_heads=2,
        max_positions=64,
        emb_layer_norm_before=True,
    )
    torch.manual_seed(0)
    model = fm.BioBertModel(args, alphabet).double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))

    class FMAdapter(MaskedLMAdapter):
        name = "fm-test"
        mask_token_id = alphabet.mask_idx
        pad_token_id = alphabet.padding_idx
        random_token_ids = tuple(alphabet.get_idx(c) for c in "ACGU")

        def encode(self, record_id, sequence):
            ids = [alphabet.cls_idx, *(alphabet.get_idx(c) for c in sequence), alphabet.eos_idx]
            return ids, [False, *([True] * len(sequence)), False]

        def logits(self, input_ids, attention_mask):
            return self.model(input_ids)["logits"]

    adapter = FMAdapter(model, max_length=50)
    params = adapter.scored_parameters()
    engine = HookEngine(adapter, params)
    kinds = {b.name: b.kind for b in engine.blocks}
    assert kinds["layers.0.fc1"] == "linear"  # batch in dim 1
    assert "never runs" in engine.plan.reasons["layers.0.self_attn.q_proj.weight"]
    records = RECORDS[:5]
    _, grads, _ = collect(engine, adapter.collate(records, seed=0))
    ref = per_sample_grads(adapter, records, list(params))
    assert_matches_reference(flat(grads, list(params)), ref)
    assert all(p.grad is None for p in model.parameters())


def test_no_reference_cycle_keeps_a_batch_alive(hf, monkeypatch):
    """With the cyclic GC off, a run's state (and with it the batch's graph and layer inputs) is
    freed as soon as run() returns: memory stays flat over batches."""
    import gc

    import biocoreset.grads.batch_run as engine_mod

    runs: list[weakref.ref] = []
    init = engine_mod.BatchRun.__init__

    def tracked(self, *args, **kwargs):
        init(self, *args, **kwargs)
        runs.append(weakref.ref(self))

    monkeypatch.setattr(engine_mod.BatchRun, "__init__", tracked)
    for kind in ("esm", "bert"):  # bert: broadcast position embeddings (node pre-hooks)
        adapter = hf(kind)
        engine = HookEngine(adapter, adapter.scored_parameters())
        batch = adapter.collate(RECORDS, seed=0)
        gc.collect()
        gc.disable()
        try:
            engine.run(batch, lambda f: f.squared_norms())
            assert runs and all(r() is None for r in runs)
        finally:
            gc.enable()


def test_auto_engine_falls_back_to_the_loop_without_a_probe(awkward):
    """An adapter the hook engine cannot probe still scores, through the loop, with a warning."""
    adapter = awkward()

    class NoProbe:
        name = "no-probe"
        model = adapter.model
        max_length = adapter.max_length
        collate = adapter.collate
        per_sample_loss = adapter.per_sample_loss

    params = dict(adapter.model.named_parameters())
    with pytest.warns(RuntimeWarning, match="loop"):
        engine = make_engine(NoProbe(), params)  # type: ignore[arg-type]
    assert engine.name == "loop"
    with pytest.raises(ConfigError, match="probe"):
        make_engine(NoProbe(), params, engine="hooks")  # type: ignore[arg-type]

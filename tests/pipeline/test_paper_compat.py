"""``paper-compat`` returns the released bio-coreset code's index sets.

The reference below is an independent re-implementation of the released code (commit 5b05de4 of
victor-yifanwu/bio-coreset) written from its documented behaviour, run on ``fm``'s own
``BioBertModel`` loaded from a tiny checkpoint in the official ``RNA-FM_pretrained.pth`` format:

* ``get_inf.py``: each sequence through ``fm``'s batch converter (``<cls>`` seq ``<eos>``), padded
  with ``<pad>`` to 1,024 tokens on its own, or cut to its first 1,024 tokens; the target is the
  input itself; ``CrossEntropyLoss()`` (mean over all 1,024 positions, padding included);
* ``model_override.py``: ``fm``'s forward with the padding mask dropped before the layers (the
  padding embeddings are still zeroed);
* ``influence.py``: per-sample gradients of ``lm_head.dense.weight``; Fisher = Σ g²/N over every
  scored sequence; score = −Σ g² / (F + 1e-8);
* ``get_coreset_index.py``: Top-k = the first k of ``np.argsort(scores)`` (the lowest stored values);
  CCI = drop the lowest 10% by ``np.argsort``, 50 bins from ``min`` to ``max·1.0001`` tested as
  ``min + i·step <= v < min + (i+1)·step``, budgets in ``np.argsort(bin sizes)`` order, then
  ``np.random.seed(42)`` and ``np.random.choice`` bin by bin.

``benchmarks/paper_compat_released.py`` runs the released code itself beside the preset.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from biocoreset import score, select
from biocoreset.adapters.rnafm import make_rnafm_adapter
from biocoreset.adapters.rnafm_checkpoint import save_rnafm_checkpoint
from biocoreset.adapters.rnafm_model import build_rnafm
from biocoreset.config.presets import get_preset

fm = pytest.importorskip("fm", reason="the rna-fm package (module fm) runs the reference")

WINDOW = 1024


# -- the released algorithm, re-implemented ---------------------------------------------------


def released_model(path: Path):
    """``model_override.rna_fm_t12(path)``: fm alphabet, prefixes stripped, ``<mask>`` row zeroed."""
    data = torch.load(path, map_location="cpu", weights_only=False)
    alphabet = fm.Alphabet.from_architecture("roberta_large", theme="rna")
    state = {}
    for key, value in data["model"].items():
        key = key.removeprefix("encoder.sentence_encoder.").removeprefix("encoder.")
        state[key] = value
    state["embed_tokens.weight"][alphabet.mask_idx].zero_()
    model = fm.BioBertModel(data["args"], alphabet)
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all(k.startswith("contact_head.") for k in missing)
    return model.double().eval(), alphabet


def released_logits(model, tokens: torch.Tensor) -> torch.Tensor:
    """fm's ESM-1b forward with ``padding_mask = None`` before the layers."""
    padding_mask = tokens.eq(model.padding_idx)
    x = model.embed_scale * model.embed_tokens(tokens)
    x = x + model.embed_positions(tokens)
    if model.emb_layer_norm_before:
        x = model.emb_layer_norm_before(x)
    x = x * (1 - padding_mask.unsqueeze(-1).type_as(x))
    x = x.transpose(0, 1)
    for layer in model.layers:
        x, _ = layer(x, self_attn_padding_mask=None, need_head_weights=False)
    x = model.emb_layer_norm_after(x).transpose(0, 1)
    return model.lm_head(x)


def released_window(converter, seq: str) -> torch.Tensor:
    _, _, toks = converter([("seq", seq)])
    ids = toks[0].tolist()
    if len(ids) < WINDOW:
        return torch.tensor(ids + [1] * (WINDOW - len(ids)))
    return torch.tensor(ids[:WINDOW])


def released_scores(model, alphabet, sequences: list[str]) -> np.ndarray:
    converter = alphabet.get_batch_converter()
    w = dict(model.named_parameters())["lm_head.dense.weight"]
    grads = []
    for seq in sequences:
        x = released_window(converter, seq).unsqueeze(0)
        logits = released_logits(model, x)
        loss = torch.nn.CrossEntropyLoss()(logits.view(-1, logits.size(-1)), x.view(-1))
        (g,) = torch.autograd.grad(loss, [w])
        grads.append(g.reshape(-1))
    G = torch.stack(grads)
    fisher = (G.square() / len(sequences)).sum(0)
    inv = 1 / (fisher + 1e-8)
    return (-(G.square() * inv).sum(1)).detach().numpy()


def released_topk(data: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(data)[:k]


def released_cci(data: np.ndarray, k: int, strata=50, seed=42, exclude=0.1) -> np.ndarray:
    np.random.seed(seed)
    index = np.arange(len(data))
    keep = np.ones(len(data), dtype=bool)
    keep[np.argsort(data)[: int(len(data) * exclude)]] = False
    data, index = data[keep], index[keep]
    lo, hi = data.min(), data.max() * 1.0001
    step = (hi - lo) / strata
    members = [index[(data >= lo + i * step) & (data < lo + (i + 1) * step)] for i in range(strata)]
    counts = np.array([m.size for m in members], dtype=int)
    budgets = np.zeros(strata, dtype=int)
    left = k
    for i, s in enumerate(np.argsort(counts)):
        budgets[s] = min(counts[s], left // (strata - i))
        left -= budgets[s]
    out = []
    for s in range(strata):
        if budgets[s] > 0 and members[s].size > 0:
            out.extend(np.random.choice(members[s], size=budgets[s], replace=False).tolist())
    return np.array(out)


# -- fixtures ----------------------------------------------------------------------------------


def _sequences(n: int, seed: int) -> list[str]:
    """Upper-case RNA (ACGU and a few IUPAC letters); two rows longer than the 1,024-token window."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("ACGU" * 12 + "NRY"))
    lengths = rng.integers(8, 160, size=n)
    lengths[3], lengths[11] = 1023, 1100  # cut: <cls> + 1,023 residues, no <eos>
    return ["".join(rng.choice(letters, size=int(m))) for m in lengths]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = build_rnafm("tiny")
    with torch.no_grad():  # every parameter away from its initial value (norms, biases too)
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return save_rnafm_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "RNA-FM_pretrained.pth")


@pytest.fixture(scope="module")
def corpus() -> list[tuple[str, str]]:
    return [(f"s{i:02d}", s) for i, s in enumerate(_sequences(40, seed=5))]


@pytest.fixture(scope="module")
def reference(checkpoint, corpus) -> np.ndarray:
    model, alphabet = released_model(checkpoint)
    return released_scores(model, alphabet, [s for _, s in corpus])


@pytest.fixture(scope="module")
def ours(checkpoint, corpus):
    preset = get_preset("paper-compat")
    adapter = make_rnafm_adapter(checkpoint=checkpoint, dtype="float64", **preset.adapter_options)
    return score(adapter, corpus, config=preset.score, batch_size=8, progress=False)


# -- tests -------------------------------------------------------------------------------------


def test_scores_equal_the_released_computation(ours, reference):
    assert ours.metadata["negated"] is True
    assert np.all(reference < 0)
    np.testing.assert_allclose(ours.scores, reference, rtol=1e-5, atol=0)
    # float64 end to end: far tighter than the 1e-5 asked for
    np.testing.assert_allclose(ours.scores, reference, rtol=1e-10, atol=0)


@pytest.mark.parametrize("budget", [4, 10])
def test_selections_equal_the_released_index_sets(ours, reference, budget):
    preset = get_preset("paper-compat")
    top = select(ours, "topk", budget=budget, seed=42, **preset.options_for("topk"))
    assert set(top.indices.tolist()) == set(released_topk(reference, budget).tolist())
    cci = select(ours, "cci", budget=budget, seed=42, **preset.options_for("cci"))
    expected = released_cci(reference, budget)
    assert expected.size == budget
    assert set(cci.indices.tolist()) == set(expected.tolist())
    # the released selector run on the released scores' exact values gives the same sets too
    direct = select(
        reference, "cci", budget=budget, seed=42, negated=True, **preset.options_for("cci")
    )
    assert set(direct.indices.tolist()) == set(expected.tolist())


def test_the_direction_is_the_most_influential_end(ours):
    """Fails if paper-compat ever takes the wrong end again (as before 0.2.0)."""
    influence = -ours.scores  # I(z) >= 0; paper-compat stores -I(z)
    k = 6
    preset = get_preset("paper-compat")
    top = select(ours, "topk", budget=k, seed=42, **preset.options_for("topk"))
    assert set(top.indices.tolist()) == set(np.argsort(-influence)[:k].tolist())
    assert influence[top.indices].min() >= np.sort(influence)[-k]
    cci = select(ours, "cci", budget=k, seed=42, **preset.options_for("cci"))
    n_cut = math.floor(len(influence) * 0.1)
    assert set(cci.plan.cut.tolist()) == set(np.argsort(-influence)[:n_cut].tolist())
    assert not set(cci.indices.tolist()) & set(cci.plan.cut.tolist())
    # the default preset on the same (negated) file makes the same choice of end
    assert set(select(ours, "topk", budget=k).indices.tolist()) == set(top.indices.tolist())


def test_each_released_choice_is_an_option_that_can_be_switched_off(checkpoint, corpus):
    preset = get_preset("paper-compat")
    opts = preset.adapter_options
    assert opts == {
        "loss_mode": "paper-compat",
        "attend_to_padding": True,
        "pad_to": 1024,
        "truncation": "first-tokens",
    }
    cci = preset.options_for("cci")
    assert (cci["edges"], cci["ties"], cci["rng"], cci["beta"]) == (
        "released",
        "numpy",
        "legacy",
        0.1,
    )
    # switching the attention mask back on changes the loss (so the option is live)
    adapter = make_rnafm_adapter(checkpoint=checkpoint, dtype="float64", **opts)
    masked = make_rnafm_adapter(
        checkpoint=checkpoint, dtype="float64", **{**opts, "attend_to_padding": False}
    )
    batch = adapter.collate(corpus[:2], seed=0)
    with torch.no_grad():
        a, b = adapter.per_sample_loss(batch), masked.per_sample_loss(batch)
    assert not torch.allclose(a, b, rtol=1e-3)
    # truncation: the 1,100-residue row keeps 1,023 residues and no <eos>
    batch = adapter.collate([corpus[11]], seed=0)
    row = batch.input_ids[0].tolist()
    assert len(row) == 1024 and row[0] == 0 and 2 not in row and int(batch.lengths[0]) == 1023
    keep_eos = make_rnafm_adapter(
        checkpoint=checkpoint, dtype="float64", **{**opts, "truncation": "keep-eos"}
    )
    assert keep_eos.collate([corpus[11]], seed=0).input_ids[0].tolist()[-1] == 2


@pytest.mark.slow
def test_the_shell_round_trip_gives_the_released_sets(tmp_path, checkpoint, corpus):
    from biocoreset.cli import main

    corpus = corpus[:20]
    model, alphabet = released_model(checkpoint)
    reference = released_scores(model, alphabet, [s for _, s in corpus])
    fasta = tmp_path / "corpus.fa"
    fasta.write_text("".join(f">{i}\n{s}\n" for i, s in corpus), encoding="utf-8")
    scores = tmp_path / "scores.parquet"
    argv = ["score", str(fasta), "--adapter", "rna-fm", "--model", str(checkpoint)]
    argv += ["--adapter-options", json.dumps({"dtype": "float64"}), "--preset", "paper-compat"]
    assert main([*argv, "--batch-size", "8", "-o", str(scores), "--no-progress"]) == 0
    ids = [i for i, _ in corpus]
    for method, expected in (
        ("topk", released_topk(reference, 5)),
        ("cci", released_cci(reference, 5)),
    ):
        out = tmp_path / method
        argv = ["select", str(scores), "--preset", "paper-compat", "--method", method]
        assert main([*argv, "--budget", "5", "-o", str(out), "--no-progress"]) == 0
        got = (out / "coreset_ids.txt").read_text(encoding="utf-8").split()
        assert set(got) == {ids[i] for i in expected.tolist()}

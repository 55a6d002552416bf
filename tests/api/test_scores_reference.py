"""identity and diagonal scores equal a brute-force float64 reference (docs/design.md)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from biocoreset import score
from biocoreset.adapters.hf import HFAdapter
from biocoreset.testing import random_rna, tiny_bert, tiny_esm
from reference import diagonal_scores, per_sample_grads

MODELS = {"esm": tiny_esm, "bert": tiny_bert}


@pytest.fixture(params=sorted(MODELS))
def adapter(request):
    model, tok = MODELS[request.param](seed=1)
    return HFAdapter(model, tok)


def _names(adapter):
    return list(adapter.scored_parameters())


@pytest.mark.parametrize("engine", ["loop", "auto"])
def test_diagonal_matches_bruteforce(adapter, engine):
    records = random_rna(11, seed=3, min_len=3, max_len=25)  # varied lengths: padding present
    result = score(adapter, records, subset=5, batch_size=4, seed=7, engine=engine)
    subset_rows = [result.ids.index(i) for i in result.metadata["subset_ids"]]
    grads = per_sample_grads(adapter, records, _names(adapter), seed=7)
    lam = result.metadata["damping"]
    assert lam > 0
    # λ recorded as an absolute number equals 0.1 × mean Fisher entry
    fisher = grads[subset_rows].pow(2).mean(0)
    assert lam == pytest.approx(0.1 * float(fisher.mean()), rel=1e-9)
    expected = diagonal_scores(grads, subset_rows, lam).numpy()
    np.testing.assert_allclose(result.scores, expected, rtol=1e-6, atol=0)


def test_diagonal_absolute_damping(adapter):
    records = random_rna(9, seed=4)
    result = score(
        adapter, records, subset=["seq1", "seq4", "seq8"], damping=1e-3, batch_size=3, engine="loop"
    )
    assert result.metadata["damping"] == 1e-3
    assert result.metadata["subset_ids"] == ["seq1", "seq4", "seq8"]
    grads = per_sample_grads(adapter, records, _names(adapter))
    np.testing.assert_allclose(
        result.scores, diagonal_scores(grads, [1, 4, 8], 1e-3).numpy(), rtol=1e-6
    )


def test_identity_matches_bruteforce(adapter):
    records = random_rna(7, seed=5, min_len=2, max_len=20)
    result = score(adapter, records, curvature="identity", batch_size=3, engine="loop")
    grads = per_sample_grads(adapter, records, _names(adapter))
    np.testing.assert_allclose(result.scores, grads.pow(2).sum(1).numpy(), rtol=1e-6)
    assert result.metadata["damping"] == 0.0


def test_loss_and_length_match_bruteforce(adapter):
    records = random_rna(6, seed=6)
    result = score(adapter, records, scorer="loss", batch_size=4)
    for i, rec in enumerate(records):
        batch = adapter.collate([rec], seed=0)
        with torch.no_grad():
            expected = float(adapter.per_sample_loss(batch)[0])
        assert result.loss[i] == pytest.approx(expected, rel=1e-12)
        assert result.scores[i] == result.loss[i]
        assert result.length[i] == len(rec[1])


def test_parameter_patterns_restrict_scoring(adapter):
    records = random_rna(6, seed=2)
    groups = adapter.parameter_groups()
    assert "lm head" in groups and "embeddings" in groups
    result = score(adapter, records, curvature="identity", parameters=["lm head"], engine="loop")
    names = groups["lm head"]
    grads = per_sample_grads(adapter, records, names)
    np.testing.assert_allclose(result.scores, grads.pow(2).sum(1).numpy(), rtol=1e-6)
    assert result.metadata["num_scored_parameters"] == sum(
        p.numel() for n, p in adapter.model.named_parameters() if n in names
    )


def test_every_trainable_parameter_gets_a_gradient():
    model, tok = tiny_esm(seed=2)
    adapter = HFAdapter(model, tok)
    grads = per_sample_grads(adapter, random_rna(3, seed=1), _names(adapter))
    params = adapter.scored_parameters()
    offset = 0
    for name, p in params.items():
        block = grads[:, offset : offset + p.numel()]
        offset += p.numel()
        if "position_embeddings" in name or "word_embeddings" in name:
            continue  # only rows of used tokens / positions are non-zero
        assert block.abs().sum() > 0, f"{name} got no gradient"

"""The default and paper-compat presets; the released code's loss and conventions."""

from __future__ import annotations

import attrs
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from biocoreset import score, select
from biocoreset.adapters.hf import HFAdapter
from biocoreset.config import ScoreConfig
from biocoreset.config.presets import PRESETS, get_preset
from biocoreset.errors import ConfigError
from biocoreset.testing import random_rna, tiny_esm


def test_default_follows_design():
    p = get_preset("default")
    assert p.score == ScoreConfig()
    assert p.options_for("cci") == {"beta": 0.05, "strata": 50} and p.select.seed == 0
    assert p.options_for("topk") == {} and p.select.method == "cci"
    assert p.finetune.lr == 1e-5 and p.adapter_options == {}


def test_paper_compat_settings():
    p = get_preset("paper-compat")
    s = p.score
    assert s.parameters == ("lm_head.dense.weight",)
    assert not hasattr(s, "loss_mode")  # the loss is the adapter's (adapter_options)
    assert (s.fit_on, s.damping, s.negate, s.seed) == (
        "all",
        1e-8,
        True,
        42,
    )
    assert p.options_for("cci") == {
        "beta": 0.1,
        "strata": 50,
        "edges": "released",
        "ties": "numpy",
        "rng": "legacy",
    }
    assert p.options_for("topk") == {"ties": "numpy"} and p.select.seed == 42
    assert p.adapter_options["loss_mode"] == "paper-compat"
    assert p.adapter_options["pad_to"] == 1024


def test_unknown_preset():
    with pytest.raises(
        ConfigError, match=r"unknown preset 'paper'.*Choices: default, paper-compat, stable"
    ):
        get_preset("paper")
    assert sorted(PRESETS) == ["default", "paper-compat", "stable"]


def test_stable_preset_is_the_explicit_flags(tmp_path):
    """``--preset stable`` scores as ``--parameters 'lm head' --mask-draws 3`` (the same
    computation twice in one process, compared to float64 rounding)."""
    import numpy as np
    import torch

    from biocoreset.cli import main as cli
    from biocoreset.store.result import ScoreResult

    p = get_preset("stable")
    assert p.score.parameters == ("lm head",) and p.score.mask_draws == 3
    assert attrs.evolve(p.score, parameters=None, mask_draws=1) == get_preset("default").score
    assert p.adapter_options == {} and p.finetune == get_preset("default").finetune
    model, tok = tiny_esm(seed=0, dtype=torch.float64, max_positions=40)
    model.save_pretrained(tmp_path / "model")
    tok.save_pretrained(tmp_path / "model")
    corpus = tmp_path / "c.fa"
    corpus.write_text(
        "".join(f">{i}\n{s}\n" for i, s in random_rna(24, seed=2, min_len=6, max_len=20)),
        encoding="utf-8",
    )
    common = [str(corpus), "--model", str(tmp_path / "model"), "--subset", "8", "--no-progress"]
    assert cli(["score", *common, "--preset", "stable", "-o", str(tmp_path / "a.parquet")]) == 0
    explicit = ["--parameters", "lm head", "--mask-draws", "3", "-o", str(tmp_path / "b.parquet")]
    assert cli(["score", *common, *explicit]) == 0
    a, b = ScoreResult.load(tmp_path / "a.parquet"), ScoreResult.load(tmp_path / "b.parquet")
    assert a.ids == b.ids and a.metadata["mask_draws"] == 3
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-12, atol=0)


def test_paper_compat_loss_is_unmasked_mean_over_all_positions():
    model, tok = tiny_esm(seed=1)
    adapter = HFAdapter(model, tok, loss_mode="paper-compat")
    records = [("a", "ACGUACG"), ("b", "GU")]
    batch = adapter.collate(records, seed=0)
    # exact: token ids; nothing masked, padding is a target
    assert torch.equal(batch.input_ids, batch.labels)
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    expected = F.cross_entropy(logits.transpose(1, 2), batch.labels, reduction="none").mean(1)
    torch.testing.assert_close(adapter.per_sample_loss(batch), expected, rtol=1e-12, atol=0)


def test_paper_compat_scores_match_a_brute_force_reference():
    model, tok = tiny_esm(seed=2)
    adapter = HFAdapter(model, tok, loss_mode="paper-compat")
    records = random_rna(9, seed=3, min_len=3, max_len=20)
    result = score(adapter, records, config=get_preset("paper-compat").score, batch_size=3)
    w = dict(model.named_parameters())["lm_head.dense.weight"]
    assert result.metadata["num_scored_parameters"] == w.numel()
    assert result.metadata["damping"] == 1e-8 and result.metadata["negated"] is True
    assert result.metadata["fit_on"] == "all" and result.metadata["fit_samples"] == 9
    # brute force: per-sample gradients inside the same padded batches, Fisher over every row
    grads = []
    for start in range(0, 9, 3):
        batch = adapter.collate(records[start : start + 3], seed=42)
        losses = adapter.per_sample_loss(batch)
        for b in range(len(losses)):
            (g,) = torch.autograd.grad(losses[b], [w], retain_graph=True)
            grads.append(g.reshape(-1))
    G = torch.stack(grads)
    fisher = G.pow(2).mean(0)
    expected = -(G.pow(2) / (fisher + 1e-8)).sum(1)
    np.testing.assert_allclose(result.scores, expected.detach().numpy(), rtol=1e-6)


def test_loss_mode_is_an_adapter_option():
    model, tok = tiny_esm()
    with pytest.raises(ConfigError, match=r"loss_mode is the adapter's option.*adapter_options"):
        score(HFAdapter(model, tok), random_rna(4), loss_mode="paper-compat")
    # a bare model is wrapped with the adapter options' loss mode
    result = score(
        model, random_rna(4), tokenizer=tok, adapter_options={"loss_mode": "paper-compat"}, subset=2
    )
    assert result.metadata["loss_mode"] == "paper-compat"


def test_negated_scores_keep_the_most_influential_end():
    influence = np.array([0.1, 0.5, 0.3, 0.9])
    assert select(influence, "topk", budget=1).indices.tolist() == [3]
    assert select(-influence, "topk", budget=1, negated=True).indices.tolist() == [3]
    # an explicit direction is honoured as given
    assert select(-influence, "topk", budget=1, negated=True, largest=True).indices.tolist() == [0]
    plan = select(-influence, "cci", budget=1, negated=True, beta=0.25, strata=1).plan
    assert plan.cut.tolist() == [3]  # the β cut drops the most influential sequence

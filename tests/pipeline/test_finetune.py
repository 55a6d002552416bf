"""Post-hoc fine-tuning (paper A.5): defaults, schedule, the update itself, "w/o ft", diagnostic."""

from __future__ import annotations

import math

import attrs
import numpy as np
import pytest
import torch

from biocoreset import score
from biocoreset.adapters.hf import HFAdapter
from biocoreset.config import FinetuneConfig
from biocoreset.errors import ConfigError, OutputExistsError
from biocoreset.testing import random_rna, tiny_esm
from biocoreset.train.finetune import finetune, load_weights, lr_factor, save_finetuned


def _adapter(seed=0, **kw):
    model, tok = tiny_esm(seed=seed)
    return HFAdapter(model, tok, **kw)


def _snapshot(adapter):
    return {k: v.detach().clone() for k, v in adapter.model.state_dict().items()}


def test_defaults_are_the_papers():
    cfg = FinetuneConfig()
    assert (cfg.epochs, cfg.lr, cfg.weight_decay, cfg.warmup_steps, cfg.batch_size, cfg.seed) == (
        1,
        1e-5,
        0.01,
        50,
        16,
        0,
    )
    assert cfg.masking.probability == 0.15 and cfg.masking.replacement == (0.8, 0.1, 0.1)
    assert cfg.enabled is True


def test_lr_schedule():
    assert [lr_factor(s, warmup_steps=50, total_steps=200) for s in (0, 24, 49)] == [
        1 / 50,
        25 / 50,
        1.0,
    ]
    assert lr_factor(50, warmup_steps=50, total_steps=200) == pytest.approx(150 / 150)
    assert lr_factor(199, warmup_steps=50, total_steps=200) == pytest.approx(1 / 150)
    assert lr_factor(120, warmup_steps=50, total_steps=200, schedule="constant") == 1.0
    # fewer steps than the warm-up: warm-up only (never a step at lr 0)
    assert [lr_factor(s, warmup_steps=50, total_steps=3) for s in range(3)] == [
        1 / 50,
        2 / 50,
        3 / 50,
    ]


def test_one_step_equals_a_manual_adamw_step():
    adapter = _adapter(seed=1)
    records = random_rna(6, seed=2, min_len=4)
    reference = _adapter(seed=1)
    params = reference.scored_parameters(None)
    # by hand: the mean masked loss over the whole batch, AdamW with decay on matrices only
    batch = reference.collate(records, seed=0)
    reference.model.train()
    loss = reference.per_sample_loss(batch).mean()
    loss.backward()
    decay = [p for p in params.values() if p.ndim >= 2]
    rest = [p for p in params.values() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.01}, {"params": rest, "weight_decay": 0.0}],
        lr=1e-3 / 50,
    )  # step 0 of the warm-up
    opt.step()
    result = finetune(adapter, records, subset=6, batch_size=6, lr=1e-3, diagnostic_samples=0)
    assert result.steps == 1 and result.learning_rates == [pytest.approx(1e-3 / 50)]
    assert result.losses[0] == pytest.approx(float(loss.detach()), rel=1e-12)
    for name, p in reference.model.named_parameters():
        torch.testing.assert_close(
            dict(adapter.model.named_parameters())[name], p, rtol=1e-12, atol=0
        )


def test_epoch_over_dsub_changes_weights_and_reports_diagnostic():
    adapter = _adapter()
    before = _snapshot(adapter)
    records = random_rna(30, seed=3)
    result = finetune(
        adapter, records, subset=20, batch_size=4, lr=5e-3, warmup_steps=2, diagnostic_samples=None
    )
    assert result.steps == math.ceil(20 / 4) and len(result.losses) == 5
    assert result.learning_rates[:2] == [pytest.approx(2.5e-3), pytest.approx(5e-3)]
    assert result.subset_size == 20 and len(result.subset_ids) == 20
    assert result.before.samples == result.after.samples == 20
    assert result.after.mean_loss < result.before.mean_loss
    assert "mean per-sample gradient norm" in result.summary()
    # exact: which weights the optimiser touched
    changed = [k for k, v in adapter.model.state_dict().items() if not torch.equal(v, before[k])]
    assert "esm.embeddings.word_embeddings.weight" in changed
    assert not any("contact_head" in k for k in changed)  # unused by the loss: left alone


def test_without_finetuning_leaves_the_model_alone():
    adapter = _adapter()
    before = _snapshot(adapter)
    result = finetune(adapter, random_rna(10), subset=5, enabled=False)
    assert result.steps == 0 and result.before is None and result.after is None
    assert "w/o ft" in result.summary()
    # exact: no fine-tune leaves the weights unchanged
    assert all(torch.equal(v, before[k]) for k, v in adapter.model.state_dict().items())


def test_same_dsub_as_scoring():
    records = random_rna(40, seed=8)
    ft = finetune(_adapter(), records, subset=12, seed=3, enabled=False)
    result = score(_adapter(), records, subset=12, seed=3)
    assert ft.subset_ids == result.metadata["subset_ids"]
    ft2 = finetune(_adapter(), records, subset=12, seed=0, subset_seed=3, enabled=False)
    assert ft2.subset_ids == ft.subset_ids


def test_paper_compat_adapter_fine_tunes_with_the_masked_loss():
    adapter = _adapter(loss_mode="paper-compat")
    masked = _adapter()
    records = random_rna(8, seed=4)
    a = finetune(adapter, records, subset=8, batch_size=8, lr=1e-3, diagnostic_samples=0)
    b = finetune(masked, records, subset=8, batch_size=8, lr=1e-3, diagnostic_samples=0)
    assert a.losses == b.losses
    assert adapter.loss_mode == "paper-compat"  # restored afterwards


def test_max_steps_and_epochs():
    result = finetune(
        _adapter(),
        random_rna(20),
        subset=16,
        batch_size=4,
        epochs=3,
        max_steps=7,
        diagnostic_samples=0,
    )
    assert result.steps == 7


def test_save_and_load(tmp_path):
    adapter = _adapter()
    result = finetune(adapter, random_rna(8), subset=8, batch_size=4, lr=1e-3, diagnostic_samples=2)
    save_finetuned(tmp_path / "ft", adapter, result)
    with pytest.raises(OutputExistsError, match="already exists"):
        save_finetuned(tmp_path / "ft", adapter, result)
    other = _adapter()
    load_weights(other.model, tmp_path / "ft" / "model.pt")
    for k, v in adapter.model.state_dict().items():
        # exact: weights saved and read back
        assert torch.equal(other.model.state_dict()[k], v)
    import json

    report = json.loads((tmp_path / "ft" / "finetune.json").read_text())
    assert report["steps"] == 2 and report["config"]["lr"] == 1e-3
    with pytest.raises(ConfigError, match="does not fit the model"):
        load_weights(torch.nn.Linear(2, 2), tmp_path / "ft" / "model.pt")


def test_bad_options():
    with pytest.raises(ConfigError, match=r"unknown finetune\(\) option\(s\) \['learning_rate'\]"):
        finetune(_adapter(), random_rna(4), learning_rate=1.0)
    with pytest.raises(ConfigError, match="schedule must be one of"):
        attrs.evolve(FinetuneConfig(), schedule="cosine")
    with pytest.raises(ConfigError, match="lr must be a finite number"):
        FinetuneConfig(lr=-1)
    with pytest.raises(ConfigError, match="exceeds the 4 sequences"):
        finetune(_adapter(), random_rna(4), subset=5)


def test_diagnostic_is_mean_loss_and_mean_per_sample_grad_norm():
    from biocoreset.train.finetune import diagnose

    adapter = _adapter()
    records = random_rna(5, seed=6)
    params = adapter.scored_parameters(None)
    diag = diagnose(adapter, records, params, batch_size=2, seed=0)
    losses, norms = [], []
    for rec in records:
        loss = adapter.per_sample_loss(adapter.collate([rec], seed=0))[0]
        grads = torch.autograd.grad(loss, list(params.values()))
        losses.append(float(loss.detach()))
        norms.append(float(torch.sqrt(sum(g.pow(2).sum() for g in grads))))
    assert diag.mean_loss == pytest.approx(np.mean(losses), rel=1e-10)
    assert diag.mean_grad_norm == pytest.approx(np.mean(norms), rel=1e-8)

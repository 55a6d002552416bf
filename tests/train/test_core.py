"""The training core: batch plans, rank shares, one step against a hand-written one, log lines."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from biocoreset.adapters.hf import HFAdapter
from biocoreset.runtime.distributed import DistContext
from biocoreset.runtime.progress import progress_settings
from biocoreset.testing import random_rna, tiny_esm
from biocoreset.train.core import EpochPlan, Trainer, local_share, train_loop
from biocoreset.train.pretrain import PretrainConfig, pretrain


def test_epoch_plan_covers_each_epoch_once_in_its_order():
    calls = []

    def order(epoch):
        calls.append(epoch)
        return np.random.default_rng(epoch).permutation(7)

    plan = EpochPlan(7, batch_size=3, order=order)
    batches = [plan(s) for s in range(6)]
    assert [e for e, _ in batches] == [0, 0, 0, 1, 1, 1] and calls == [0, 1]
    for epoch in (0, 1):
        seen = [i for e, idx in batches if e == epoch for i in idx]
        assert seen == order(epoch).tolist()
    assert [len(i) for _, i in batches[:3]] == [3, 3, 1]
    dropped = EpochPlan(7, batch_size=3, order=lambda e: range(7), steps_per_epoch=2)
    assert dropped(2) == (1, [0, 1, 2])


def test_local_share_splits_a_batch_over_ranks():
    idx = [10, 11, 12, 13, 14]
    parts = [local_share(idx, DistContext(rank=r, world_size=2)) for r in range(2)]
    assert parts == [([10, 12, 14], True), ([11, 13], True)]
    assert local_share([10], DistContext(rank=2, world_size=3)) == ([10], False)


def test_a_step_is_adamw_on_the_mean_loss_with_clipping():
    records = random_rna(6, seed=2, min_len=4)
    a, b = HFAdapter(*tiny_esm(seed=3)), HFAdapter(*tiny_esm(seed=3))
    opt_a = torch.optim.AdamW(a.model.parameters(), lr=1e-2)
    trainer = Trainer(
        a, opt_a, torch.optim.lr_scheduler.LambdaLR(opt_a, lambda s: 0.5), max_grad_norm=0.1
    )

    def step_fn(module, step, epoch, idx):
        loss = module(a.collate([records[i] for i in idx], seed=0)).mean()
        loss.backward()
        return float(loss.detach())

    train_loop(
        trainer,
        EpochPlan(6, batch_size=6, order=lambda e: range(6)),
        total=1,
        step_fn=step_fn,
        progress=False,
    )
    trainer.close()
    opt_b = torch.optim.AdamW(b.model.parameters(), lr=5e-3)
    b.per_sample_loss(b.collate(records, seed=0)).mean().backward()
    torch.nn.utils.clip_grad_norm_(list(b.model.parameters()), 0.1)
    opt_b.step()
    for (name, p), q in zip(a.model.named_parameters(), b.model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=0, msg=name)
    assert all(p.grad is None for p in a.model.parameters())
    with pytest.raises(RuntimeError, match="closed"):
        trainer.step(lambda module: 0.0)


def test_pretrain_logs_its_loss_without_a_terminal(tmp_path, monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    model, tok = tiny_esm(dtype=torch.float32)
    cfg = PretrainConfig(max_steps=3, batch_size=4, warmup_steps=1, progress=None)
    with progress_settings("auto", interval=0):
        pretrain(HFAdapter(model, tok), random_rna(8), tmp_path / "run", config=cfg)
    lines = [ln for ln in err.getvalue().splitlines() if ln.startswith("pretrain:")]
    assert lines and "3/3 step (100%)" in lines[-1]
    assert any("loss=" in ln and "lr=" in ln for ln in lines)

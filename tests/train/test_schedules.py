"""Learning-rate schedules against their closed-form formulas, through a real optimizer."""

from __future__ import annotations

import math
import pickle

import pytest
import torch

from biocoreset.errors import ConfigError
from biocoreset.train.schedules import make_lr_scheduler, make_schedule


def _lrs(
    name: str, steps: int, *, warmup: int, total: int | None = None, base: float = 1e-4
) -> list[float]:
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=base)
    sched = make_lr_scheduler(opt, name, warmup_steps=warmup, total_steps=total)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])  # the lr the next optimizer step uses
        opt.step()
        sched.step()
    return out


def test_inverse_sqrt_matches_formula():
    W, base = 2000, 1e-4
    lrs = _lrs("inverse-sqrt", 4 * W, warmup=W, base=base)
    for s, lr in enumerate(lrs):
        t = s + 1
        expected = base * (t / W if t <= W else math.sqrt(W / t))
        assert lr == pytest.approx(expected, rel=1e-12), s
    assert lrs[0] == pytest.approx(base / W)  # the first step is not wasted at lr 0
    assert lrs[W - 1] == pytest.approx(base)  # peak at the end of warm-up
    assert lrs[4 * W - 1] == pytest.approx(base / 2)  # sqrt(W / 4W) = 1/2


def test_constant_and_linear_match_formulas():
    W, T, base = 4, 12, 1.0
    const = _lrs("constant", 10, warmup=W, base=base)
    assert const == pytest.approx([0.25, 0.5, 0.75, 1, 1, 1, 1, 1, 1, 1])
    lin = _lrs("linear", T, warmup=W, total=T, base=base)
    expected = [(s + 1) / W if s + 1 <= W else (T - s) / (T - W) for s in range(T)]
    assert lin == pytest.approx(expected)
    assert lin[-1] == pytest.approx(1 / (T - W))


def test_cosine_matches_formula():
    W, T, base = 5, 25, 2e-3
    lrs = _lrs("cosine", T, warmup=W, total=T, base=base)
    for s, lr in enumerate(lrs):
        t = s + 1
        factor = t / W if t <= W else 0.5 * (1 + math.cos(math.pi * (s - W) / (T - W)))
        assert lr == pytest.approx(base * factor, rel=1e-12), s
    assert lrs[W] == pytest.approx(base)  # the first step after the warm-up is at the peak
    assert 0 < lrs[-1] < lrs[-2] < base / 10  # decays towards 0 without a step at lr 0
    assert lrs[-1] < base / 100
    mid = W + (T - W) // 2
    assert lrs[mid] == pytest.approx(base / 2)  # half-way through the decay: half the peak


def test_zero_warmup_is_pure_inverse_sqrt():
    f = make_schedule("inverse-sqrt", warmup_steps=0)
    assert [f(s) for s in range(4)] == pytest.approx([1, math.sqrt(1 / 2), math.sqrt(1 / 3), 0.5])


def test_scheduler_state_round_trip_and_pickle():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=1.0)
    sched = make_lr_scheduler(opt, "inverse-sqrt", warmup_steps=3)
    for _ in range(5):
        opt.step()
        sched.step()
    state = sched.state_dict()
    opt2 = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched2 = make_lr_scheduler(opt2, "inverse-sqrt", warmup_steps=3)
    sched2.load_state_dict(state)
    opt2.load_state_dict(opt.state_dict())
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    assert (
        pickle.loads(pickle.dumps(make_schedule("linear", warmup_steps=1, total_steps=3)))(2) == 0.5
    )


def test_errors_name_the_problem():
    with pytest.raises(
        ConfigError,
        match="unknown schedule 'cosin'; choices: constant, cosine, inverse-sqrt, linear",
    ):
        make_schedule("cosin", warmup_steps=1)
    with pytest.raises(ConfigError, match="total_steps > warmup_steps"):
        make_schedule("linear", warmup_steps=10, total_steps=5)
    with pytest.raises(ConfigError, match="'cosine' schedule needs total_steps > warmup_steps"):
        make_schedule("cosine", warmup_steps=10, total_steps=10)
    with pytest.raises(ConfigError, match="warmup_steps must be an integer >= 0"):
        make_schedule("constant", warmup_steps=-1)

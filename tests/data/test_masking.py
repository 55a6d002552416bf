"""Mask draws: draw 0 is the single mask of docs/design.md; more draws are seeded by (seed, id, k)."""

from __future__ import annotations

import numpy as np
import pytest

from biocoreset.data.masking import MaskingConfig, mask_positions, resolve_schedule, sequence_rng
from biocoreset.errors import ConfigError

TOKENS = [0, *([5, 6, 7, 8] * 25), 2]  # <cls> + 100 residues + <eos>
MASKABLE = [False, *([True] * 100), False]


def _mask(rid="r1", seed=0, draw=0, draws=1, schedule="auto"):
    return mask_positions(
        rid,
        TOKENS,
        MASKABLE,
        seed=seed,
        config=MaskingConfig(schedule=schedule),
        mask_token_id=9,
        random_token_ids=[5, 6, 7, 8],
        draw=draw,
        draws=draws,
    )


def _positions(labels):
    return {i for i, v in enumerate(labels) if v != -100}


def _single_mask_reference(rid, seed):
    """The single-mask algorithm of docs/design.md, transcribed: 15% of positions, then 80/10/10."""
    rng = sequence_rng(seed, rid)
    candidates = np.arange(1, 101)
    chosen = np.sort(rng.choice(candidates, size=15, replace=False))
    u = rng.random(15)
    picks = rng.integers(0, 4, size=15)
    out, labels = list(TOKENS), [-100] * len(TOKENS)
    for j, pos in enumerate(chosen.tolist()):
        labels[pos] = TOKENS[pos]
        if u[j] < 0.8:
            out[pos] = 9
        elif u[j] < 0.9:
            out[pos] = [5, 6, 7, 8][int(picks[j])]
    return out, labels


@pytest.mark.parametrize("schedule", ["auto", "independent", "cover"])
def test_one_draw_is_the_single_mask_whatever_the_schedule(schedule):
    for rid in ("a", "b", "URS0001"):
        assert _mask(rid, seed=3, schedule=schedule) == _single_mask_reference(rid, 3)


def test_draws_differ_and_are_reproducible():
    draws = [_mask(draw=k, draws=8, schedule="independent") for k in range(8)]
    assert draws[0] == _mask()  # draw 0 of the independent schedule is the single mask
    assert len({tuple(d[1]) for d in draws}) == 8
    assert draws[5] == _mask(draw=5, draws=8, schedule="independent")
    assert all(len(_positions(d[1])) == 15 for d in draws)


def test_cover_draws_are_disjoint_and_cover_the_sequence():
    draws = [_positions(_mask(draw=k, draws=8, schedule="cover")[1]) for k in range(8)]
    assert all(len(d) == 15 for d in draws)
    first_round = draws[:6]  # ⌊100 / 15⌋ = 6 disjoint chunks of one permutation
    assert len(set().union(*first_round)) == 90
    assert _positions(_mask(draw=0, draws=8)[1]) != draws[0]  # auto is independent (trust.md)
    assert _mask(draw=3, draws=8) == _mask(draw=3, draws=8, schedule="independent")
    assert draws[6] != draws[0]  # a new permutation for the next round


def test_schedule_resolution_and_errors():
    assert (
        resolve_schedule("auto", 1) == "independent"
        and resolve_schedule("auto", 2) == "independent"
    )
    with pytest.raises(ConfigError, match="Did you mean 'cover'"):
        MaskingConfig(schedule="covre")
    with pytest.raises(ConfigError, match=r"outside 0\.\.1"):
        _mask(draw=2, draws=2)

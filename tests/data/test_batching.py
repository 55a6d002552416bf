"""Length-aware batching: every item once, bounded windows, sizes and token budgets respected."""

from __future__ import annotations

import numpy as np
import pytest

from biocoreset.data.batching import length_batches, real_token_fraction
from biocoreset.errors import ConfigError


def _items(n, seed=0):
    rng = np.random.default_rng(seed)
    return [(i, f"id{i}", "A" * int(rng.integers(1, 300))) for i in range(n)]


@pytest.mark.parametrize(("batch_size", "window"), [(1, None), (4, None), (16, 40), (8, 8)])
def test_every_item_once(batch_size, window):
    items = _items(203)
    batches = list(length_batches(items, batch_size=batch_size, window=window))
    seen = sorted(i for b in batches for i, _, _ in b)
    assert seen == list(range(203))
    assert all(1 <= len(b) <= batch_size for b in batches)


def test_window_is_bounded_and_sorted_inside():
    items = _items(100)
    consumed = []

    def stream():
        for it in items:
            consumed.append(it[0])
            yield it

    gen = length_batches(stream(), batch_size=4, window=20)
    first = next(gen)
    assert len(consumed) == 20  # only the first window was read
    assert {i for i, _, _ in first} <= set(range(20))
    lengths = [len(s) for b in [first, *gen] for _, _, s in b]
    for w in range(5):  # ascending inside each window of 20
        assert lengths[w * 20 : (w + 1) * 20] == sorted(lengths[w * 20 : (w + 1) * 20])


def test_window_of_one_batch_keeps_consecutive_batches():
    items = _items(37)
    batches = list(length_batches(items, batch_size=5, window=5))
    assert [sorted(i for i, _, _ in b) for b in batches] == [
        list(range(s, min(s + 5, 37))) for s in range(0, 37, 5)
    ]


def test_equal_lengths_keep_input_order():
    items = [(i, str(i), "ACGU") for i in range(7)]
    assert [i for b in length_batches(items, batch_size=3) for i, _, _ in b] == list(range(7))


def test_max_tokens_bounds_the_padded_size():
    items = _items(300, seed=1)
    batches = list(length_batches(items, batch_size=64, max_tokens=1000))
    for b in batches:
        longest = max(len(s) for _, _, s in b)
        assert len(b) == 1 or len(b) * longest <= 1000
    assert sorted(i for b in batches for i, _, _ in b) == list(range(300))


def test_rng_shuffles_batches_not_their_content():
    items = _items(64)
    plain = list(length_batches(items, batch_size=4))
    shuffled = list(length_batches(items, batch_size=4, rng=np.random.default_rng(0)))
    assert sorted(map(tuple, plain)) == sorted(map(tuple, shuffled)) and plain != shuffled


def test_grouping_raises_the_real_token_fraction():
    items = _items(512)
    lengths = lambda bs: [[len(s) for _, _, s in b] for b in bs]  # noqa: E731
    consecutive = real_token_fraction(lengths(length_batches(items, batch_size=16, window=16)))
    grouped = real_token_fraction(lengths(length_batches(items, batch_size=16)))
    assert consecutive < 0.7 and grouped > 0.95


def test_bad_sizes_are_errors():
    with pytest.raises(ConfigError, match="batch_size must be an integer >= 1, got 0"):
        list(length_batches([], batch_size=0))
    with pytest.raises(ConfigError, match="max_tokens"):
        list(length_batches([], batch_size=2, max_tokens=-1))


def test_grouped_order_groups_by_length_and_shuffles_batches():
    from biocoreset.data.batching import grouped_order

    rng = np.random.default_rng(0)
    n, b = 1000, 16
    lengths = rng.integers(20, 1000, size=n)
    order = rng.permutation(n)
    out = grouped_order(order, lengths, b, seed=(3, 1), window_batches=8)
    assert sorted(out.tolist()) == list(range(n))  # a permutation
    batches = [out[i : i + b] for i in range(0, n, b)]
    assert len(batches[-1]) == n % b  # the short batch stays last
    # every full batch is a run of one window sorted by length: within-batch spread is small
    plain = [order[i : i + b] for i in range(0, n, b)]
    grouped_frac = real_token_fraction([lengths[x].tolist() for x in batches])
    plain_frac = real_token_fraction([lengths[x].tolist() for x in plain])
    assert grouped_frac > 0.9 > plain_frac
    # batches are shuffled: their mean lengths are not monotone within a window
    means = [lengths[x].mean() for x in batches[:8]]
    assert means != sorted(means) and means != sorted(means, reverse=True)
    # deterministic in the seed, different for another epoch
    # exact: integer orders
    assert np.array_equal(out, grouped_order(order, lengths, b, seed=(3, 1), window_batches=8))
    assert not np.array_equal(out, grouped_order(order, lengths, b, seed=(3, 2), window_batches=8))

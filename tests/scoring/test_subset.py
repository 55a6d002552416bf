"""D_sub is a seeded function of the ids: the count rule, determinism, order-freedom, ties."""

from __future__ import annotations

import numpy as np
import pytest

from biocoreset.data.validation import SourceIndex, ValidationReport, id_hash
from biocoreset.errors import ConfigError, InputError
from biocoreset.scoring.subset import (
    draw_subset,
    subset_key,
    subset_keys,
    subset_order,
    subset_size,
)


def _index(ids, positions=None):
    return SourceIndex(
        num_rows=len(ids),
        num_records=len(ids),
        digest="x",
        report=ValidationReport(),
        positions=positions or {},
        id_hashes=np.array([id_hash(i) for i in ids], dtype=np.uint64),
    )


def _drawn(ids, subset, seed):
    return {ids[r] for r in draw_subset(_index(ids), subset, seed).tolist()}


def test_count_rule_is_as_before():
    assert subset_size(100, None) == 100  # all if fewer than 256
    assert subset_size(300, None) == 256  # at least 256
    assert subset_size(30_000, None) == 300  # 1%
    assert subset_size(30_001, None) == 301  # rounded up
    assert subset_size(1000, 7) == 7
    assert subset_size(1000, 0.1) == 100 and subset_size(10, 0.01) == 1
    with pytest.raises(ConfigError, match="subset size 11 exceeds the 10 sequences"):
        subset_size(10, 11)


def test_draw_is_seeded_sorted_and_of_the_right_size():
    ids = [f"r{i}" for i in range(1000)]
    rows = draw_subset(_index(ids), 0.1, 3)
    assert rows.size == 100 and np.all(np.diff(rows) > 0)
    # exact: integer rows
    assert np.array_equal(rows, draw_subset(_index(ids), 0.1, 3))
    assert not np.array_equal(rows, draw_subset(_index(ids), 0.1, 4))
    assert draw_subset(_index(ids[:300]), None, 0).size == 256
    assert draw_subset(_index(ids[:5]), None, 0).tolist() == [0, 1, 2, 3, 4]


def test_draw_depends_on_the_ids_only():
    ids = [f"seq{i}" for i in range(2000)]
    perm = [ids[i] for i in np.random.default_rng(0).permutation(len(ids))]
    a = _drawn(ids, 50, 7)
    assert a == _drawn(perm, 50, 7) == _drawn(ids[::-1], 50, 7)
    # the chosen ids are exactly those with the 50 smallest keys
    keys = {i: subset_key(i, 7) for i in ids}
    assert a == set(sorted(ids, key=keys.__getitem__)[:50])


def test_draw_of_a_subset_of_the_corpus_nests():
    """With a fixed size, adding records can only push chosen ids out, never bring others in."""
    ids = [f"seq{i}" for i in range(500)]
    small, big = _drawn(ids[:250], 20, 1), _drawn(ids, 20, 1)
    assert big <= small | set(ids[250:])


def test_ties_at_the_cut_are_all_taken():
    ids = ["a", "b", "c", "d"]
    index = _index(ids)
    keys = subset_keys(index.id_hashes, 0)
    order = np.argsort(keys)
    hashes = index.id_hashes.copy()
    hashes[order[2]] = hashes[order[1]]  # ranks 2 and 3 now share a key: both at the cut of 2
    tied = SourceIndex(
        num_rows=4,
        num_records=4,
        digest="x",
        report=ValidationReport(),
        positions={},
        id_hashes=hashes,
    )
    rows = draw_subset(tied, 2, 0)
    assert sorted(rows.tolist()) == sorted([order[0], order[1], order[2]])


def test_explicit_ids():
    ids = ["a", "b", "c"]
    index = _index(ids, positions={"c": 2, "a": 0})
    assert draw_subset(index, ["c", "a"], 0).tolist() == [0, 2]
    with pytest.raises(InputError, match="1 subset id"):
        draw_subset(_index(ids, positions={"a": 0}), ["a", "zz"], 0)
    with pytest.raises(InputError, match="empty"):
        draw_subset(index, [], 0)


def test_canonical_order_is_input_order_free():
    ids = [f"seq{i}" for i in range(40)]
    shuffled = ids[::-1]
    a = [ids[i] for i in subset_order(ids, None, 3)]
    b = [shuffled[i] for i in subset_order(shuffled, None, 3)]
    assert a == b and sorted(a) == sorted(ids)
    assert [ids[i] for i in subset_order(ids[:3], ["seq2", "seq0", "seq1"], 0)] == [
        "seq2",
        "seq0",
        "seq1",
    ]


def _documented_key(record_id: str, seed: int) -> int:
    """The rule as the docs state it, in plain Python integers."""
    import hashlib

    def b2(data: bytes, **kw) -> int:
        return int.from_bytes(hashlib.blake2b(data, digest_size=8, **kw).digest(), "little")

    mask = (1 << 64) - 1
    k = b2(record_id.encode()) ^ b2(seed.to_bytes(8, "little"), person=b"biocoreset.dsub")
    k ^= k >> 33
    k = (k * 0xFF51AFD7ED558CCD) & mask
    k ^= k >> 33
    k = (k * 0xC4CEB9FE1A85EC53) & mask
    return k ^ (k >> 33)


def test_keys_follow_the_documented_rule():
    ids = [f"URS{i:08d}" for i in range(50)] + ["", "é", "a" * 300]
    for seed in (0, 1, 42, 2**40):
        got = subset_keys(np.array([id_hash(i) for i in ids], dtype=np.uint64), seed)
        assert got.tolist() == [_documented_key(i, seed) for i in ids]
    assert subset_key("seq1", 0) == 1829109111850592857  # id-hash-v1 must never change

"""The whole result — D_sub, Fisher, scores — does not depend on record order, on how the input is
split into files, or on how batches are formed (length grouping, token budget, shard size)."""

from __future__ import annotations

import numpy as np
import pytest

from biocoreset import load_scores, score
from biocoreset.adapters.hf import HFAdapter
from biocoreset.data.synthetic import write_fasta
from biocoreset.testing import random_rna, tiny_esm
from floats import assert_equal_to_rounding


@pytest.fixture(scope="module")
def adapter():
    model, tok = tiny_esm(seed=4)
    return HFAdapter(model, tok)


@pytest.fixture(scope="module")
def records():
    return random_rna(30, seed=12, min_len=3, max_len=60)


def _by_id(result):
    return dict(zip(result.ids, result.scores, strict=True))


def _same(a, b, rtol=1e-10):
    da, db = _by_id(a), _by_id(b)
    assert set(da) == set(db)
    for rid, value in da.items():
        assert db[rid] == pytest.approx(value, rel=rtol), rid


@pytest.fixture(scope="module")
def reference(adapter, records):
    # default damping (relative): the Fisher itself must be the same for λ to be
    return score(adapter, records, subset=0.3, batch_size=4)


def test_permuted_fasta_gives_the_same_dsub_fisher_and_scores(
    tmp_path, adapter, records, reference
):
    perm = np.random.default_rng(1).permutation(len(records))
    shuffled = write_fasta([records[i] for i in perm], tmp_path / "shuffled.fa")
    other = score(adapter, shuffled, subset=0.3, batch_size=4)
    assert other.metadata["subset_ids"] == reference.metadata["subset_ids"]  # canonical order
    assert other.metadata["damping"] == pytest.approx(reference.metadata["damping"], rel=1e-12)
    assert other.ids == [records[i][0] for i in perm]  # rows stay in input order
    _same(reference, other)


def test_the_corpus_split_into_two_files(tmp_path, adapter, records, reference):
    a = write_fasta(records[:11], tmp_path / "a.fa")
    b = write_fasta(records[11:], tmp_path / "b.fa")
    split = score(adapter, [b, a], subset=0.3, batch_size=4)
    assert split.metadata["subset_ids"] == reference.metadata["subset_ids"]
    assert split.metadata["reader"]["parts"][0]["path"].endswith("b.fa")
    _same(reference, split)


def test_default_dsub_is_drawn_from_the_ids_and_recorded(adapter):
    many = random_rna(300, seed=3, min_len=3, max_len=12)
    result = score(adapter, many, batch_size=50, scorer="loss")
    meta = result.metadata
    assert meta["subset_rule"] == "id-hash-v1" and meta["subset_size"] == 256
    again = score(adapter, many[::-1], batch_size=50, scorer="loss")
    assert again.metadata["subset_ids"] == meta["subset_ids"]


@pytest.mark.parametrize(
    "options",
    [
        {"length_window": 1},  # file-order batches, as before length grouping
        {"length_window": 2},
        {"max_tokens": 70},
        {"batch_size": 7, "shard_size": 14},
    ],
)
def test_batching_does_not_change_scores(adapter, records, reference, options):
    base = {"subset": 0.3, "batch_size": 4, **options}
    _same(reference, score(adapter, records, **base))


def test_paper_compat_loss_without_pad_to_keeps_file_order_batches(records):
    """That loss depends on the batch's padded width, so grouping is off (results unchanged)."""
    model, tok = tiny_esm(seed=4)
    adapter = HFAdapter(model, tok, loss_mode="paper-compat")
    grouped = score(adapter, records, subset=0.3, batch_size=4, damping=1e-6)
    plain = score(adapter, records, subset=0.3, batch_size=4, damping=1e-6, length_window=1)
    # invariant: the same file-order batches either way (recomputed: to float64 rounding)
    assert_equal_to_rounding(grouped.scores, plain.scores)
    assert grouped.metadata["length_window"] == 1
    fixed = HFAdapter(model, tok, loss_mode="paper-compat", attend_to_padding=True, pad_to=64)
    a = score(fixed, records, subset=0.3, batch_size=4, damping=1e-6)
    b = score(fixed, records, subset=0.3, batch_size=4, damping=1e-6, length_window=1)
    assert a.metadata["length_window"] == 64
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-10)  # pad_to: composition-free


def test_file_output_equals_memory_and_records_the_shard_size(
    tmp_path, adapter, records, reference
):
    meta = score(adapter, records, subset=0.3, batch_size=4, output=tmp_path / "s.parquet").metadata
    assert meta["shard_size"] == 1024  # one process: 256 batches
    _same(reference, load_scores(tmp_path / "s.parquet"))

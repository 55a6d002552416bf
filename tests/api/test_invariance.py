"""A sequence's score does not depend on batch size, order or batch companions."""

from __future__ import annotations

import numpy as np
import pytest

from biocoreset import score
from biocoreset.adapters.hf import HFAdapter
from biocoreset.testing import random_rna, tiny_esm


@pytest.fixture(scope="module")
def setup():
    model, tok = tiny_esm(seed=3)
    adapter = HFAdapter(model, tok)
    records = random_rna(14, seed=9, min_len=3, max_len=30)
    subset = [r[0] for r in records[:5]]
    base = score(adapter, records, subset=subset, batch_size=4, damping=1e-4)
    return adapter, records, subset, base


@pytest.mark.parametrize("batch_size", [1, 3, 14])
def test_batch_size(setup, batch_size):
    adapter, records, subset, base = setup
    other = score(adapter, records, subset=subset, batch_size=batch_size, damping=1e-4)
    np.testing.assert_allclose(other.scores, base.scores, rtol=1e-10)


def test_order_and_companions(setup):
    adapter, records, subset, base = setup
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(records))
    shuffled = [records[i] for i in perm]
    extra = random_rna(5, seed=99, prefix="other")
    other = score(adapter, shuffled + extra, subset=subset, batch_size=5, damping=1e-4)
    got = dict(zip(other.ids, other.scores, strict=True))
    for rid, s in zip(base.ids, base.scores, strict=True):
        assert got[rid] == pytest.approx(s, rel=1e-10)


def test_masking_depends_on_seed_and_id_only(setup):
    adapter, records, _, _ = setup
    a = adapter.collate(records[:3], seed=5)
    b = adapter.collate([records[2], records[0]], seed=5)
    n2 = len(records[2][1]) + 2
    assert a.labels[2, :n2].tolist() == b.labels[0, :n2].tolist()
    c = adapter.collate(records[:1], seed=6)
    assert (a.labels[0] != -100).sum() >= 1
    assert a.input_ids.shape[0] == 3 and c.input_ids.shape[0] == 1

"""benchmarks/bench_dedup_identity.py: its k-mer identity is dedup's, its pairs are what they say."""

from __future__ import annotations

import numpy as np
from benchmarks.bench_dedup_identity import KINDS, kmer_pair_identity, make_pair

from biocoreset.bench.dedup import dedup_corpus


def test_kmer_identity_decides_as_dedup_does():
    rng = np.random.default_rng(0)
    for kind in KINDS:
        q, t, _ = make_pair(kind, rng)
        ident = kmer_pair_identity(q, t)
        for thr in (0.3, 0.5, 0.7, 0.9):
            report = dedup_corpus(
                [("q", q)], [t], identity_threshold=thr, method="kmer", molecule="protein"
            )
            assert (report.removed == 1) == (ident >= thr), (kind, thr, ident)


def test_pairs_are_built_as_described():
    rng = np.random.default_rng(1)
    q, t, p = make_pair("homolog", rng)
    assert p is not None and 0.2 <= p <= 1.0 and abs(len(t) - len(q)) <= 2
    q, t, _ = make_pair("shuffled", rng)
    assert len(q) == len(t) and q != t
    q, t, _ = make_pair("low-complexity", rng)
    assert set(q) | set(t) <= set("GSAPT")
    q, t, _ = make_pair("fragment", rng)
    assert 0.4 * len(q) - 1 <= len(t) <= 0.6 * len(q)

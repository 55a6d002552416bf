"""``dedup --method mmseqs``: MMseqs2 alignment identity finds every planted test-similar sequence."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from biocoreset.bench.dedup import dedup_corpus
from biocoreset.data.mmseqs import MMseqsError
from biocoreset.errors import ConfigError

needs_mmseqs = pytest.mark.skipif(
    shutil.which("mmseqs") is None,
    reason="MMseqs2 (`mmseqs`) is not on PATH: apt-get install mmseqs2 (tools/install_test_env.sh)",
)
AA = list("ACDEFGHIKLMNPQRSTVWY")


def variant(root: str, identity: float, rng: np.random.Generator, indels: int = 2) -> str:
    """``root`` with ``1 - identity`` of its residues substituted (each to another residue), and
    ``indels`` single-residue insertions or deletions."""
    seq = list(root)
    for j in rng.permutation(len(seq))[: round(len(seq) * (1 - identity))]:
        seq[j] = rng.choice([a for a in AA if a != seq[j]])
    for _ in range(indels):
        j = int(rng.integers(5, len(seq) - 5))
        if rng.random() < 0.5:
            del seq[j]
        else:
            seq.insert(j, str(rng.choice(AA)))
    return "".join(seq)


def planted(seed: int = 0):
    """8 test proteins; the corpus holds copies of each at 95%, 75% and 55% identity, an exact
    copy of one, and 40 unrelated proteins."""
    rng = np.random.default_rng(seed)
    tests = ["".join(rng.choice(AA, int(rng.integers(100, 130)))) for _ in range(8)]
    corpus, planted_identity = [], {}
    for t, root in enumerate(tests):
        for ident in (0.95, 0.75, 0.55):
            rid = f"t{t}_id{int(ident * 100)}"
            corpus.append((rid, variant(root, ident, rng)))
            planted_identity[rid] = ident
    corpus.append(("copy", tests[3].lower()))
    for u in range(40):
        corpus.append((f"unrelated{u}", "".join(rng.choice(AA, int(rng.integers(90, 140))))))
    order = rng.permutation(len(corpus))
    return [corpus[i] for i in order], tests, planted_identity


@needs_mmseqs
@pytest.mark.parametrize("threshold", [0.5, 0.7, 0.9])
def test_every_planted_sequence_at_the_identity_is_removed(tmp_path, threshold):
    corpus, tests, ident = planted()
    report = dedup_corpus(
        corpus,
        tests,
        tmp_path / "clean.fa",
        identity_threshold=threshold,
        method="mmseqs",
        molecule="protein",
    )
    # every variant planted clearly above the threshold goes, and only what was planted goes
    above = {rid for rid, i in ident.items() if i >= threshold + 0.04}
    removed = set(report.removed_ids)
    assert above <= removed, sorted(above - removed)
    assert removed <= set(ident) | {"copy"}, sorted(removed - set(ident))
    below = {rid for rid, i in ident.items() if i <= threshold - 0.15}
    assert not removed & below, sorted(removed & below)
    assert report.exact == 1 and report.near == len(removed) - 1
    assert report.method == "mmseqs" and report.coverage == 0.8
    assert "mmseqs identity at >= 80% coverage" in report.summary()
    kept = (tmp_path / "clean.fa").read_text().count(">")
    assert kept == report.kept == len(corpus) - len(removed)


@needs_mmseqs
def test_only_exact_matches_leaves_nothing_to_search(tmp_path):
    report = dedup_corpus(
        [("a", "ACDEFGHIKL")],
        ["acdefghikl"],
        None,
        identity_threshold=0.5,
        method="mmseqs",
        molecule="protein",
    )
    assert report.removed_ids == ("a",) and report.exact == 1


def test_mmseqs_needs_a_threshold_and_the_binary(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="method='mmseqs' needs an identity threshold"):
        dedup_corpus([("a", "ACDE")], ["ACDF"], method="mmseqs", molecule="protein")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("BIOCORESET_MMSEQS", raising=False)
    with pytest.raises(MMseqsError, match="apt-get install mmseqs2"):
        dedup_corpus(
            [("a", "ACDEFG")],
            ["ACDFFF"],
            tmp_path / "out.fa",
            identity_threshold=0.5,
            method="mmseqs",
            molecule="protein",
        )
    assert not (tmp_path / "out.fa").exists()


@needs_mmseqs
def test_rna_is_searched_as_nucleotides():
    rng = np.random.default_rng(0)
    test = "".join(rng.choice(list("ACGU"), 200))
    near = list(test)
    for j in rng.permutation(200)[:20]:  # 90% identical
        near[j] = {"A": "C", "C": "G", "G": "U", "U": "A"}[near[j]]
    far = "".join(rng.choice(list("ACGU"), 200))
    report = dedup_corpus(
        [("near", "".join(near)), ("far", far)], [test], identity_threshold=0.8, method="mmseqs"
    )
    assert report.removed_ids == ("near",)

"""Removing benchmark test sequences from a pretraining corpus."""

from __future__ import annotations

import json

import numpy as np
import pytest

from biocoreset.bench.data import Example
from biocoreset.bench.dedup import (
    dedup_corpus,
    identity,
    kmer_identity,
    normalise_for_dedup,
)
from biocoreset.errors import ConfigError, InputError, OutputExistsError

RNG = np.random.default_rng(0)


def _rand(n: int, letters: str = "ACGU") -> str:
    return "".join(RNG.choice(list(letters), size=n))


def _mutate(s: str, every: int) -> str:
    return "".join(
        ("A" if c != "A" else "C") if i % every == every // 2 else c for i, c in enumerate(s)
    )


def test_exact_matching_normalises_case_gaps_and_t(tmp_path):
    corpus = [
        ("keep", "GGGGCCCC"),
        ("dna", "acgtacgt"),
        ("gapped", "AC-GU.ACGU"),
        ("same", "ACGUACGU"),
    ]
    out = tmp_path / "clean.fa"
    report = dedup_corpus(corpus, ["ACGUACGU"], out)
    assert (report.total, report.removed, report.kept, report.exact, report.near) == (4, 3, 1, 3, 0)
    assert report.removed_ids == ("dna", "gapped", "same")
    assert out.read_text() == ">keep\nGGGGCCCC\n"
    assert "removed 3 of 4 corpus sequences (3 exact, 0 near)" in report.summary()
    with pytest.raises(OutputExistsError):
        dedup_corpus(corpus, ["ACGUACGU"], out)
    # Proteins: T is threonine, not thymine.
    prot = dedup_corpus([("p", "MKTU")], ["MKUU"], molecule="protein")
    assert prot.removed == 0 and normalise_for_dedup("mkt", "protein") == "MKT"


@pytest.mark.parametrize("method", ["kmer", "difflib"])
def test_identity_threshold_removes_near_duplicates_only(method):
    test = _rand(200)
    near = _mutate(test, 25)  # 8 substitutions: 96% identical
    far = _mutate(test, 4)  # 50 substitutions: 75% identical
    other = _rand(200)
    fragment = test[50:90]  # contained in the test sequence, but only 20% of its length
    corpus = [("near", near), ("far", far), ("other", other), ("fragment", fragment)]
    assert identity(test, near) == pytest.approx(0.96, abs=0.01)
    report = dedup_corpus(corpus, [test], identity_threshold=0.9, method=method)
    assert report.removed_ids == ("near",) and report.near == 1 and report.exact == 0
    strict = dedup_corpus(corpus, [test], identity_threshold=0.99, method=method)
    assert strict.removed == 0


def test_kmer_identity_formula():
    # J = 1/3: 2J/(1+J) = 1/2 -> 1 + ln(1/2)/8.
    assert kmer_identity(1 / 3, 8) == pytest.approx(1 + np.log(0.5) / 8)
    assert kmer_identity(0.0, 8) == 0.0 and kmer_identity(1.0, 5) == 1.0


def test_test_sets_from_files_examples_and_errors(tmp_path):
    (tmp_path / "t.jsonl").write_text(
        json.dumps({"seq": "AAAACCCC", "label": "....."}) + "\n", encoding="utf-8"
    )
    (tmp_path / "t.csv").write_text("sequence,label\nGGGGUUUU,1\n", encoding="utf-8")
    corpus = [("a", "AAAACCCC"), ("b", "GGGGUUUU"), ("c", "ACGUACGU")]
    assert dedup_corpus(corpus, tmp_path / "t.jsonl").removed_ids == ("a",)
    both = dedup_corpus(corpus, [tmp_path / "t.jsonl", tmp_path / "t.csv"])
    assert both.removed_ids == ("a", "b")
    ex = [Example(id="x", sequence="ACGUACGU", label=0)]
    assert dedup_corpus(corpus, ex).removed_ids == ("c",)
    with pytest.raises(ConfigError, match=r"identity_threshold must be in \(0, 1\]"):
        dedup_corpus(corpus, ex, identity_threshold=90)
    with pytest.raises(ConfigError, match="method must be one of kmer, difflib"):
        dedup_corpus(corpus, ex, identity_threshold=0.9, method="blast")
    with pytest.raises(InputError, match="holds no sequence"):
        dedup_corpus(corpus, [])


def test_rfam_corpus_against_the_nrc_test_split(shared_data):
    from biocoreset.bench.loaders.rna import load_nrc

    test = load_nrc(shared_data / "rna/type_nrc/ncrna-deep_dataset_nRC_test.fasta")
    report = dedup_corpus(shared_data / "rna/corpus/rfam14.2_seed_sequences.fasta.gz", test)
    # The data README counts 171 nRC test sequences inside the Rfam seed corpus; some occur twice there.
    assert report.total == 72262 and report.removed == 173 and report.test_sequences == 2529

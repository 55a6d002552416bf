"""Loaders on the real benchmark files in ../shared/data (skipped when that folder is absent)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from biocoreset.bench.loaders import load_split
from biocoreset.bench.loaders.protein import load_cb513, load_deeploc, load_flip_ss, load_tmbed
from biocoreset.bench.loaders.rna import (
    load_archiveii,
    load_deepcrispr,
    load_graphprot,
    load_m6a,
    load_nrc,
    load_rgb_structures,
)
from biocoreset.bench.loaders.structure import pairs_to_dot_bracket


def _alphabet(examples) -> set[str]:
    return set("".join(e.sequence for e in examples))


def test_nrc(shared_data):
    train = load_nrc(shared_data / "rna/type_nrc/ncrna-deep_dataset_nRC_train.fasta")
    test = load_nrc(shared_data / "rna/type_nrc/ncrna-deep_dataset_nRC_test.fasta")
    assert (len(train), len(test)) == (6160, 2529)
    counts = Counter(e.label for e in train)
    assert len(counts) == 13 and counts["5S_rRNA"] == 489 and counts["IRES"] == 312
    assert _alphabet(train) <= set("ACGU")  # T became U
    assert len({e.id for e in train}) == len(train)


def test_deepcrispr(shared_data):
    ex = load_deepcrispr(shared_data / "rna/crispr_on_target/deepcrispr_reg_hl60.repisgt.tsv")
    assert len(ex) == 2076
    assert all(len(e.sequence) == 23 for e in ex) and _alphabet(ex) <= set("ACGU")
    assert ex[0].sequence == "GGCACGUGUUGCAGGAGAAGCGG" and ex[0].label == pytest.approx(
        0.2316333784594214
    )
    assert ex[0].id == "chr16:103502-103524:+"


def test_m6a(shared_data):
    ex = load_m6a(shared_data / "rna/modification_m6a/Human_Liver_train.csv.gz")
    assert len(ex) == 5268 and Counter(e.label for e in ex) == {0: 2634, 1: 2634}
    assert all(len(e.sequence) == 41 and e.sequence[20] == "A" for e in ex)


def test_bprna_and_archiveii(shared_data):
    ss = load_rgb_structures(shared_data / "rna/secondary_structure/RNA-SSP-bpRNA_test.jsonl")
    assert len(ss) == 1161
    first = ss[0]
    assert first.label.shape[1] == 2 and (first.label[:, 0] < first.label[:, 1]).all()
    assert pairs_to_dot_bracket(first.label, len(first.sequence)).startswith(
        "..........(((((..((((((...."
    )
    arch = load_archiveii(shared_data / "rna/secondary_structure/archiveII_from_bpseq.tsv")
    assert len(arch) == 3975
    by_id = {e.id: e for e in arch}
    a = by_id["16s_A.fulgidus"]
    assert a.label[:2].tolist() == [[3, 19], [4, 18]] and len(a.sequence) == 1492
    crossing = sum(
        any(i < k < j < m for (i, j) in e.label.tolist() for (k, m) in e.label.tolist()[:50])
        for e in arch[:200]
    )
    assert crossing > 0  # pseudoknots kept by default
    trna = load_archiveii(
        shared_data / "rna/secondary_structure/archiveII_from_bpseq.tsv",
        families=["tRNA"],
        pseudoknots=False,
    )
    assert 0 < len(trna) < 3975 and all(e.id.lower().startswith("trna") for e in trna)


def test_graphprot(shared_data):
    prefix = shared_data / "rna/rbp_graphprot/ALKBH5_Baltz2012"
    train = load_graphprot(prefix, "train")
    test = load_graphprot(prefix, "test")
    assert Counter(e.label for e in train) == {1: 1213, 0: 1197}
    assert Counter(e.label for e in test) == {1: 134, 0: 132}
    assert _alphabet(train) <= set("ACGUN")
    sites = load_graphprot(prefix, "test", region="site")
    assert all(len(s.sequence) < len(f.sequence) for s, f in zip(sites, test, strict=True))
    split = load_split("graphprot", train=str(prefix))  # one prefix holds both splits
    assert (len(split.train), len(split.test)) == (2410, 266)


def test_flip_netsurfp_and_cb513(shared_data):
    folder = shared_data / "protein/secondary_structure"
    test = load_flip_ss(folder, "test")
    valid = load_flip_ss(folder, "valid")
    assert (len(test), len(valid)) == (364, 1080)
    e = test[0]
    assert len(e.sequence) == len(e.label) == e.mask.size and set(e.label) <= set("HEC")
    cb = load_cb513(folder / "CB513.csv")
    assert len(cb) == 511 and set("".join(x.label for x in cb)) <= set("HEC")
    assert all(x.mask is not None and x.mask.size == len(x.sequence) for x in cb)


def test_deeploc_and_tmbed(shared_data):
    folder = shared_data / "protein/localization_deeploc"
    test = load_deeploc(folder / "deeploc1_test_from_onehot1000.tsv", None)
    assert Counter(e.label for e in test) == {1: 743, 0: 1006}  # U (unknown) rows skipped
    train = load_deeploc(folder / "deeploc1_trainval_sample_from_onehot400.tsv", "train")
    val = load_deeploc(folder / "deeploc1_trainval_sample_from_onehot400.tsv", "val")
    assert 0 < len(val) < len(train) < 2268
    loc = load_deeploc(folder / "deeploc1_test_from_onehot1000.tsv", target="location")
    assert len(loc) == 2773 and len({e.label for e in loc}) == 10
    tm_file = shared_data / "protein/membrane_tmbed/tmbed_cv_00_annotated.fasta.gz"
    tm = load_tmbed(tm_file)
    assert len(tm) == 1307 and 0.05 < np.mean([e.label for e in tm]) < 0.2
    black = load_tmbed(tm_file, exclude=shared_data / "protein/membrane_tmbed/tmbed_blacklist.txt")
    assert len(black) < len(tm)
    topo = load_tmbed(tm_file, target="topology")
    assert all(len(e.label) == len(e.sequence) for e in topo)

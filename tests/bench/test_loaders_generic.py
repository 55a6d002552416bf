"""Generic formats (users' own data), structure notations, splits, and error messages."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from biocoreset.bench.data import Example, random_split, subsample
from biocoreset.bench.loaders import FORMATS, load_split
from biocoreset.bench.loaders.generic import (
    load_labelled,
    load_maps,
    load_pairs,
    load_residue_labels,
    read_sequences,
)
from biocoreset.bench.loaders.rna import load_bpseq_folder
from biocoreset.bench.loaders.structure import (
    pairs_from_1based,
    pairs_to_dot_bracket,
    parse_dot_bracket,
)
from biocoreset.errors import ConfigError, InputError


def test_labelled_in_every_format(tmp_path):
    (tmp_path / "a.csv").write_text(
        "id,sequence,label\nx,acgt,tRNA\ny,GGU,rRNA\n", encoding="utf-8"
    )
    (tmp_path / "a.tsv").write_text("seq\ty\nACGT\t0.5\n", encoding="utf-8")
    (tmp_path / "a.jsonl").write_text(
        json.dumps({"sequence": "AC", "label": [0, 1, 1]}) + "\n", encoding="utf-8"
    )
    with gzip.open(tmp_path / "a.fa.gz", "wt") as fh:
        fh.write(">r1 tRNA\nACGT\n>r2|rRNA\nGG\nUU\n")
    csv = load_labelled(tmp_path / "a.csv")
    assert [(e.id, e.sequence, e.label) for e in csv] == [
        ("x", "ACGU", "tRNA"),
        ("y", "GGU", "rRNA"),
    ]
    tsv = load_labelled(tmp_path / "a.tsv", label_type="float", molecule="protein")
    assert (tsv[0].id, tsv[0].sequence, tsv[0].label) == ("a.tsv:2", "ACGT", 0.5)
    jl = load_labelled(tmp_path / "a.jsonl", label_type="multilabel")
    assert jl[0].label == (0, 1, 1)
    fa = load_labelled(tmp_path / "a.fa.gz")
    assert [(e.id, e.sequence, e.label) for e in fa] == [
        ("r1", "ACGU", "tRNA"),
        ("r2", "GGUU", "rRNA"),
    ]
    assert [r for r in read_sequences(tmp_path / "a.csv")] == [("x", "acgt"), ("y", "GGU")]


def test_labelled_errors_name_file_line_and_field(tmp_path):
    bad = tmp_path / "b.csv"
    bad.write_text("sequence,class\nACGU,x\n", encoding="utf-8")
    with pytest.raises(
        InputError,
        match=r"b.csv' line 2: no label/target/y/Label field; the record has sequence, class",
    ):
        load_labelled(bad)
    assert load_labelled(bad, label_field="class")[0].label == "x"
    bad.write_text("sequence,label\nACGU,2\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"line 2: label '2' is not a valid binary label"):
        load_labelled(bad, label_type="binary")
    (tmp_path / "c.jsonl").write_text('{"sequence": "A", "label": 1}\n{oops\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"c.jsonl' line 2: not valid JSON"):
        load_labelled(tmp_path / "c.jsonl")
    with pytest.raises(InputError, match=r"cannot tell the format of .*x\.parquet' from its name"):
        load_labelled(tmp_path / "x.parquet")
    with pytest.raises(InputError, match="does not exist"):
        load_labelled(tmp_path / "missing.csv")
    (tmp_path / "d.fa").write_text(">onlyid\nACGU\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"record 1 \('onlyid'\): the header holds no label"):
        load_labelled(tmp_path / "d.fa")


def test_pairs_residues_and_maps(tmp_path):
    (tmp_path / "p.csv").write_text(
        "sequence_a,sequence_b,affinity\nmkv,GGA,-9.5\n", encoding="utf-8"
    )
    p = load_pairs(tmp_path / "p.csv")
    assert (p[0].sequence, p[0].sequence_b, p[0].label) == ("MKV", "GGA", -9.5)
    (tmp_path / "r.jsonl").write_text(
        json.dumps({"id": "q", "sequence": "MKVL", "labels": "HHEC", "mask": "1101"})
        + "\n"
        + json.dumps({"sequence": "MK", "labels": "CC"})
        + "\n",
        encoding="utf-8",
    )
    r = load_residue_labels(tmp_path / "r.jsonl")
    assert (
        r[0].label == "HHEC"
        and r[0].mask.tolist() == [True, True, False, True]
        and r[1].mask is None
    )
    (tmp_path / "bad.jsonl").write_text(
        json.dumps({"sequence": "MKVL", "labels": "HH"}) + "\n", encoding="utf-8"
    )
    with pytest.raises(InputError, match="2 labels for a sequence of 4 residues"):
        load_residue_labels(tmp_path / "bad.jsonl")
    d = [[0, 3, 9], [3, 0, None], [9, None, 0]]
    (tmp_path / "m.jsonl").write_text(
        json.dumps({"id": "m", "sequence": "ACG", "distance": d, "contacts": [[2, 0]]}) + "\n",
        encoding="utf-8",
    )
    c = load_maps(tmp_path / "m.jsonl", target="contact")
    assert c[0].label.tolist() == [[0, 2]]
    dist = load_maps(tmp_path / "m.jsonl", target="distance")
    assert np.isnan(dist[0].label[1, 2]) and dist[0].label[0, 2] == 9
    (tmp_path / "n.jsonl").write_text(
        json.dumps({"sequence": "ACG", "distance": d}) + "\n", encoding="utf-8"
    )
    assert load_maps(tmp_path / "n.jsonl", target="contact", contact_threshold=5)[
        0
    ].label.tolist() == [[0, 1]]
    (tmp_path / "o.jsonl").write_text(
        json.dumps({"sequence": "ACG", "contacts": [[0, 3]]}) + "\n", encoding="utf-8"
    )
    with pytest.raises(InputError, match="contact indices must be 0-based and < 3"):
        load_maps(tmp_path / "o.jsonl", target="contact")


def test_structure_notations(tmp_path):
    assert parse_dot_bracket("((..[[..))..]]").tolist() == [[0, 9], [1, 8], [4, 13], [5, 12]]
    assert parse_dot_bracket("(.A.).a").tolist() == [[0, 4], [2, 6]]
    with pytest.raises(InputError, match=r"'\)' at position 3 closes nothing"):
        parse_dot_bracket("..)")
    with pytest.raises(InputError, match=r"'\(' at position 2 is never closed"):
        parse_dot_bracket(".(.")
    with pytest.raises(InputError, match=r"unknown symbol '\?' at position 2"):
        parse_dot_bracket(".?.")
    db = "((..[[..))..]]"
    assert pairs_to_dot_bracket(parse_dot_bracket(db), len(db)) == db
    assert pairs_from_1based("1-10; 2-9", 10).tolist() == [[0, 9], [1, 8]]
    with pytest.raises(InputError, match=r"pair '0-3' is outside 1..10"):
        pairs_from_1based("0-3", 10)
    (tmp_path / "x.bpseq").write_text("Filename: x\n1 G 4\n2 A 0\n3 A 0\n4 C 1\n", encoding="utf-8")
    ex = load_bpseq_folder(tmp_path)
    assert (ex[0].id, ex[0].sequence, ex[0].label.tolist()) == ("x", "GAAC", [[0, 3]])
    (tmp_path / "y.bpseq").write_text("1 G 4\n2 A 0\n3 A 0\n4 C 2\n", encoding="utf-8")
    with pytest.raises(InputError, match="base 1 pairs with 4, but 4 does not pair with 1"):
        load_bpseq_folder(tmp_path)
    (tmp_path / "s.jsonl").write_text(
        json.dumps({"seq": "ACGU", "label": "(..)."}) + "\n", encoding="utf-8"
    )
    with pytest.raises(InputError, match="structure of length 5 for a sequence of 4 nt"):
        load_split("rgb-jsonl", train=str(tmp_path / "s.jsonl"), test=str(tmp_path / "s.jsonl"))


def test_split_building():
    ex = [Example(id=str(i), sequence="ACGU", label=i % 2) for i in range(20)]
    a = load_split("labelled", train=ex, test_fraction=0.25, split_seed=1)
    b = load_split("labelled", train=ex, test_fraction=0.25, split_seed=1)
    assert (
        [e.id for e in a.test] == [e.id for e in b.test] and len(a.test) == 5 and len(a.train) == 15
    )
    assert not {e.id for e in a.train} & {e.id for e in a.test}
    with pytest.raises(ConfigError, match="unknown data format 'fasta'; choices: archiveii,"):
        load_split("fasta", train=ex)
    with pytest.raises(
        ConfigError, match="data format 'flip' yields residue examples; this task needs sequence"
    ):
        load_split("flip", train=ex, kind="sequence")
    assert len(subsample(ex, 4, 0)) == 4 and [e.id for e in subsample(ex, 4, 0)] == [
        e.id for e in subsample(ex, 4, 0)
    ]
    with pytest.raises(ConfigError, match=r"test_fraction must be in \(0, 1\)"):
        random_split(ex, 1.5, 0)
    assert {f.kind for f in FORMATS.values()} == {
        "sequence",
        "structure",
        "residue",
        "contact",
        "distance",
        "pair",
    }

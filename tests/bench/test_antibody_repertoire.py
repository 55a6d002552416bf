"""The simulated antibody repertoire (OLGA recombination + anarci germlines)."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("olga")
pytest.importorskip("anarci")

from biocoreset.bench.antibody.germlines import load_germline_table
from biocoreset.bench.antibody.repertoire import (
    AntibodyRecord,
    RepertoireConfig,
    build_repertoire,
    heldout_genes,
    j_suffix,
    parse_header,
    read_repertoire,
    translate,
    v_prefix,
    write_fasta,
)
from biocoreset.errors import ConfigError, InputError

N = 300


@pytest.fixture(scope="module")
def built():
    return build_repertoire(n=N, seed=3)


def test_seeded_reproducibility(built):
    again, _ = build_repertoire(n=N, seed=3)
    assert [r.sequence for r in again] == [r.sequence for r in built[0]]
    other, _ = build_repertoire(n=N, seed=4)
    assert [r.sequence for r in other] != [r.sequence for r in built[0]]


def test_global_numpy_state_is_restored():
    import numpy as np

    np.random.seed(11)
    expected = np.random.rand()
    np.random.seed(11)
    build_repertoire(n=5, seed=0)
    assert np.random.rand() == expected


def test_counts_and_mapping(built):
    records, report = built
    assert len(records) == report.kept == N
    assert report.drawn == N + sum(report.dropped.values())
    for name, m in report.mapping.items():
        mapped = m["v_exact"] + m["v_gene"] + m["v_sequence"]
        assert mapped + m["v_unmapped"] == m["v_alleles"]
        assert mapped >= 0.8 * m["v_alleles"], (name, m)


def test_records_are_v_cdr3_j_with_the_motifs(built):
    table = load_germline_table()
    for r in built[0]:
        assert r.species in {"human", "mouse"} and r.chain in {"H", "K", "L"}
        cdr3_start = None
        for allele, gapped in table["V"][r.chain][r.species].items():
            p = v_prefix(gapped)
            if allele.startswith(r.v_gene + "*") and p and r.sequence.startswith(p):
                cdr3_start = len(p)
        assert cdr3_start is not None, r
        cdr3 = r.sequence[cdr3_start : cdr3_start + r.cdr3_length]
        assert cdr3[0] == "C" and cdr3[-1] in "WF"
        assert re.match(r"G.G", r.sequence[cdr3_start + r.cdr3_length :]), r
        assert "*" not in r.sequence and "X" not in r.sequence


def test_heldout_genes_are_never_in_the_corpus(built):
    held = heldout_genes()
    assert held, "the rule should hold out some genes"
    seen = {(r.species, r.chain, r.v_gene) for r in built[0]}
    assert not seen & held
    assert heldout_genes(0.1, 1) != held  # the rule depends on its seed


def test_exclude_is_honoured(built):
    first = built[0][:20]
    again, report = build_repertoire(n=20, seed=3, exclude={r.sequence for r in first})
    assert not {r.sequence for r in again} & {r.sequence for r in first}
    assert report.dropped.get("duplicate-of-excluded", 0) >= 1


def test_header_round_trip(tmp_path, built):
    path = write_fasta(built[0][:10], tmp_path / "c.fasta")
    back = read_repertoire(path)
    assert back == built[0][:10]
    h = parse_header(">x species=mouse chain=K v_gene=IGKV1-99 j_gene=IGKJ1 cdr3_length=9")
    assert h == {
        "id": "x",
        "species": "mouse",
        "chain": "K",
        "v_gene": "IGKV1-99",
        "j_gene": "IGKJ1",
        "cdr3_length": 9,
    }
    with pytest.raises(InputError, match="lacks"):
        parse_header(">x species=mouse")
    with pytest.raises(InputError, match="not an integer"):
        parse_header(">x species=m chain=K v_gene=a j_gene=b cdr3_length=z")


def test_motif_helpers():
    assert translate("TGTGCGAGA") == "CAR"
    gapped = "Q" * 103 + "C" + "AR"
    assert v_prefix(gapped) == "Q" * 103
    assert v_prefix("Q" * 103 + "S") is None
    assert v_prefix("Q*" + "Q" * 101 + "C") is None
    assert j_suffix("----FDYWGQGTLVTVSS") == "GQGTLVTVSS"
    assert j_suffix("FDYAAAA") is None


def test_family_label():
    r = AntibodyRecord(
        id="a",
        sequence="Q",
        species="human",
        chain="H",
        v_gene="IGHV3-23",
        j_gene="J",
        cdr3_length=1,
    )
    assert r.v_family == "IGHV3"


def test_bad_config_is_a_clear_error():
    with pytest.raises(ConfigError, match="mix"):
        RepertoireConfig(mix={"human_T_beta": 1.0})
    with pytest.raises(ConfigError, match="n=0"):
        RepertoireConfig(n=0)
    with pytest.raises(ConfigError, match="heldout_fraction"):
        RepertoireConfig(heldout_fraction=1.0)

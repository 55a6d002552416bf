"""OAS data units, AIRR rearrangement TSVs and row-numbered tables (issue 35 item 1)."""

from __future__ import annotations

import csv
import gzip
import io
import json

import pytest

from biocoreset.data.readers import ROW_IDS, detect_format, read_records
from biocoreset.data.sources import ConcatSource, open_sequences
from biocoreset.data.tables import file_stem, parse_oas_metadata, read_oas_unit
from biocoreset.errors import InputError

META = {
    "Run": "SRR11528761",
    "Link": "https://www.ncbi.nlm.nih.gov/sra/?term=SRR11528761",
    "Author": "Doe et al., 2020",
    "Species": "human",
    "BSource": "PBMC",
    "BType": "Memory-B-Cells",
    "Vaccine": "None",
    "Disease": "SARS-COV-2",
    "Subject": "Patient 1",
    "Longitudinal": "no",
    "Age": 44,
    "Unique sequences": 3,
    "Isotype": "IGHG",
    "Chain": "Heavy",
}
# the unpaired layout's columns, in order (abridged: the reader needs none of the ones left out)
HEADER = [
    "sequence",
    "locus",
    "stop_codon",
    "productive",
    "v_call",
    "d_call",
    "j_call",
    "sequence_alignment",
    "sequence_alignment_aa",
    "cdr3",
    "cdr3_aa",
    "Redundancy",
    "ANARCI_numbering",
    "ANARCI_status",
]
AA = ["QVQLVQSGAEVKKPGASVKVSCKAS", "EVQLLESGGGLVQPGGSLRLSCAAS", "QVQLQESGPGLVKPSETLSLTCTVS"]


def _unit_text(rows, header=HEADER, meta=META):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([json.dumps(meta)])  # OAS: the metadata object as one quoted CSV field
    w.writerow(header)
    for row in rows:
        w.writerow(row)
    return buf.getvalue()


def _row(aa, i=0):
    numbering = json.dumps({"fwh1": {"1 ": aa[0], "2 ": aa[1]}, "cdrh3": {"105 ": "A"}})
    return [
        "CAGGTGCAG" * 3,
        "H",
        "F",
        "T",
        f"IGHV1-{i}*01",
        "IGHD3-10*01",
        "IGHJ4*02",
        "CAGGTG",
        aa,
        "GCGAGA",
        "ARDY",
        str(i + 1),
        numbering,
        "|Deletions: 10||Missing Conserved Cysteine: 23|",
    ]


def write_unit(path, seqs=AA, header=HEADER, meta=META, gz=True, rows=None):
    text = _unit_text(
        rows if rows is not None else [_row(s, i) for i, s in enumerate(seqs)], header, meta
    )
    if gz:
        path.write_bytes(gzip.compress(text.encode("utf-8")))
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_oas_unit_is_read_as_it_is(tmp_path):
    path = write_unit(tmp_path / "SRR11528761_1_Heavy_IGHG.csv.gz")
    assert detect_format(path) == "oas"
    got = list(read_records(path))
    assert got == [(f"SRR11528761_1_Heavy_IGHG:{i}", s) for i, s in enumerate(AA, start=1)]
    meta, header = read_oas_unit(path)
    assert meta == META and header == HEADER
    assert list(read_records(path, format="oas")) == got
    # the nucleotide column can still be chosen explicitly
    assert next(read_records(path, sequence_column="sequence"))[1] == "CAGGTGCAG" * 3


def test_oas_metadata_line_variants():
    assert parse_oas_metadata('"{""Run"": ""SRR1"", ""Age"": 3}"\n') == {"Run": "SRR1", "Age": 3}
    assert parse_oas_metadata('{"Run": "SRR1"}') == {"Run": "SRR1"}
    assert parse_oas_metadata('"{not json}"') is None
    assert parse_oas_metadata('"[1, 2]"') is None
    assert parse_oas_metadata("sequence_id,sequence_aa") is None


def test_oas_ids_are_stable_across_reruns_and_orderings(tmp_path):
    a = write_unit(tmp_path / "ERR1_Heavy_Bulk.csv.gz")
    b = write_unit(tmp_path / "ERR2_Light_Bulk.csv.gz", seqs=AA[:2])
    first = list(ConcatSource([open_sequences(a), open_sequences(b)]))
    again = list(ConcatSource([open_sequences(a), open_sequences(b)]))
    swapped = list(ConcatSource([open_sequences(b), open_sequences(a)]))
    assert first == again
    assert dict(first) == dict(swapped) and len(dict(first)) == 5  # unique across units
    assert dict(first)["ERR2_Light_Bulk:2"] == AA[1]


def test_oas_sequence_id_is_used_where_present(tmp_path):
    header = ["sequence_id", *HEADER]
    rows = [[f"seq{i}", *_row(s, i)] for i, s in enumerate(AA)]
    path = write_unit(tmp_path / "u.csv.gz", header=header, rows=rows)
    assert [r for r, _ in read_records(path)] == ["seq0", "seq1", "seq2"]
    assert [r for r, _ in read_records(path, id_column=ROW_IDS)] == ["u:1", "u:2", "u:3"]


def test_paired_unit_chooses_its_chain(tmp_path):
    header = [
        "sequence_id_heavy",
        "sequence_alignment_aa_heavy",
        "v_call_heavy",
        "sequence_id_light",
        "sequence_alignment_aa_light",
        "v_call_light",
    ]
    rows = [["h1", AA[0], "IGHV1", "l1", "DIQMTQSPS", "IGKV1"]]
    path = write_unit(tmp_path / "paired.csv.gz", header=header, rows=rows)
    with pytest.raises(InputError, match=r"paired unit.*sequence_alignment_aa_heavy or .*_light"):
        list(read_records(path))
    heavy = open_sequences(path, sequence_column="sequence_alignment_aa_heavy")
    assert list(heavy) == [("paired:1", AA[0])]
    light = open_sequences(
        path, sequence_column="sequence_alignment_aa_light", id_column="sequence_id_light"
    )
    assert list(light) == [("l1", "DIQMTQSPS")]


def test_reader_options_carry_the_unit_metadata(tmp_path):
    path = write_unit(tmp_path / "SRR1_Heavy_IGHG.csv.gz")
    opts = open_sequences(path).reader_options()
    assert opts["format"] == "oas" and opts["unit_metadata"] == META
    assert opts["sequence_column"] == "sequence_alignment_aa" and opts["id_column"] == ROW_IDS
    # re-opening from the recorded options reads the same records
    again = open_sequences(
        opts["path"],
        format=opts["format"],
        id_column=opts["id_column"],
        sequence_column=opts["sequence_column"],
    )
    assert list(again) == list(open_sequences(path))


def test_oas_bad_inputs_are_one_line(tmp_path):
    unit = write_unit(tmp_path / "u.csv.gz")
    with pytest.raises(InputError, match="format='oas'") as exc:  # read as a plain CSV
        list(read_records(unit, format="csv"))
    assert "\n" not in str(exc.value)
    plain = tmp_path / "plain.csv"
    plain.write_text("id,sequence\na,ACGU\n")
    with pytest.raises(InputError, match="is not an OAS data unit") as exc:
        list(read_records(plain, format="oas"))
    assert "\n" not in str(exc.value)
    with pytest.raises(InputError, match="no column 'nope'"):
        list(read_records(unit, sequence_column="nope"))
    with pytest.raises(InputError, match="no column 'acc'"):
        list(read_records(unit, id_column="acc"))
    only_meta = tmp_path / "m.csv"
    only_meta.write_text(_unit_text([]).splitlines()[0] + "\n")
    with pytest.raises(InputError, match="no header row"):
        list(read_records(only_meta))


def test_table_without_ids_needs_row_ids_explicitly(tmp_path):
    path = tmp_path / "seqs.csv"
    path.write_text("sequence,label\nACGU,1\n\nGGA,0\n")
    with pytest.raises(InputError, match=r"no column\(s\) \['id'\].*--id-column @row"):
        list(read_records(path))  # no silent default
    assert list(read_records(path, id_column=ROW_IDS)) == [("seqs:1", "ACGU"), ("seqs:2", "GGA")]
    assert file_stem(tmp_path / "x.tsv.gz") == "x"


@pytest.mark.parametrize("column", ["sequence_aa", "sequence_alignment_aa"])
def test_airr_rearrangement_tsv(tmp_path, column):
    cols = ["sequence_id", "sequence", "rev_comp", "productive", "v_call", "j_call", column]
    lines = ["\t".join(cols)]
    for i, aa in enumerate(AA):
        lines.append("\t".join([f"r{i}", "CAGGTG", "F", "T", "IGHV1-2*02", "IGHJ4*02", aa]))
    path = tmp_path / "rearrangements.tsv"
    path.write_text("\n".join(lines) + "\n")
    assert detect_format(path) == "tsv"
    src = open_sequences(path, id_column="sequence_id", sequence_column=column)
    assert list(src) == [(f"r{i}", aa) for i, aa in enumerate(AA)]


def test_the_repertoire_builders_unit_is_read_as_written(tmp_path):
    """A unit from `python -m biocoreset.bench.antibody.oas` (the simulated repertoire in OAS
    layout) reads back: row ids, its sequences in order, and its metadata line."""
    from biocoreset.bench.antibody.oas import oas_metadata, write_oas_unit
    from biocoreset.bench.antibody.repertoire import AntibodyRecord

    common = {"species": "human", "chain": "H", "v_gene": "IGHV3-23", "j_gene": "IGHJ4"}
    records = [
        AntibodyRecord(id=f"ab{i}", sequence=aa, cdr3_length=12, **common)
        for i, aa in enumerate(AA)
    ]
    path = tmp_path / "human_heavy.csv.gz"
    write_oas_unit(records, path, metadata=oas_metadata(records, Run="sim-1"))
    assert detect_format(path) == "oas"
    src = open_sequences(path)
    assert list(src) == [(f"human_heavy:{i}", aa) for i, aa in enumerate(AA, start=1)]
    assert src.reader_options()["unit_metadata"]["Run"] == "sim-1"

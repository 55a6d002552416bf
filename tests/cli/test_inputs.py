"""OAS units and Parquet through the commands (issue 35 items 1–2): `score` records the unit's
metadata, `select` re-reads the unit from it, `run` keeps it in run.json, `dedup` reads a unit;
bad inputs give one line, exit 2 and write nothing."""

from __future__ import annotations

import csv
import gzip
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from biocoreset.cli import main
from biocoreset.data.synthetic import synthetic_rna_corpus, write_fasta
from biocoreset.store.result import load_scores
from biocoreset.testing import tiny_esm

META = {"Run": "SRR1", "Species": "human", "Chain": "Heavy", "Isotype": "IGHG", "Age": 44}


def _unit(path, records, header=("v_call", "sequence_alignment_aa", "Redundancy")):
    """An OAS-layout unit: metadata line (one quoted CSV field), header, rows; gzip."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([json.dumps(META)])
    w.writerow(header)
    for i, (_, seq) in enumerate(records):
        w.writerow(["IGHV1-2*02", seq, i + 1][: len(header)])
    path.write_bytes(gzip.compress(buf.getvalue().encode()))
    return path


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    model, tok = tiny_esm(seed=0, dtype=torch.float32, max_positions=130)
    model.save_pretrained(root / "model")
    tok.save_pretrained(root / "model")
    records = synthetic_rna_corpus(24, seed=1)  # RNA letters for the tiny RNA model: the layout
    write_fasta(records, root / "corpus.fa")  # is what is tested here
    _unit(root / "SRR1_1_Heavy_IGHG.csv.gz", records)
    ids, seqs = zip(*records, strict=True)
    pq.write_table(
        pa.table({"name": pa.array(ids, pa.large_string()), "seq": list(seqs)}),
        root / "corpus.parquet",
        row_group_size=10,
    )
    return root, records


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def _score(capsys, ws, src, out, *extra):
    root, _ = ws
    return _run(
        capsys, "score", src, "--model", root / "model", "-o", out, "--subset", 8, "--no-progress",
        *extra,
    )  # fmt: skip


def test_score_and_select_an_oas_unit(ws, tmp_path, capsys):
    root, records = ws
    scores = tmp_path / "s.parquet"
    code, _, err = _score(capsys, ws, root / "SRR1_1_Heavy_IGHG.csv.gz", scores)
    assert code == 0, err
    result = load_scores(scores)
    assert result.ids == [f"SRR1_1_Heavy_IGHG:{i}" for i in range(1, len(records) + 1)]
    reader = result.metadata["reader"]
    assert reader["format"] == "oas" and reader["unit_metadata"] == META
    assert reader["sequence_column"] == "sequence_alignment_aa" and reader["id_column"] == "@row"
    # select re-opens the unit from the score file's reader options
    code, _, err = _run(capsys, "select", scores, "-o", tmp_path / "sel", "--budget", 5)
    assert code == 0, err
    fasta = (tmp_path / "sel" / "coreset.fasta").read_text()
    assert fasta.count(">SRR1_1_Heavy_IGHG:") == 5
    # the same records from FASTA and from Parquet give the same scores (float32 model)
    for src, extra in (
        (root / "corpus.fa", ()),
        (root / "corpus.parquet", ("--id-column", "name", "--sequence-column", "seq")),
    ):
        out = tmp_path / f"{src.suffix[1:]}.parquet"
        code, _, err = _score(capsys, ws, src, out, *extra)
        assert code == 0, err
        other = load_scores(out)
        assert other.ids == [rid for rid, _ in records]
        if src.suffix == ".parquet":
            assert other.metadata["reader"]["format"] == "parquet"
            import numpy as np

            fa = load_scores(tmp_path / "fa.parquet")
            np.testing.assert_allclose(other.scores, fa.scores, rtol=1e-5, atol=0)


@pytest.mark.parametrize(
    ("make", "extra", "message"),
    [
        ("paired", (), "paired unit: choose a chain with --sequence-column"),
        ("noid", (), "--id-column @row"),
        ("null", ("--id-column", "name", "--sequence-column", "seq"), "row group 1 (of 2)"),
        ("intcol", ("--id-column", "name", "--sequence-column", "seq"), "is int64, not a string"),
        ("notoas", ("--format", "oas"), "is not an OAS data unit"),
    ],
)
def test_bad_inputs_one_line_nothing_written(ws, tmp_path, capsys, make, extra, message):
    _, records = ws
    ids, seqs = zip(*records, strict=True)
    if make == "paired":
        src = _unit(
            tmp_path / "p.csv.gz",
            records,
            header=("v_call_heavy", "sequence_alignment_aa_heavy", "sequence_alignment_aa_light"),
        )
    elif make == "noid":
        src = tmp_path / "t.csv"
        src.write_text("sequence\n" + "".join(f"{s}\n" for s in seqs))
    elif make == "null":
        src = tmp_path / "n.parquet"
        vals = [*seqs[:15], None, *seqs[16:]]
        pq.write_table(pa.table({"name": ids, "seq": vals}), src, row_group_size=12)
    elif make == "intcol":
        src = tmp_path / "i.parquet"
        pq.write_table(pa.table({"name": ids, "seq": list(range(len(ids)))}), src)
    else:
        src = tmp_path / "plain.csv"
        src.write_text("id,sequence\na,ACGU\n")
    out = tmp_path / "s.parquet"
    code, _, err = _score(capsys, ws, src, out, *extra)
    assert code == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert not out.exists() and not (tmp_path / "s.parquet.parts").exists()


def test_run_keeps_the_unit_metadata_in_run_json(ws, tmp_path, capsys):
    root, _ = ws
    cfg = tmp_path / "run.toml"
    cfg.write_text(
        f"""
output = "{tmp_path / "run"}"
[data]
path = "{root / "SRR1_1_Heavy_IGHG.csv.gz"}"
subset = 8
[model]
path = "{root / "model"}"
[finetune]
enabled = false
[score]
batch_size = 8
[select]
methods = ["topk"]
budget = 4
"""
    )
    code, _, err = _run(capsys, "run", cfg, "--no-progress")
    assert code == 0, err
    state = json.loads((tmp_path / "run" / "run.json").read_text())
    assert state["input"]["format"] == "oas" and state["input"]["unit_metadata"] == META
    meta = load_scores(tmp_path / "run" / "scores.parquet").metadata
    assert meta["reader"]["unit_metadata"] == META


def test_dedup_reads_an_oas_unit(ws, tmp_path, capsys):
    root, records = ws
    test = tmp_path / "test.fa"
    write_fasta(records[:3], test)
    out = tmp_path / "kept.fa"
    code, _, err = _run(
        capsys, "dedup", root / "SRR1_1_Heavy_IGHG.csv.gz", "-t", test, "-o", out,
        "--removed-ids", tmp_path / "removed.txt",
    )  # fmt: skip
    assert code == 0, err
    removed = (tmp_path / "removed.txt").read_text().split()
    assert set(removed) >= {"SRR1_1_Heavy_IGHG:1", "SRR1_1_Heavy_IGHG:2", "SRR1_1_Heavy_IGHG:3"}
    assert out.read_text().startswith(">SRR1_1_Heavy_IGHG:")

"""A simulated repertoire written as an OAS data unit (metadata line, AIRR header, no id column)."""

from __future__ import annotations

import csv
import gzip
import json

import pytest

pytest.importorskip("olga")
pytest.importorskip("anarci")

from biocoreset.bench.antibody.oas import OAS_COLUMNS, main, write_oas_unit
from biocoreset.bench.antibody.repertoire import build_repertoire
from biocoreset.errors import ConfigError, OutputExistsError


def _rows(path):
    with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh))


def test_the_unit_has_oas_layout_and_its_records(tmp_path):
    records, _ = build_repertoire(n=40, seed=5, mix={"human_B_heavy": 1.0})
    path = write_oas_unit(records, tmp_path / "u.csv.gz")
    rows = _rows(path)
    meta = json.loads(rows[0][0])
    assert len(rows[0]) == 1 and meta["Species"] == "human" and meta["Chain"] == "Heavy"
    assert meta["Total sequences"] == 40
    assert tuple(rows[1]) == OAS_COLUMNS and "sequence_id" not in rows[1]
    col = {name: i for i, name in enumerate(rows[1])}
    assert [r[col["sequence_alignment_aa"]] for r in rows[2:]] == [r.sequence for r in records]
    assert [r[col["v_call"]] for r in rows[2:]] == [r.v_gene for r in records]
    assert {r[col["locus"]] for r in rows[2:]} == {"IGH"}
    # the raw text: the metadata is one quoted CSV field, as OAS writes it
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        first = fh.readline()
    assert first.startswith('"{""Run""')


def test_same_records_same_bytes_and_no_silent_overwrite(tmp_path):
    records, _ = build_repertoire(n=10, seed=1, mix={"mouse_B_kappa": 1.0})
    a = write_oas_unit(records, tmp_path / "a.csv.gz").read_bytes()
    b = write_oas_unit(records, tmp_path / "b.csv.gz").read_bytes()
    assert a == b  # gzip's mtime is fixed
    with pytest.raises(OutputExistsError):
        write_oas_unit(records[:2], tmp_path / "a.csv.gz")
    assert (tmp_path / "a.csv.gz").read_bytes() == a
    write_oas_unit(records[:2], tmp_path / "a.csv.gz", force=True)
    assert len(_rows(tmp_path / "a.csv.gz")) == 4
    with pytest.raises(ConfigError, match="at least one"):
        write_oas_unit([], tmp_path / "e.csv.gz")
    assert not (tmp_path / "e.csv.gz").exists()


def test_command_line(tmp_path, capsys):
    out = tmp_path / "light.csv.gz"
    assert main(["-o", str(out), "--n", "12", "--species", "mouse", "--chains", "K,L"]) == 0
    rows = _rows(out)
    assert json.loads(rows[0][0])["Chain"] == "Light" and len(rows) == 14
    assert main(["-o", str(out), "--n", "12"]) == 2  # exists, no --force
    assert "--force" in capsys.readouterr().err
    for bad, msg in (
        (["--chains", ""], "--chains"),
        (["--chains", "H,K"], "one chain type"),
        (["--species", "llama"], "--species"),
    ):
        assert main(["-o", str(tmp_path / "x.csv.gz"), *bad]) == 2
        assert msg in capsys.readouterr().err
        assert not (tmp_path / "x.csv.gz").exists()


def test_dedup_reads_an_oas_unit_as_its_test_set(tmp_path):
    from biocoreset.bench.dedup import read_test_file
    from biocoreset.cli import main as cli

    records, _ = build_repertoire(n=12, seed=7, mix={"human_B_heavy": 1.0})
    corpus = write_oas_unit(records, tmp_path / "corpus.csv.gz")
    test = write_oas_unit(records[:3], tmp_path / "test.csv.gz")
    assert list(read_test_file(test)) == [r.sequence for r in records[:3]]
    out = tmp_path / "kept.fasta"
    assert (
        cli(["dedup", str(corpus), "--test", str(test), "-o", str(out), "--molecule", "protein"])
        == 0
    )
    kept = ["".join(rec.splitlines()[1:]) for rec in out.read_text().split(">")[1:]]
    assert kept == [r.sequence for r in records[3:]]

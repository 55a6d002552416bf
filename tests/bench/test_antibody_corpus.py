"""The ANARCI germline corpus builder: labels in headers, gaps removed, duplicates documented."""

from __future__ import annotations

import pytest

pytest.importorskip("anarci")

from biocoreset.bench.antibody.corpus import corpus_records, header_labels, main
from biocoreset.bench.antibody.germlines import germlines
from biocoreset.data.sources import open_sequences


def test_one_record_per_distinct_sequence_and_the_others_listed():
    table = germlines()
    records = corpus_records()
    seqs = [s for _, s in records]
    assert len(seqs) == len(set(seqs)) == len({g.sequence for g in table})
    listed = {d for h, _ in records for d in header_labels(h)["duplicates"].split(",") if d != "-"}
    kept = {header_labels(h)["id"] for h, _ in records}
    assert not listed & kept
    assert len(listed) + len(kept) == len(table)  # every allele is a record or a listed duplicate
    assert all("-" not in s and s.isalpha() and s.isupper() for s in seqs)


def test_headers_carry_the_labels():
    records = corpus_records(species=["human"], chains=["H"])
    by_id = {header_labels(h)["id"]: (header_labels(h), s) for h, s in records}
    labels, seq = by_id["human|IGHV3-23*01"]
    assert labels["species"] == "human" and labels["chain"] == "H" and labels["segment"] == "V"
    assert labels["gene"] == "IGHV3-23" and labels["family"] == "IGHV3"
    assert labels["allele"] == "IGHV3-23*01"
    assert seq.startswith("EVQLLESGGGLVQPGGSLRLSCAASGFTFS")


def test_keep_duplicates_keeps_every_allele_and_order_is_stable():
    everything = corpus_records(chains=["K"], keep_duplicates=True)
    assert len(everything) == len(germlines(chains=["K"]))
    assert corpus_records(chains=["K"]) == corpus_records(chains=["K"])


def test_cli_writes_fasta_the_readers_read(tmp_path, capsys):
    out = tmp_path / "g.fasta"
    assert main(["-o", str(out), "--species", "human", "--chains", "K,L"]) == 0
    assert "sequences ->" in capsys.readouterr().out
    rows = list(open_sequences(out))
    assert rows and rows[0][0].startswith("human|IGKV")
    assert main(["-o", str(out), "--species", "martian"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "martian" in err and err.count("\n") == 1

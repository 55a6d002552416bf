"""``select_to_folder`` writes the selected records as they are in the corpus, header lines whole."""

from __future__ import annotations

from biocoreset import score
from biocoreset.adapters.hf import HFAdapter
from biocoreset.selection.folder import select_to_folder
from biocoreset.testing import random_rna, tiny_esm


def test_coreset_fasta_keeps_each_header_line(tmp_path):
    records = random_rna(12, seed=4, min_len=5, max_len=20)
    corpus = tmp_path / "corpus.fa"
    corpus.write_text(
        "".join(
            f">{rid} family=F{i % 3} note:x y\n{seq}\n" for i, (rid, seq) in enumerate(records)
        ),
        encoding="utf-8",
    )
    result = score(HFAdapter(*tiny_esm()), str(corpus), subset=6, batch_size=4)
    result.save(tmp_path / "scores.parquet")
    summary = select_to_folder(
        tmp_path / "scores.parquet", tmp_path / "sel", method="topk", budget=4, progress=False
    )
    ids = (tmp_path / "sel" / "coreset_ids.txt").read_text().split()
    headers = [
        line[1:]
        for line in (tmp_path / "sel" / "coreset.fasta").read_text().splitlines()
        if line.startswith(">")
    ]
    assert summary["budget"] == 4 and len(headers) == 4
    by_id = {rid: i for i, (rid, _) in enumerate(records)}
    assert sorted(headers) == sorted(f"{rid} family=F{by_id[rid] % 3} note:x y" for rid in ids)

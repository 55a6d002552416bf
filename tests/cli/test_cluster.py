"""``biocoreset cluster``, then ``biocoreset select --method cluster`` on its TSV."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from biocoreset.cli import main
from biocoreset.store.result import ScoreResult

pytestmark = pytest.mark.skipif(
    shutil.which("mmseqs") is None,
    reason="MMseqs2 (`mmseqs`) is not on PATH: apt-get install mmseqs2 (tools/install_test_env.sh)",
)


def test_cluster_then_select(tmp_path, capsys):
    rng = np.random.default_rng(0)
    aa = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
    roots = [rng.choice(aa, 100) for _ in range(3)]
    ids, lines = [], []
    for f, root in enumerate(roots):
        for m in range(4):
            seq = root.copy()
            seq[rng.integers(0, 100, 2)] = "W"
            ids.append(f"f{f}m{m}")
            lines.append(f">{ids[-1]}\n{''.join(seq)}\n")
    (tmp_path / "c.fasta").write_text("".join(lines))
    code = main(
        [
            "cluster",
            str(tmp_path / "c.fasta"),
            "-o",
            str(tmp_path / "clu.tsv"),
            "--info",
            str(tmp_path / "clu.json"),
            "--force",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and out.startswith("3 clusters of 12 sequences (largest 4, 0 singletons)")
    assert json.loads((tmp_path / "clu.json").read_text())["clusters"] == 3
    n = len(ids)
    ScoreResult(ids=ids, scores=np.arange(n, dtype=float), loss=np.zeros(n), length=[100] * n).save(
        tmp_path / "s.parquet"
    )
    code = main(
        [
            "select",
            str(tmp_path / "s.parquet"),
            "-o",
            str(tmp_path / "sel"),
            "--method",
            "cluster",
            "--budget",
            "3",
            "--options",
            json.dumps({"clusters": str(tmp_path / "clu.tsv"), "within": "influence"}),
        ]
    )
    assert code == 0
    chosen = (tmp_path / "sel" / "coreset_ids.txt").read_text().split()
    assert sorted(chosen) == ["f0m3", "f1m3", "f2m3"]  # the highest score of each family

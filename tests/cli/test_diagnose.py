"""`biocoreset diagnose` from the shell: files, labels from headers, coresets, errors."""

from __future__ import annotations

import json

import numpy as np

from biocoreset.cli import main
from biocoreset.store.result import ScoreResult


def _workspace(tmp_path):
    rng = np.random.default_rng(0)
    n = 120
    ids = [f"s{i:03d}" for i in range(n)]
    families = [f"RF{i % 6:05d}" for i in range(n)]
    lengths = rng.integers(20, 300, size=n)
    ScoreResult(
        ids=ids,
        scores=1e3 / lengths * rng.gamma(3.0, size=n),
        loss=rng.normal(1.3, 0.05, size=n),
        length=lengths,
        metadata={"negated": False, "subset_size": 256, "fit_on": "subset"},
    ).save(tmp_path / "scores.parquet")
    fasta = tmp_path / "corpus.fa"
    fasta.write_text(
        "".join(f">{i} {fam}|family\n{'ACGU' * 5}\n" for i, fam in zip(ids, families, strict=True))
    )
    co = tmp_path / "co"
    co.mkdir()
    (co / "coreset_ids.txt").write_text("\n".join(ids[:12]) + "\n")
    return tmp_path


def test_diagnose_writes_the_report(tmp_path, capsys):
    ws = _workspace(tmp_path)
    argv = ["diagnose", ws / "scores.parquet", "-o", ws / "diag", "--sequences", ws / "corpus.fa"]
    argv += ["--label-regex", r"(RF\d+)\|", "--coreset", ws / "co"]
    assert main([str(a) for a in argv]) == 0
    out = capsys.readouterr().out
    assert "diagnosed 120 scores" in out and "6 of 6 labels" in out
    assert "warning: the scores follow sequence length" in out
    report = json.loads((ws / "diag" / "report.json").read_text())
    assert report["labels"]["distinct"] == 6
    assert report["coresets"][str(ws / "co")]["coreset"]["covered"] == 6
    for name in ("report.md", "length.png", "loss.png", "coresets.png"):
        assert (ws / "diag" / name).is_file()
    # a second run refuses to overwrite; --force overwrites
    assert main([str(a) for a in argv]) == 2
    assert "already holds" in capsys.readouterr().err
    assert main([str(a) for a in [*argv, "--force"]]) == 0


def test_diagnose_errors_name_the_fault(tmp_path, capsys):
    ws = _workspace(tmp_path)
    (ws / "co" / "coreset_ids.txt").write_text("missing_id\n")
    code = main(
        ["diagnose", str(ws / "scores.parquet"), "-o", str(ws / "d"), "--coreset", str(ws / "co")]
    )
    err = capsys.readouterr().err
    assert code == 2 and "missing_id" in err and "Traceback" not in err
    assert not (ws / "d").exists()
    code = main(["diagnose", str(ws / "nope.parquet"), "-o", str(ws / "d")])
    assert code == 2 and "does not exist" in capsys.readouterr().err

"""``--model antiberty`` from the shell and from Python: score, fine-tune, diagnose (tiny runs)."""

from __future__ import annotations

import json
import sys
import warnings

import numpy as np
import pytest

from biocoreset.cli import main


def _fasta(tmp_path, n=6):
    pytest.importorskip("anarci")
    from biocoreset.bench.antibody.corpus import corpus_records, write_corpus

    records = corpus_records(species=["human"])
    step = len(records) // n
    path = tmp_path / "germlines.fasta"
    write_corpus(path, records[::step][:n])
    return path


def test_missing_package_is_one_line(tmp_path, capsys, monkeypatch):
    fasta = tmp_path / "g.fasta"
    fasta.write_text(">a\nEVQLVESGG\n")
    monkeypatch.setitem(sys.modules, "antiberty", None)
    code = main(["score", str(fasta), "--model", "antiberty", "-o", str(tmp_path / "s.parquet")])
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert (
        "pip install 'biocoreset[antibody]'" in err and "\n" not in err and "Traceback" not in err
    )


@pytest.mark.slow
def test_shell_finetune_score_diagnose(tmp_path, capsys):
    pytest.importorskip("antiberty")
    fasta = _fasta(tmp_path)
    ft = tmp_path / "ft"
    common = ["--subset", "4", "--no-progress"]
    assert main(["finetune", str(fasta), "--model", "antiberty", "-o", str(ft), "--max-steps", "1",
                 *common]) == 0  # fmt: skip
    scores = tmp_path / "scores.parquet"
    assert main(["score", str(fasta), "--model", str(ft), "-o", str(scores), *common]) == 0
    diag = tmp_path / "diag"
    argv = ["diagnose", str(scores), "-o", str(diag), "--sequences", str(fasta)]
    assert main([*argv, "--label-regex", r"chain=(\S+)", "--no-progress"]) == 0
    report = json.loads((diag / "report.json").read_text())
    assert report  # written and readable
    from biocoreset.store.result import ScoreResult

    result = ScoreResult.load(scores)
    assert len(result) == 6 and np.isfinite(result.scores).all()
    assert float(np.mean(result.loss)) < 1.0  # the fine-tuned AntiBERTy still knows germlines


@pytest.mark.slow
def test_python_finetune_score_diagnose(tmp_path):
    pytest.importorskip("antiberty")
    from biocoreset import score
    from biocoreset.data.sources import open_sequences
    from biocoreset.diagnose.report import diagnose
    from biocoreset.modelio import load_model
    from biocoreset.train.finetune import finetune

    records = [(rid.split()[0], seq) for rid, seq in open_sequences(_fasta(tmp_path))]
    adapter = load_model("antiberty", device="cpu")
    done = finetune(adapter, records, subset=4, max_steps=1, warmup_steps=0, progress=False)
    assert done.steps == 1
    with warnings.catch_warnings():  # six sequences: the low-stability warning is expected
        warnings.simplefilter("ignore")
        result = score(adapter, records, subset=4, mask_draws=2, progress=False)
    assert len(result) == 6 and np.isfinite(result.scores).all()
    assert float(np.mean(result.loss)) < 1.0
    assert "stability" in result.metadata
    report = diagnose(result, labels={i: i.split("|")[1][:4] for i in result.ids})
    assert "length" in report.markdown().lower()

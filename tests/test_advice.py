"""The quality warnings (biocoreset.diagnose.advice): each fires on its condition, names its fix, stays quiet
otherwise, and the command line prints each one once."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from biocoreset import score
from biocoreset.cli import main
from biocoreset.data.synthetic import write_fasta
from biocoreset.diagnose.advice import (
    LENGTH_RHO,
    fit_advice,
    length_advice,
    score_file_advice,
    subset_advice,
)
from biocoreset.errors import BioCoresetWarning, QualityWarning
from biocoreset.store.result import ScoreResult
from biocoreset.testing import random_rna, tiny_esm


def _quality(record) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, QualityWarning)]


def test_quality_warning_is_a_biocoreset_warning():
    assert issubclass(QualityWarning, BioCoresetWarning)


def test_small_subset_names_the_fix():
    (msg,) = subset_advice(99)
    assert "only 99 sequences" in msg and "--subset" in msg and "at least 256" in msg
    assert subset_advice(100) == []


def test_fit_advice_on_metadata():
    meta = {"curvature": "diagonal", "fit_on": "subset", "subset_size": 40}
    (msg,) = fit_advice(meta)
    assert "only 40 sequences" in msg
    assert fit_advice({**meta, "curvature": "identity"}) == []  # nothing is fitted on D_sub
    assert fit_advice({**meta, "fit_on": "all"}) == []
    big = {**meta, "subset_size": 500, "num_scored_parameters": 1000}
    assert fit_advice({**big, "fisher_zero_entries": 100}) == []  # exactly 10%: quiet
    (msg,) = fit_advice({**big, "fisher_zero_entries": 101})
    assert "10% of the Fisher entries are zero" in msg and "--parameters" in msg


def test_length_advice_threshold_and_sign():
    length = np.arange(60.0)
    rng = np.random.default_rng(0)
    assert "ρ = 1.00" in length_advice(length * 2, length)[0]
    assert "ρ = -1.00" in length_advice(-length, length)[0]
    (msg,) = length_advice(length**2, length)
    assert "biocoreset diagnose" in msg and "--debias length" in msg
    noise = rng.normal(size=60)
    mixed = length + noise * 200  # weakly related
    rho = np.corrcoef(np.argsort(np.argsort(mixed)), length)[0, 1]
    assert (length_advice(mixed, length) != []) == (abs(rho) > LENGTH_RHO)
    assert length_advice(length[:29], length[:29]) == []  # too few rows to judge
    with_nan = np.r_[length, np.full(5, np.nan)]
    assert length_advice(with_nan, np.r_[length, np.arange(5.0)])  # non-finite scores dropped


def test_score_file_advice_reads_a_sample_of_the_file(tmp_path):
    n = 200
    length = np.arange(n) % 50 + 5
    result = ScoreResult(
        ids=[f"s{i}" for i in range(n)],
        scores=length.astype(float) + 0.5,
        loss=np.ones(n),
        length=length,
        metadata={"curvature": "diagonal", "subset_size": 300},
    )
    path = result.save(tmp_path / "s.parquet")
    (msg,) = score_file_advice(path, result.metadata)
    assert "follow sequence length" in msg
    flat = ScoreResult(
        ids=result.ids, scores=np.r_[np.zeros(100), np.ones(100)], loss=np.ones(n), length=length
    )
    assert score_file_advice(flat.save(tmp_path / "f.parquet"), {}) == []


def test_score_warns_about_a_small_subset_and_names_it_once():
    model, tok = tiny_esm()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        score(model, random_rna(40, seed=3), tokenizer=tok, subset=8, batch_size=8, progress=False)
    msgs = _quality(record)
    assert sum("D_sub holds only 8 sequences" in m for m in msgs) == 1


def test_finetune_shorter_than_warmup_warns_and_a_long_enough_one_does_not():
    from biocoreset.train.finetune import finetune

    model, tok = tiny_esm(dtype=torch.float32)
    rna = random_rna(120, seed=4, max_len=20)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        finetune(model, rna, tokenizer=tok, subset=32, batch_size=16, diagnostic_samples=8,
                 progress=False)  # fmt: skip
    msgs = _quality(record)
    (short,) = [m for m in msgs if "warm-up" in m]
    assert "ran 2 steps, fewer than its 50 warm-up steps" in short
    assert "D_sub loss went from" in short and "--warmup-steps" in short and "--epochs" in short
    assert any("D_sub holds only 32" in m for m in msgs)
    model, tok = tiny_esm(dtype=torch.float32)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        finetune(model, rna, tokenizer=tok, subset=112, batch_size=16, warmup_steps=2,
                 diagnostic_samples=0, progress=False)  # fmt: skip
    assert _quality(record) == []


@pytest.mark.slow
def test_the_command_line_prints_each_warning_once(tmp_path, monkeypatch, capsys):
    model, tok = tiny_esm(dtype=torch.float32)
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    write_fasta(random_rna(40, seed=5), tmp_path / "c.fa")
    monkeypatch.chdir(tmp_path)
    common = ["c.fa", "--model", "m", "--subset", "16", "--batch-size", "8", "--progress", "none"]
    assert main(["finetune", *common, "-o", "ft", "--diagnostic-samples", "4"]) == 0
    err = capsys.readouterr().err
    assert err.count("biocoreset finetune: warning: the fine-tune ran 2 steps") == 1
    assert err.count("biocoreset finetune: warning: D_sub holds only 16") == 1
    assert main(["score", *common, "-o", "s.parquet"]) == 0
    err = capsys.readouterr().err
    assert err.count("biocoreset score: warning: D_sub holds only 16") == 1
    assert "Traceback" not in err

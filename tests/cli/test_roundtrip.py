"""pretrain -> finetune -> score -> select -> diagnose from the shell, each step reading the previous
step's folder with ``--model`` and nothing else, for every built-in adapter; no step prints a
traceback, and the scores equal the Python API's on the same model, data and options."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import biocoreset
from biocoreset.cli import main
from biocoreset.data.synthetic import write_fasta
from biocoreset.modelio import load_model, read_manifest
from biocoreset.store.result import load_scores
from biocoreset.testing import random_rna, tiny_esm
from floats import assert_state_dicts_equal_to_rounding

SRC = Path(__file__).resolve().parents[2] / "src"
SCORE = ["--subset", "16", "--batch-size", "8"]


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env["PYTHONPATH"] = str(SRC) + os.pathsep + env.get("PYTHONPATH", "")
    env["BIOCORESET_PROGRESS_INTERVAL"] = "0"  # log mode prints every update: exercised too
    return env


def _shell(cwd: Path, *argv: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "biocoreset.cli", *argv],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    return output


def _chain(run, corpus: Path, pretrain_model: list[str]) -> None:
    run(
        "pretrain",
        str(corpus),
        "-o",
        "run",
        *pretrain_model,
        "--max-steps",
        "4",
        "--batch-size",
        "8",
        "--warmup-steps",
        "1",
    )
    run(
        "finetune",
        str(corpus),
        "--model",
        "run",
        "-o",
        "ft",
        "--lr",
        "1e-3",
        "--warmup-steps",
        "1",
        "--diagnostic-samples",
        "4",
        *SCORE,
    )
    run("score", str(corpus), "--model", "ft", "-o", "scores.parquet", *SCORE)
    run("select", "scores.parquet", "--budget", "0.25", "-o", "coreset")
    run("diagnose", "scores.parquet", "-o", "report", "--coreset", "coreset", "--finetune", "ft")


def _same_as_python_api(folder: Path, corpus: Path) -> None:
    adapter = load_model(folder / "ft", device="cpu")
    expected = biocoreset.score(adapter, str(corpus), subset=16, batch_size=8, progress=False)
    got = load_scores(folder / "scores.parquet")
    assert got.ids == expected.ids
    np.testing.assert_allclose(got.scores, expected.scores, rtol=1e-5, atol=0)
    assert (folder / "coreset" / "coreset.fasta").read_text().count(">") == 10
    report = json.loads((folder / "report" / "report.json").read_text())
    assert report["num_sequences"] == len(expected.ids)
    assert (folder / "report" / "length.png").is_file()


@pytest.mark.slow
def test_rnafm_from_the_shell(tmp_path):
    corpus = write_fasta(random_rna(40, seed=2, min_len=8, max_len=40), tmp_path / "corpus.fa")
    out = []
    _chain(
        lambda *a: out.append(_shell(tmp_path, *a)),
        corpus,
        ["--adapter", "rna-fm", "--adapter-options", '{"size": "tiny", "invalid": "replace"}'],
    )
    assert "pretrain:" in out[0] and "/4 step" in out[0]  # log-mode progress without a terminal
    manifest = read_manifest(tmp_path / "run" / "final")
    assert manifest.adapter == "rna-fm" and manifest.adapter_options["invalid"] == "replace"
    assert read_manifest(tmp_path / "ft").adapter_options["invalid"] == "replace"
    _same_as_python_api(tmp_path, corpus)
    # The case: the pretrained weights given as --weights over a named rna-fm size.
    _shell(
        tmp_path,
        "finetune",
        str(corpus),
        "--adapter",
        "rna-fm",
        "--adapter-options",
        '{"size": "tiny", "invalid": "replace"}',
        "--weights",
        "run/final/model.safetensors",
        "-o",
        "ft2",
        "--lr",
        "1e-3",
        "--warmup-steps",
        "1",
        "--diagnostic-samples",
        "4",
        *SCORE,
    )
    a = torch.load(tmp_path / "ft" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "ft2" / "model.pt", weights_only=True)
    # invariant: --weights over a named size fine-tunes the same model. Two processes: float32
    # weights to 64 ulps of the largest (docs/reliability.md, "Floats across CPUs").
    assert_state_dicts_equal_to_rounding(a, b, ulps=64)


def _in_process(cwd: Path, monkeypatch, capsys):
    monkeypatch.chdir(cwd)

    def run(*argv: str) -> None:
        code = main([*argv, "--progress", "none"])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        assert "Traceback" not in captured.out + captured.err

    return run


def test_hf_from_the_shell(tmp_path, monkeypatch, capsys):
    model, tok = tiny_esm(dtype=torch.float32, max_positions=130)
    model.save_pretrained(tmp_path / "arch")
    tok.save_pretrained(tmp_path / "arch")
    corpus = write_fasta(random_rna(40, seed=2, min_len=8, max_len=40), tmp_path / "corpus.fa")
    _chain(_in_process(tmp_path, monkeypatch, capsys), corpus, ["--model", "arch"])
    assert read_manifest(tmp_path / "ft").adapter == "hf"
    _same_as_python_api(tmp_path, corpus)


def test_esmc_from_the_shell(tmp_path, monkeypatch, capsys):
    pytest.importorskip("esm.models.esmc")
    rng = np.random.default_rng(0)
    proteins = [
        (f"p{i}", "".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), size=int(rng.integers(8, 30)))))
        for i in range(40)
    ]
    corpus = write_fasta(proteins, tmp_path / "proteins.fa")
    _chain(
        _in_process(tmp_path, monkeypatch, capsys),
        corpus,
        ["--adapter", "esmc", "--adapter-options", '{"model_name": "tiny"}'],
    )
    manifest = json.loads((tmp_path / "ft" / "biocoreset-model.json").read_text())
    assert manifest["adapter"] == "esmc" and manifest["weights"] == "model.pt"
    _same_as_python_api(tmp_path, corpus)

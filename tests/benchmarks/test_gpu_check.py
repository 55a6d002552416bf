"""benchmarks/gpu_check.py: its helpers, and a CPU ``--dry-run`` end to end (tiny models, seconds)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lengths_from_a_fasta_and_the_synthetic_fallback(gpu_check, tmp_path):
    fasta = tmp_path / "x.fa"
    fasta.write_text(">a\nACGU\nAC\n>b desc\nGGGGGGGG\n>empty\n>c\nA\n")
    assert gpu_check.fasta_lengths(fasta) == [6, 8, 1]
    lengths, where = gpu_check.length_source(fasta)
    assert lengths == [6, 8, 1] and "x.fa" in where
    lengths, where = gpu_check.length_source(tmp_path / "missing.fa.gz")
    assert lengths is None and "synthetic" in where and "missing.fa.gz" in where
    rng = gpu_check.random.Random(0)
    drawn = gpu_check.sample_lengths(None, 2000, rng)
    assert min(drawn) >= 10 and 80 < sorted(drawn)[1000] < 110  # median near 94


def test_batches_respect_the_token_budget_and_sort_by_length(gpu_check):
    lengths = [5, 300, 40, 41, 42, 2000, 7, 8]
    batches = gpu_check.length_sorted_batches(
        lengths, "ACGU", max_residues=1022, max_tokens=200, max_batch=3, seed=0
    )
    assert sorted(len(s) for b in batches for _, s in b) == sorted(min(n, 1022) for n in lengths)
    for b in batches:
        widths = [len(s) + 2 for _, s in b]
        assert len(b) <= 3 and (len(b) == 1 or len(b) * max(widths) <= 200)
        assert max(widths) - min(widths) <= 40  # neighbours in length order


def test_device_peaks(gpu_check):
    assert gpu_check.peak_for("NVIDIA H200")[0] == 989.0
    assert gpu_check.peak_for("NVIDIA H100 80GB HBM3")[0] == 989.0
    assert gpu_check.peak_for("NVIDIA A100-SXM4-80GB")[0] == 312.0
    assert gpu_check.peak_for("NVIDIA L4")[0] == 121.0
    assert gpu_check.peak_for("Tesla T4") == (None, "unknown device: pass --peak-tflops")
    assert gpu_check.peak_for("Tesla T4", 65.0) == (65.0, "--peak-tflops")


def test_a_dry_run_never_writes_over_docs(gpu_check, capsys):
    with pytest.raises(SystemExit):
        gpu_check.parse_args(["--dry-run"])
    with pytest.raises(SystemExit):
        gpu_check.parse_args(["--dry-run", "--output", str(gpu_check.DOCS_OUTPUT)])
    assert "docs" in capsys.readouterr().err
    assert gpu_check.parse_args([]).output == gpu_check.DOCS_OUTPUT


def test_report_of_a_failed_model_says_so(gpu_check):
    report = {
        "dry_run": False,
        "command": "python benchmarks/gpu_check.py",
        "date": "today",
        "device": {"device": "cuda", "torch": "2.x", "peak_tflops": None, "peak_source": "?"},
        "lengths": "lengths",
        "corpus_size": 23_000_000,
        "results": [{"model": "rna-fm", "label": "RNA-FM", "error": "OutOfMemoryError: boom"}],
    }
    text = gpu_check.render(report)
    assert "**failed**" in text and "OutOfMemoryError: boom" in text and "DRY RUN" not in text


@pytest.mark.slow
def test_dry_run_on_the_cpu(tmp_path):
    models = ["rna-fm"]
    if importlib.util.find_spec("esm") is not None:
        models.append("esmc-300m")
    out, raw = tmp_path / "gpu.md", tmp_path / "gpu.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = ["--output", str(out), "--json", str(raw), "--lengths-from", str(tmp_path / "none.fa")]
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--dry-run", "--models", *models, *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = out.read_text()
    assert "DRY RUN" in text and "not performance figures" in text
    assert "synthetic" in text  # the lengths fallback is reported
    for field in (
        "score / plain throughput",
        "MFU score",
        "peak memory",
        "hours to score 23M sequences",
        "--dry-run",
    ):
        assert field in text, field
    report = json.loads(raw.read_text())
    assert report["dry_run"] and [r["model"] for r in report["results"]] == models
    for r in report["results"]:
        assert "error" not in r, r
        m = r["measured"]
        assert (
            m["batches"] >= 1
            and m["real_tokens"] > 0
            and set(m["seconds"])
            == {
                "plain",
                "score",
                "engine",
            }
        )
        assert r["score_over_plain_throughput"] > 0 and r["projected_hours"]["score"] > 0
        assert r["checks"]["bf16_vs_fp32_max_rel"] < 0.1  # bf16 autocast against float32
        assert r["engine"]["autocast"] == "bfloat16"

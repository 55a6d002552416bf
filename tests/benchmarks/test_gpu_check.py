"""benchmarks/gpu_check.py: its helpers, its report, and a CPU ``--dry-run`` end to end."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import _common as common
from benchmarks import gpu_check

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"


def test_lengths_from_a_fasta_and_the_synthetic_fallback(tmp_path):
    fasta = tmp_path / "x.fa"
    fasta.write_text(">a\nACGU\nAC\n>b desc\nGGGGGGGG\n>empty\n>c\nA\n")
    assert common.fasta_lengths(fasta) == [6, 8, 1]
    lengths, where = common.length_source(fasta)
    assert lengths == [6, 8, 1] and "x.fa" in where
    lengths, where = common.length_source(tmp_path / "missing.fa.gz")
    assert lengths is None and "synthetic" in where and "missing.fa.gz" in where
    drawn = common.sample_lengths(None, 2000, random.Random(0))
    assert min(drawn) >= 10 and 80 < sorted(drawn)[1000] < 110  # median near 94


def test_batches_respect_the_token_budget_and_sort_by_length():
    lengths = [5, 300, 40, 41, 42, 2000, 7, 8]
    batches = common.length_sorted_batches(
        lengths, "ACGU", max_residues=1022, max_tokens=200, max_batch=3, seed=0
    )
    assert sorted(len(s) for b in batches for _, s in b) == sorted(min(n, 1022) for n in lengths)
    for b in batches:
        widths = [len(s) + 2 for _, s in b]
        assert len(b) <= 3 and (len(b) == 1 or len(b) * max(widths) <= 200)
        assert max(widths) - min(widths) <= 40  # neighbours in length order


def test_device_peaks():
    assert common.peak_for("NVIDIA H200")[0] == 989.0
    assert common.peak_for("NVIDIA H100 80GB HBM3")[0] == 989.0
    assert common.peak_for("NVIDIA H100 PCIe")[0] == 756.0
    assert common.peak_for("NVIDIA A100-SXM4-80GB")[0] == 312.0
    assert common.peak_for("NVIDIA L4")[0] == 121.0
    assert common.peak_for("Tesla T4") == (None, "unknown device: pass --peak-tflops")
    assert common.peak_for("Tesla T4", 65.0) == (65.0, "--peak-tflops")


def test_a_dry_run_never_writes_over_docs(capsys):
    with pytest.raises(SystemExit):
        gpu_check.parse_args(["--dry-run"])
    with pytest.raises(SystemExit):
        gpu_check.parse_args(["--dry-run", "--output", str(gpu_check.DOCS_OUTPUT)])
    assert "docs" in capsys.readouterr().err
    assert gpu_check.parse_args([]).output == gpu_check.DOCS_OUTPUT


def test_report_of_a_failed_model_says_so():
    report = {
        "dry_run": False,
        "command": "python -m benchmarks.gpu_check",
        "date": "today",
        "device": {"device": "cuda", "torch": "2.x", "peak_tflops": None, "peak_source": "?"},
        "lengths": "lengths",
        "corpus_size": 23_000_000,
        "results": [{"model": "rna-fm", "label": "RNA-FM", "error": "OutOfMemoryError: boom"}],
    }
    text = gpu_check.render(report)
    assert "**failed**" in text and "OutOfMemoryError: boom" in text and "DRY RUN" not in text


@pytest.mark.parametrize("case", ["gpu", "dry", "failed_only", "empty"])
def test_the_report_page_is_unchanged(case):
    """The page of fixed results is byte for byte the one the renderer wrote before it moved to
    the shared helpers (``data/gpu_report_*.md``: one full GPU run with a partial and a failed
    model, a dry run, a failure only, nothing)."""
    report = json.loads((DATA / "gpu_reports.json").read_text(encoding="utf-8"))[case]
    want = (DATA / f"gpu_report_{case}.md").read_text(encoding="utf-8")
    assert gpu_check.render(report) + "\n" == want


def test_the_report_writer_writes_the_page_and_the_json(tmp_path):
    report = json.loads((DATA / "gpu_reports.json").read_text(encoding="utf-8"))["dry"]
    page, raw = tmp_path / "a" / "gpu.md", tmp_path / "b" / "gpu.json"
    common.write_report(gpu_check.render(report), page, report, raw)
    assert page.read_text(encoding="utf-8") == (DATA / "gpu_report_dry.md").read_text("utf-8")
    assert json.loads(raw.read_text(encoding="utf-8")) == report


def test_side_by_side_rotates_and_stops(monkeypatch):
    calls: list[str] = []
    fns = {k: (lambda b, k=k: calls.append(f"{k}{b}")) for k in ("a", "b", "c")}
    times, visited = common.side_by_side(
        fns, [0, 1], lambda fn: fn() or 1.0, seconds=1e9, max_rounds=2
    )
    assert visited == [0, 1, 0, 1] and times == {"a": 4.0, "b": 4.0, "c": 4.0}
    assert calls[:6] == ["a0", "b0", "c0", "b1", "c1", "a1"]  # no step always runs first


def test_oom_halving_retries_with_half_the_size():
    import torch

    sizes: list[int] = []

    def attempt(size: int) -> None:
        sizes.append(size)
        if size > 1024:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2 GiB")

    halved: list[int] = []
    cpu = torch.device("cpu")
    assert (
        common.oom_halving(attempt, 4096, cpu, failed=lambda t: None, halved=halved.append) is None
    )
    assert sizes == [4096, 2048, 1024] and halved == [4096, 2048]

    def broken(size: int) -> None:
        raise ValueError("not memory")

    failure = common.oom_halving(broken, 4096, cpu, failed=lambda t: None)
    assert failure == "ValueError: not memory"


@pytest.mark.slow
def test_dry_run_on_the_cpu(tmp_path):
    models = ["rna-fm"]
    if importlib.util.find_spec("esm") is not None:
        models.append("esmc-300m")
    out, raw = tmp_path / "gpu.md", tmp_path / "gpu.json"
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    args = ["--output", str(out), "--json", str(raw), "--lengths-from", str(tmp_path / "none.fa")]
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu_check", "--dry-run", "--models", *models, *args],
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

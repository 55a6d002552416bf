"""``examples/replicate_cpu.py``: the CPU-scale replication runs end to end in ``--quick`` mode."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "replicate_cpu.py"


def _run(*args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def _fasta(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    rid = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith(">"):
            rid = line[1:]
            out[rid] = ""
        elif rid is not None:
            out[rid] += line.strip()
    return out


def _module() -> ModuleType:
    """``examples/replicate_cpu.py`` as a module, loaded from its file (``sys.path`` untouched)."""
    spec = importlib.util.spec_from_file_location("replicate_cpu", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_missing_data_folder_is_a_clear_error(tmp_path):
    proc = _run("--quick", "--out", str(tmp_path / "out"), "--data", str(tmp_path / "nowhere"))
    assert proc.returncode == 2
    assert "--data" in proc.stderr and "nowhere" in proc.stderr
    assert not (tmp_path / "out" / "corpus.fasta").exists()


@pytest.mark.slow
def test_quick_replication_end_to_end(tmp_path, shared_data):
    out = tmp_path / "run"
    report, plot = tmp_path / "report.md", tmp_path / "plot.png"
    proc = _run(
        "--quick",
        "--out",
        str(out),
        "--data",
        str(shared_data),
        "--jobs",
        "2",
        "--no-progress",
        "--report",
        str(report),
        "--plot",
        str(plot),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rc = _module()

    # 1. no test sequence of any task is left in the corpus
    corpus = _fasta(out / "corpus.fasta")
    info = json.loads((out / "corpus.json").read_text())
    assert len(corpus) == info["kept"] == rc.PROFILES["quick"]["corpus_limit"]
    assert info["removed_test_overlap"] > 0
    tests = {s.upper().replace("T", "U") for s in rc.test_sequences(shared_data)}
    assert not tests & {s.upper().replace("T", "U") for s in corpus.values()}

    # 3-4. every coreset has its budget and comes from the corpus; Top-I is the top of the scores
    from biocoreset.store.result import ScoreResult

    n = len(corpus)
    names = {p.stem for p in (out / "selections").glob("*.txt")}
    smallest = rc._pct(min(rc.PROFILES["quick"]["budgets"]))
    expected = (
        {f"random-{rc._pct(f)}" for f in rc.PROFILES["quick"]["budgets"]}
        | {f"random{k}-{smallest}" for k in (2, 3)}
        | {
            f"{v}-{m}-{rc._pct(f)}"
            for v, _, _ in rc.VARIANTS
            for m in ("topk", "cci")
            for f in rc.PROFILES["quick"]["budgets"]
        }
    )
    assert names == expected
    for name in names:
        ids = (out / "selections" / f"{name}.txt").read_text().split()
        frac = float(name.rsplit("-", 1)[1].rstrip("%")) / 100
        assert len(ids) == len(set(ids)) == int(frac * n + 1e-9), name
        assert set(ids) <= set(corpus)
    ft = ScoreResult.load(out / "scores" / "ft.parquet")
    k = int(0.1 * n + 1e-9)
    top = {ft.ids[i] for i in np.argsort(-ft.scores, kind="stable")[:k]}
    assert set((out / "selections" / "ft-topk-10%.txt").read_text().split()) == top
    noft = ScoreResult.load(out / "scores" / "noft.parquet")
    assert not np.allclose(ft.scores, noft.scores)  # fine-tuning changed the model being scored
    compat = ScoreResult.load(out / "scores" / "compat.parquet")
    assert compat.metadata["negated"] is True and (compat.scores <= 0).all()

    # the three Random draws at the smallest budget differ (they set the noise floor)
    draws = [
        frozenset((out / "selections" / f"{name}.txt").read_text().split())
        for name in (f"random-{smallest}", f"random2-{smallest}", f"random3-{smallest}")
    ]
    assert len(set(draws)) == 3
    held = _fasta(out / "heldout.fasta")
    assert len(held) == info["heldout"] > 0 and not set(held) & set(corpus)

    # 5. every model was pretrained with the same number of steps, and evaluated with 3 seeds
    steps = {
        json.loads((d / "pretrain.json").read_text())["steps"] for d in (out / "models").iterdir()
    }
    assert steps == {rc.PROFILES["quick"]["pretrain"]["max_steps"]}
    assert len(list((out / "models").iterdir())) == len(expected) + 1
    rows = [r for p in (out / "eval").glob("*.json") for r in json.loads(p.read_text())]
    assert {r["seed"] for r in rows} == {0, 1, 2}
    assert {r["checkpoint"] for r in rows} >= {
        "Original",
        "Untrained",
        "Random 10%",
        "CCI (default) 10%",
    }
    assert all(np.isfinite(r["value"]) or r["metric"] == "spearman" for r in rows)
    loss = {
        r["checkpoint"]: r["value"] for r in rows if r["task"] == "heldout-mlm" and r["seed"] == 0
    }
    assert loss["Original"] < loss["Untrained"]  # pretraining lowers the held-out masked-LM loss

    # 6. the report holds the table, the claims check, the wall time and the plot
    text = report.read_text()
    for needle in (
        "Wall time",
        "| Original |",
        "| CCI (default) 10% |",
        "Random, same budget",
        "parameters",
    ):
        assert needle in text, needle
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # resuming a finished run redoes nothing and gives the same report body
    again = _run("--quick", "--out", str(out), "--data", str(shared_data), "--no-progress")
    assert again.returncode == 0, again.stderr[-3000:]
    table = text[text.index("### Headline") :]
    assert table in (out / "report.md").read_text()


def test_claim_check_counts_only_differences_above_the_noise_floor():
    rc = _module()
    s: dict = {}

    def put(row, acc, acc_sd, loss, loss_sd=0.001):
        s[(row, "x", "rna-type", "acc")] = (acc, acc_sd, 3)
        s[(row, "x", "heldout-mlm", "loss")] = (loss, loss_sd, 3)

    put("Random 1%", 0.50, 0.01, 1.35)
    put("Random 1% (draw 2)", 0.52, 0.01, 1.36)
    put("Random 1% (draw 3)", 0.48, 0.01, 1.34)
    put("Random 10%", 0.59, 0.01, 1.20)
    put("CCI (default) 1%", 0.60, 0.01, 1.30)
    put("Top-I (default) 1%", 0.51, 0.05, 1.40)
    noise = rc.noise_floor(s, 0.01)
    assert noise[("rna-type", "acc")] == pytest.approx(0.02)
    assert noise[("heldout-mlm", "loss")] == pytest.approx(0.01)
    lines = rc.verdicts(s, (0.1, 0.01))
    cells = {tuple(c.strip() for c in line.strip("|").split("|"))[:5] for line in lines}
    # accuracy up by 0.10 > 0.02 and loss down by 0.05 > 0.01: two wins against Random 1%
    assert ("CCI (default) 1%", "Random, same budget", "2", "0", "0") in cells
    # against Random 10%: accuracy within the noise (tie), loss 0.10 higher (a loss, lower is better)
    assert ("CCI (default) 1%", "Random, 10x the budget", "0", "1", "1") in cells
    # Top-I: accuracy within its own sd (tie), loss 0.05 higher (a loss)
    assert ("Top-I (default) 1%", "Random, same budget", "0", "1", "1") in cells


def test_row_labels_and_sizes():
    rc = _module()
    assert rc.row_label("ft-cci-1%") == "CCI (default) 1%"
    assert rc.row_label("noft-topk-10%") == "Top-I (default w/o ft) 10%"
    assert rc.row_label("compat-cci-1%") == "CCI (paper-compat) 1%"
    assert rc.row_label("random-1%") == "Random 1%"
    assert rc.row_label("random3-1%") == "Random 1% (draw 3)"
    assert rc._draw("random2-1%") == 2 and rc._draw("ft-cci-1%") == 1

"""``examples/replicate_antibody.py``: the third replication round runs end to end in ``--quick``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "replicate_antibody.py"


def _run(*args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def test_bad_jobs_is_a_clear_error(tmp_path):
    proc = _run("--quick", "--out", str(tmp_path / "o"), "--jobs", "0")
    assert proc.returncode == 2 and "--jobs" in proc.stderr


def test_gate_only_and_select_only_exclude_each_other(tmp_path):
    proc = _run("--quick", "--out", str(tmp_path / "o"), "--gate-only", "--select-only")
    assert proc.returncode == 2 and "choose one" in proc.stderr


def test_unknown_arm_is_a_clear_error(tmp_path):
    proc = _run("--quick", "--out", str(tmp_path / "o"), "--arms", "random,topi")
    assert proc.returncode == 2 and "topi" in proc.stderr and "cci-draws" in proc.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_quick_round_end_to_end(tmp_path):
    for pkg in ("olga", "anarci", "antiberty", "esm"):
        pytest.importorskip(pkg)
    out = tmp_path / "run"
    proc = _run("--quick", "--ignore-gate", "--out", str(out), "--jobs", "2")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((out / "results.json").read_text())
    gate = result["gate"]
    assert set(gate["downstream"]) == {
        f"{t}:{s}"
        for t in ("antibody-v-family", "antibody-chain", "antibody-species")
        for s in ("test-germline", "test-simulated")
    } | {"antibody-j-gene:test-simulated", "antibody-cdr3-length:test-simulated"}
    assert gate["downstream_needed"] == 5
    # the gate compares every pretraining seed of Random 100% with as many untrained networks
    assert all(row["n"] == [2, 2] for row in gate["downstream"].values())
    assert gate["summary"]["letter_frequency_loss"] > 0
    arms = {r["arm"] for r in result["summary"]}
    for method in ("random", "topk", "cci", "cci-draws", "topk-len", "cci-len", "weak-cci"):
        for budget in ("10pct", "5pct"):
            assert f"{method}-{budget}" in arms
    assert {"random-100", "untrained"} <= arms
    # every arm has its pretraining seeds, and equal compute (steps x batch)
    runs = result["pretrain_runs"]
    assert len(runs) == (7 * 2 + 1) * 2
    assert len({(r["steps"], r["config"]["batch_size"]) for r in runs.values()}) == 1
    cov = result["coverage"]
    assert cov["cci-10pct"]["size"] == 8 and 0 < cov["cci-10pct"]["genes"] <= cov["corpus"]["genes"]
    assert result["scoring"]["antiberty-draws"]["mask_draws"] == 2
    assert result["times"]["total"] > 0


@pytest.mark.slow
def test_arms_subset_runs_only_those_arms_and_their_scores(tmp_path):
    for pkg in ("olga", "anarci", "esm"):
        pytest.importorskip(pkg)
    out = tmp_path / "run"
    proc = _run("--quick", "--ignore-gate", "--out", str(out), "--arms", "random", "--jobs", "2")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((out / "results.json").read_text())
    assert result["arms"] == ["random"] and result["scoring"] == {}  # Random needs no scores
    assert {r["arm"] for r in result["summary"]} == {
        "random-10pct",
        "random-5pct",
        "random-100",
        "untrained",
    }
    assert not list((out / "scores").glob("*.parquet"))
    # --select-only on the same folder: scores and selects the weak-scorer arm, trains nothing more
    models = sorted(p.name for p in (out / "models").iterdir())
    proc = _run("--quick", "--out", str(out), "--arms", "random,weak-cci", "--select-only")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((out / "results.json").read_text())
    assert result["stopped"] == "--select-only" and set(result["scoring"]) == {"weak"}
    assert {"weak-cci-10pct", "weak-cci-5pct", "random-10pct-draw0"} <= set(result["coverage"])
    assert sorted(p.name for p in (out / "models").iterdir()) == models

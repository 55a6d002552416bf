"""``examples/replicate_antibody.py``: the third replication round runs end to end in ``--quick``."""

from __future__ import annotations

import json
import os
import shutil
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
    assert proc.returncode == 2 and "--select-only" in proc.stderr and "--gate-only" in proc.stderr


def test_unknown_arm_is_a_clear_error(tmp_path):
    proc = _run("--quick", "--out", str(tmp_path / "o"), "--arms", "random,topi")
    assert proc.returncode == 2 and "topi" in proc.stderr and "cci-draws" in proc.stderr
    assert not (tmp_path / "o").exists()


def _arms() -> list[str]:
    """Every arm; without MMseqs2 the Cluster arms are left out (the driver refuses them)."""
    arms = ["random", "topk", "cci", "cluster", "cci-draws", "topk-len", "cci-len", "weak-cci"]
    arms.append("cluster-inf")
    if shutil.which("mmseqs") is None:
        arms = [a for a in arms if not a.startswith("cluster")]
    return arms


@pytest.mark.slow
def test_quick_round_end_to_end(tmp_path):
    for pkg in ("olga", "anarci", "antiberty", "esm"):
        pytest.importorskip(pkg)
    out = tmp_path / "run"
    arms = _arms()
    proc = _run(
        "--quick", "--ignore-gate", "--out", str(out), "--jobs", "2", "--arms", ",".join(arms)
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((out / "results.json").read_text())
    gate = result["gate"]
    assert set(gate["downstream"]) == {
        f"{t}:{s}"
        for t in ("antibody-v-family", "antibody-chain", "antibody-species")
        for s in ("test-germline", "test-simulated")
    } | {"antibody-j-gene:test-simulated", "antibody-cdr3-length:test-simulated"}
    assert gate["decision"]["rows"] == [
        "antibody-j-gene:test-simulated",
        "antibody-v-family:test-simulated",
    ]
    assert gate["majority_rule"]["needed"] == 5
    # the gate compares every pretraining seed of Random 100% with as many untrained networks
    assert all(row["n"] == [2, 2] for row in gate["downstream"].values())
    assert gate["summary"]["letter_frequency_loss"] > 0
    # the headroom check fixed the primary budget; the exploratory arms ran there only
    primary = result["headroom"]["primary_budget"]
    assert primary in (0.10, 0.05) and result["primary_budget"] == primary
    budgets = {0.10: "10pct", 0.05: "5pct"}
    got = {r["arm"] for r in result["summary"]}
    expected = {"random-100", "untrained"}
    for frac, b in budgets.items():
        for arm in arms:
            if arm in ("random", "topk", "cci", "cluster") or frac == primary:
                expected.add(f"{arm}-{b}")
    assert got == expected
    # every arm has its pretraining seeds, and equal compute (steps x batch)
    runs = result["pretrain_runs"]
    assert len(runs) == (len(expected) - 1) * 2
    assert len({(r["steps"], r["config"]["batch_size"]) for r in runs.values()}) == 1
    # Primary 1 over the fixed mask seeds is in every model's rows
    assert all(
        any(r["metric"] == "loss_simulated" for r in result["rows"] if r["arm"] == a) for a in got
    )
    comp = result["comparisons"]["primary"]
    assert set(comp) == {
        f"{a}-{b} vs {ref}-{b}"
        for b in budgets.values()
        for a, ref in (("cci", "random"), ("topk", "random"), ("cci", "cluster"))
    }
    if "cluster" in arms:
        one = comp["cci-10pct vs cluster-10pct"]
        assert one["verdict"] in ("beats", "worse", "mixed", "no difference")
        assert {"gap", "two_pooled_sd", "welch_t", "ci_low", "ci_high"} <= set(one["Primary 1"])
        assert result["clusters"]["clusters"] >= 1
    extras = result["arm_extras"]["cci-10pct"]
    assert extras["size"] == [8, 8] and len(extras["final_train_loss"]) == 2
    assert 0.0 <= extras["jaccard_between_seeds"] <= 1.0
    assert all(0.0 <= f <= 1.0 for f in extras["heavy_fraction"]) and extras["mean_length"][0] > 0
    cov = result["coverage"]
    assert cov["cci-10pct-s0"]["size"] == 8
    assert 0 < cov["cci-10pct-s0"]["genes"] <= cov["corpus"]["genes"]
    assert cov["random_draws"]["10pct"]["draws"] == 4
    scoring = result["scoring"]["antiberty"]
    assert scoring["mask_draws"] == 2 and scoring["keep_draws"] is True
    assert (out / "primaries.png").stat().st_size > 0
    report = (out / "results.md").read_text()
    assert "| cci-10pct vs random-10pct | Primary 1 |" in report and "## V-gene coverage" in report
    steps = (out / "logs" / "steps.jsonl").read_text().splitlines()
    assert any('"job": "pretrain"' in line and '"load_start"' in line for line in steps)
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
    primary = {0.10: "10pct", 0.05: "5pct"}[result["headroom"]["primary_budget"]]
    assert {f"weak-cci-{primary}-s0", f"weak-cci-{primary}-s1", "random-10pct-s0"} <= set(
        result["coverage"]
    )
    assert sorted(p.name for p in (out / "models").iterdir()) == models


def _driver():
    import importlib.util

    spec = importlib.util.spec_from_file_location("replicate_antibody", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_report_tables_carry_every_comparison_and_the_verdict():
    """The Markdown report renders what ``comparisons`` computed: a clear gain of CCI over Random
    on Primary 1 reads "beats", and every arm gets a row with its extras."""
    drv = _driver()
    rows = []
    loss = {"random-1pct": (1.30, 1.31, 1.29), "cci-1pct": (1.20, 1.21, 1.19)}
    for arm in ("random-1pct", "cci-1pct", "topk-1pct", "cluster-1pct"):
        for s in range(3):
            l1 = loss.get(arm, (1.30, 1.32, 1.28))[s]
            rows.append(
                dict(arm=arm, task=drv.MLM, metric="loss_simulated", pretrain_seed=s, value=l1)
            )
            j = 0.77 + 0.001 * s
            task = "antibody-j-gene:test-simulated"
            rows.append(dict(arm=arm, task=task, metric="acc", pretrain_seed=s, value=j))
    comp = drv.comparisons(rows, (0.01,), 0.01)
    assert comp["primary"]["cci-1pct vs random-1pct"]["verdict"] == "beats"
    assert comp["primary"]["topk-1pct vs random-1pct"]["verdict"] == "no difference"
    result = {
        "comparisons": comp,
        "summary": drv.summarise(rows),
        "arm_extras": {
            "cci-1pct": {
                "final_train_loss": [1.0, 1.1, 1.2],
                "jaccard_between_seeds": 0.25,
                "distinct_sequences": [190, 191, 192],
                "heavy_fraction": [0.2, 0.3, 0.4],
            }
        },
        "coverage": {
            "corpus": {"genes": 10, "common": 3, "medium": 3, "rare": 4},
            "random_draws": {
                "1pct": {k: {"mean": 5.0, "sd": 1.0} for k in ("genes", "common", "medium", "rare")}
                | {"draws": 20}
            },
            "cci-1pct-s0": {"size": 200, "genes": 8, "common": 3, "medium": 3, "rare": 2},
            "cci-1pct-s1": {"size": 200, "genes": 6, "common": 3, "medium": 2, "rare": 1},
        },
    }
    md = drv.report_markdown(result)
    line = next(x for x in md.splitlines() if x.startswith("| cci-1pct vs random-1pct | Primary 1"))
    assert (
        "1.2000 ± 0.0100" in line and "1.3000 ± 0.0100" in line and line.endswith("| yes | beats |")
    )
    assert "| cci-1pct vs cluster-1pct | Primary 2 |" in md
    arm_line = next(x for x in md.splitlines() if x.startswith("| cci-1pct | 1.2000"))
    assert "190, 191, 192 | 30% | 0.250" in arm_line
    assert "| cci-1pct | 7.0 | 3.0 | 2.5 | 1.5 |" in md
    assert "| 20 random draws, 1pct | 5.0 ± 1.0 |" in md
    assert "| arm | chain (germline) | chain (simulated) | species (germline)" in md
    # arms that did not run read "not run", never a number
    assert "| cci-1pct vs random-1pct | Primary 1" in md and "not run" in md

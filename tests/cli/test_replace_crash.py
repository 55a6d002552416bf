"""Issue 27: every folder a command replaces is all-old or all-new when the replacement is cut at
any of its steps (an injected failure stands in for a kill); the next run cleans up."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch

from biocoreset.cli import main
from biocoreset.data.synthetic import synthetic_rna_corpus, write_fasta
from biocoreset.selection.folder import _composition_lines
from biocoreset.store import owned
from biocoreset.testing import tiny_esm

STEPS = [("replace", 1), ("replace", 2), ("rmtree", 1)]  # aside, stage in place, delete aside


class _Kill(Exception):
    pass


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("crash")
    model, tok = tiny_esm(seed=0, dtype=torch.float32, max_positions=130)
    model.save_pretrained(root / "model")
    tok.save_pretrained(root / "model")
    write_fasta(synthetic_rna_corpus(12, seed=1), root / "corpus.fa")
    scores = root / "s.parquet"
    argv = ["score", root / "corpus.fa", "--model", root / "model", "-o", scores, "--subset", 4,
            "--no-progress"]  # fmt: skip
    assert main([str(a) for a in argv]) == 0
    argv[5], argv[7] = root / "s2.parquet", 6  # a second score file, for a different report
    assert main([str(a) for a in argv]) == 0
    return root


def _snapshot(folder):
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.suffix != ".png"  # PNGs carry no result and may differ run to run
    }


def _crash_then_check(monkeypatch, out, first, second, step):
    """Run ``first``; run ``second`` cut at ``step`` of the folder replacement; the folder must be
    entirely ``first``'s result or entirely ``second``'s; a rerun of ``second`` finishes cleanly."""
    assert main([str(a) for a in first]) == 0
    old = _snapshot(out)
    name, n = step
    real = {"replace": os.replace, "rmtree": shutil.rmtree}[name]
    calls = {"n": 0}

    def cut(*args, **kwargs):
        base = os.path.basename(str(args[0]))
        ours = (
            base.endswith(".old")
            if name == "rmtree"
            else (str(args[0]) == str(out) or base.startswith(f".{out.name}."))
        )
        if ours:
            calls["n"] += 1
            if calls["n"] == n:
                raise _Kill(f"killed at {name} #{n}")
        return real(*args, **kwargs)

    monkeypatch.setattr(owned.os if name == "replace" else owned.shutil, name, cut)
    with pytest.raises(_Kill):
        main([str(a) for a in second])
    monkeypatch.undo()
    now = _snapshot(out)
    assert main([str(a) for a in second]) == 0  # the rerun recovers and finishes
    new = _snapshot(out)
    assert set(new) == set(old) and new != old
    if name == "replace":  # cut before or at the swap: the old folder, byte for byte
        assert now == old
    else:  # cut after the swap: the new folder, with no old file left in it
        assert set(now) == set(new)
        assert all(now[f] != old[f] or new[f] == old[f] for f in now)
    leftovers = [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]
    assert leftovers == []


@pytest.mark.parametrize("step", STEPS)
def test_select_folder(ws, tmp_path, monkeypatch, step):
    out = tmp_path / "sel"
    base = ["select", ws / "s.parquet", "-o", out, "--budget"]
    _crash_then_check(monkeypatch, out, [*base, 3], [*base, 5, "--force"], step)


@pytest.mark.parametrize("step", STEPS)
def test_diagnose_folder(ws, tmp_path, monkeypatch, step):
    out = tmp_path / "rep"
    second = ["diagnose", ws / "s2.parquet", "-o", out, "--force"]
    _crash_then_check(monkeypatch, out, ["diagnose", ws / "s.parquet", "-o", out], second, step)


@pytest.mark.slow
@pytest.mark.parametrize("step", STEPS)
def test_finetune_model_folder(ws, tmp_path, monkeypatch, step):
    out = tmp_path / "ft"
    base = ["finetune", ws / "corpus.fa", "--model", ws / "model", "--max-steps", 1, "--subset", 4,
            "--diagnostic-samples", 2, "--no-progress", "-o", out]  # fmt: skip
    _crash_then_check(monkeypatch, out, base, [*base, "--seed", 5, "--force"], step)


@pytest.mark.slow
@pytest.mark.parametrize("step", STEPS)
def test_pretrain_final_folder(ws, tmp_path, monkeypatch, step):
    base = ["pretrain", ws / "corpus.fa", "--model", ws / "model", "--max-steps", 1,
            "--warmup-steps", 0, "--batch-size", 4, "--no-progress", "-o", tmp_path / "run"]  # fmt: skip
    out = tmp_path / "run" / "final"
    assert main([str(a) for a in base]) == 0
    old = _snapshot(out)
    name, n = step
    real = {"replace": os.replace, "rmtree": shutil.rmtree}[name]
    calls = {"n": 0}

    def cut(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            raise _Kill(name)
        return real(*args, **kwargs)

    monkeypatch.setattr(owned.os if name == "replace" else owned.shutil, name, cut)
    with pytest.raises(_Kill):
        main([str(a) for a in [*base, "--seed", 7, "--no-resume", "--force"]])
    monkeypatch.undo()
    if out.exists():
        now = _snapshot(out)
        assert now == old or set(now) == set(old)  # whole: the old model or a complete new one
    assert main([str(a) for a in [*base, "--seed", 7, "--force"]]) == 0
    assert set(_snapshot(out)) == set(old)
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".final.")]


def test_all_truncated_lengths_print_no_nan():
    lines = _composition_lines(np.arange(10.0), np.full(10, 5), np.arange(3), False, 0)
    assert "nan" not in lines[1] and "every scored length is 5" in lines[1]

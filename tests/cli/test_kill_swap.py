"""Issue 31: real kills. A command run in a child process kills itself (SIGKILL, no cleanup) at a
chosen step of its output's replacement (the private hook ``_BIOCORESET_KILL_AT``, see
``biocoreset/store/_killpoint.py``) or pauses there (``_BIOCORESET_PAUSE_AT``, SIGSTOP) while a
second writer runs; a full disk is a 2 MB tmpfs. After each: no user file is lost, the output is
all-old or all-new, a plain rerun recovers first, and a reader is told what happened."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import biocoreset
from biocoreset.cli import main
from biocoreset.data.synthetic import synthetic_rna_corpus, write_fasta
from biocoreset.store.owned import missing_output_note
from biocoreset.testing import tiny_esm

_CHILD = "import sys; from biocoreset.cli import main; sys.exit(main(sys.argv[1:]))"


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("kill")
    model, tok = tiny_esm(seed=0, dtype=torch.float32, max_positions=130)
    model.save_pretrained(root / "model")
    tok.save_pretrained(root / "model")
    write_fasta(synthetic_rna_corpus(12, seed=1), root / "corpus.fa")
    for name, subset in (("s.parquet", 4), ("s2.parquet", 6)):
        argv = ["score", root / "corpus.fa", "--model", root / "model", "-o", root / name,
                "--subset", subset, "--no-progress"]  # fmt: skip
        assert _main(argv) == 0
    return root


def _main(argv) -> int:
    return main([str(a) for a in argv])


def _child(argv, *, kill_at=None, pause_at=None, wait=True):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    src = str(Path(biocoreset.__file__).parents[1])
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
    if kill_at:
        env["_BIOCORESET_KILL_AT"] = kill_at
    if pause_at:
        env["_BIOCORESET_PAUSE_AT"] = pause_at
    cmd = [sys.executable, "-c", _CHILD, *map(str, argv)]
    if not wait:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def _snapshot(folder: Path) -> dict[str, bytes]:
    if not folder.is_dir():
        return {}
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.suffix != ".png"  # PNGs carry no result
    }


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}."))


def _one_line_error(capsys, command: str) -> str:
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln and ": warning: " not in ln]
    assert len(err) == 1 and err[0].startswith(f"biocoreset {command}: error: "), err
    return err[0]


def _kill_then_recover(capsys, out: Path, first, second, point: str, command: str):
    """``first`` writes ``out`` (+ a user's file); ``second --force`` is killed at ``point``;
    then a plain rerun (no --force) must recover first and refuse; ``second --force`` finishes."""
    assert _main(first) == 0
    (out / "user.txt").write_text("mine")
    old = _snapshot(out)
    got = _child([*second, "--force"], kill_at=f"{point}:{out.name}")
    assert got.returncode == -signal.SIGKILL, got.stderr
    after = _snapshot(out)
    if point == "staged":  # the new result is complete, nothing swapped yet
        assert after == old
    elif point == "step1":  # the old folder is aside, the new one not yet in place
        assert not out.exists() and "interrupted" in missing_output_note(out)
    else:  # the new folder is in place (step2: the user's file still in the aside)
        assert "user.txt" in after or point == "step2"
    capsys.readouterr()
    assert _main(first) != 0  # no --force: recovery comes first, then "already holds"
    assert "already" in _one_line_error(capsys, command)
    now = _snapshot(out)
    assert now["user.txt"] == b"mine"  # the user's file is never lost
    if point in ("staged", "step1"):
        assert now == old  # all-old
    assert _leftovers(out) == []
    assert _main([*second, "--force"]) == 0
    new = _snapshot(out)
    assert new["user.txt"] == b"mine" and new != old
    if point not in ("staged", "step1"):
        assert now == new  # the killed run had swapped in a complete new result: all-new
    assert _leftovers(out) == []


POINTS = ["staged", "step1", "step2", "step3"]


@pytest.mark.slow
@pytest.mark.parametrize("point", POINTS)
def test_select_killed_at_each_step(ws, tmp_path, capsys, point):
    out = tmp_path / "sel"
    base = ["select", ws / "s.parquet", "-o", out, "--no-progress", "--budget"]
    _kill_then_recover(capsys, out, [*base, 3], [*base, 5], point, "select")


@pytest.mark.slow
@pytest.mark.parametrize("point", ["step1", "step3"])
def test_diagnose_killed_at_each_step(ws, tmp_path, capsys, point):
    out = tmp_path / "rep"
    first = ["diagnose", ws / "s.parquet", "-o", out, "--no-progress"]
    second = ["diagnose", ws / "s2.parquet", "-o", out, "--no-progress"]
    _kill_then_recover(capsys, out, first, second, point, "diagnose")


@pytest.mark.slow
@pytest.mark.parametrize("point", ["step1", "step2"])
def test_finetune_killed_between_rename_steps(ws, tmp_path, capsys, point):
    out = tmp_path / "ft"
    base = ["finetune", ws / "corpus.fa", "--model", ws / "model", "--max-steps", 1, "--subset", 4,
            "--diagnostic-samples", 2, "--no-progress", "-o", out]  # fmt: skip
    assert _main(base) == 0
    (out / "notes.txt").write_text("mine")
    old = _snapshot(out)
    got = _child([*base, "--seed", 5, "--force"], kill_at=f"{point}:ft")
    assert got.returncode == -signal.SIGKILL, got.stderr
    capsys.readouterr()
    if point == "step1":  # a reader in between is told what happened, not "not found"
        score = ["score", ws / "corpus.fa", "--model", out, "-o", tmp_path / "x.parquet"]
        assert _main([*score, "--no-progress"]) != 0
        line = _one_line_error(capsys, "score")
        assert "interrupted" in line and ".ft." in line
    assert _main(base) != 0  # recovery first, then "already exists"
    assert "already exists" in _one_line_error(capsys, "finetune")
    now = _snapshot(out)
    assert now["notes.txt"] == b"mine"  # the user's file, never deleted by the recovery
    if point == "step1":
        assert now == old
    assert _main([*base, "--seed", 5, "--force"]) == 0
    assert _snapshot(out)["notes.txt"] == b"mine" and _leftovers(out) == []


@pytest.mark.slow
@pytest.mark.parametrize("point", ["rename:shard-00000000.parquet", "rename:s.parquet"])
def test_score_force_killed_keeps_the_old_file(ws, tmp_path, point):
    out = tmp_path / "s.parquet"
    shutil.copyfile(ws / "s.parquet", out)
    old = out.read_bytes()
    argv = ["score", ws / "corpus.fa", "--model", ws / "model", "-o", out, "--subset", 6,
            "--shard-size", 4, "--batch-size", 2, "--no-progress", "--force"]  # fmt: skip
    got = _child(argv, kill_at=point)
    assert got.returncode == -signal.SIGKILL, got.stderr
    assert out.read_bytes() == old  # yesterday's result survives today's killed run
    assert _main(argv) == 0  # the rerun resumes the same work and replaces the file
    assert out.read_bytes() != old and not (tmp_path / "s.parquet.parts").exists()


def _wait_stopped(proc: subprocess.Popen, timeout: float = 300.0) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        assert proc.poll() is None, proc.communicate()
        with open(f"/proc/{proc.pid}/stat") as fh:
            if fh.read().rsplit(")", 1)[1].split()[0] == "T":
                return
        time.sleep(0.1)
    raise AssertionError("the child never reached its pause point")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to see a pause")
@pytest.mark.parametrize("point", ["staged", "step1"])
def test_two_writers_the_second_is_refused(ws, tmp_path, capsys, point):
    out = tmp_path / "sel"
    base = ["select", ws / "s.parquet", "-o", out, "--no-progress", "--force", "--budget"]
    assert _main([*base, 3]) == 0
    (out / "user.txt").write_text("mine")
    first = _child([*base, 5], pause_at=f"{point}:sel", wait=False)
    try:
        _wait_stopped(first)
        capsys.readouterr()
        assert _main([*base, 4]) != 0
        line = _one_line_error(capsys, "select")
        assert f"being written by another process (pid {first.pid}" in line
        if point == "step1":
            assert "being replaced by process" in missing_output_note(out)
    finally:
        first.send_signal(signal.SIGCONT)
        _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    ids = (out / "coreset_ids.txt").read_text().split()
    assert len(ids) == 5 and (out / "user.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sel"]  # no aside, stage or lock


@contextlib.contextmanager
def _tmpfs(path: Path, size: str = "2m"):
    path.mkdir()
    got = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    if got.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {got.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)


def _fill(disk: Path) -> None:
    """Fill the file system; the last few bytes too."""
    with open(disk / "filler", "wb", buffering=0) as fh:
        for size in (65536, 4096, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    fh.write(b"\0" * size)


@pytest.mark.slow
@pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.geteuid() != 0, reason="mounting a tmpfs needs root"
)
def test_a_full_disk_loses_nothing(ws, tmp_path, capsys):
    with _tmpfs(tmp_path / "disk") as disk:
        scores, sel = disk / "s.parquet", disk / "sel"
        shutil.copyfile(ws / "s.parquet", scores)
        assert _main(["select", scores, "-o", sel, "--budget", 3, "--no-progress"]) == 0
        (sel / "user.txt").write_text("mine")
        old_scores, old_sel = scores.read_bytes(), _snapshot(sel)
        _fill(disk)
        capsys.readouterr()
        score = ["score", ws / "corpus.fa", "--model", ws / "model", "-o", scores, "--subset", 6,
                 "--no-progress", "--force"]  # fmt: skip
        assert _main(score) != 0
        _one_line_error(capsys, "score")
        assert scores.read_bytes() == old_scores
        select = ["select", ws / "s2.parquet", "-o", sel, "--budget", 5, "--no-progress", "--force"]
        assert _main(select) != 0
        _one_line_error(capsys, "select")
        assert _snapshot(sel) == old_sel
        assert _leftovers(sel) == []
        (disk / "filler").unlink()  # room again: the same commands finish
        assert _main(score) == 0 and scores.read_bytes() != old_scores
        assert _main(select) == 0
        assert (sel / "user.txt").read_text() == "mine" and _leftovers(sel) == []

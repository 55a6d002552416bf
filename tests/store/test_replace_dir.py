"""Issue 27: folder replacement is all-old or all-new, whatever step a crash interrupts, and the
next run cleans only its own leftovers."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from biocoreset.errors import OutputPathError
from biocoreset.store import owned
from biocoreset.store.atomic import check_not_input
from biocoreset.store.owned import recover_dir, replace_dir, staged_folder

OLD = {"a.txt": b"old a", "b.txt": b"old b", "stale.txt": b"only old"}
NEW = {"a.txt": b"new a", "b.txt": b"new b"}


def _make(folder: Path, files: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def _content(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()} if folder.is_dir() else {}


class _Crash(Exception):
    pass


def _fail_at(monkeypatch, name: str, n: int) -> None:
    """Make the ``n``-th call (1-based) of ``owned.os.replace`` or ``owned.shutil.rmtree`` fail."""
    calls = {"n": 0}
    real = {"replace": os.replace, "rmtree": shutil.rmtree}[name]

    def broken(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            raise _Crash(f"{name} #{n}")
        return real(*args, **kwargs)

    if name == "replace":
        monkeypatch.setattr(owned.os, "replace", broken)
    else:
        monkeypatch.setattr(owned.shutil, "rmtree", broken)


# every step of replace_dir: 1 dest->aside, 2 stage->dest, 3 carry of the user's file, 4 delete
STEPS = [("replace", 1), ("replace", 2), ("replace", 3), ("rmtree", 1)]


@pytest.mark.parametrize(("name", "n"), STEPS)
def test_crash_at_every_step_leaves_old_or_new(tmp_path, monkeypatch, name, n):
    dest = _make(tmp_path / "out", {**OLD, "user.txt": b"mine"})
    stage = _make(tmp_path / f".out.{os.getpid()}.abcdefgh.tmp", NEW)
    _fail_at(monkeypatch, name, n)
    with pytest.raises(_Crash):
        replace_dir(stage, dest, own={"a.txt", "b.txt", "stale.txt"})
    monkeypatch.undo()
    got = _content(dest)  # right after the crash: the old folder, or the new one
    assert got in ({**OLD, "user.txt": b"mine"}, NEW, {**NEW, "user.txt": b"mine"})
    recover_dir(dest, own={"a.txt", "b.txt", "stale.txt"})  # what the next run does first
    got = _content(dest)
    assert got in ({**OLD, "user.txt": b"mine"}, {**NEW, "user.txt": b"mine"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no aside, no stage left


def test_killed_between_rename_steps_is_recovered(tmp_path):
    """A kill -9 after step 1 leaves only the aside: the next run puts the old folder back."""
    dest = _make(tmp_path / "out", OLD)
    aside = tmp_path / ".out.999999999.old"  # no such process
    os.replace(dest, aside)
    recover_dir(dest)
    assert _content(dest) == OLD and not aside.exists()


def test_success_keeps_user_files_and_drops_stale_own(tmp_path):
    dest = _make(tmp_path / "out", {**OLD, "user.txt": b"mine"})
    with staged_folder(dest, own={"a.txt", "b.txt", "stale.txt"}) as stage:
        for name, data in NEW.items():
            (stage / name).write_bytes(data)
    assert _content(dest) == {**NEW, "user.txt": b"mine"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_failure_inside_the_block_leaves_the_old_folder(tmp_path):
    dest = _make(tmp_path / "out", OLD)
    with pytest.raises(_Crash), staged_folder(dest, own=set(OLD)) as stage:
        (stage / "a.txt").write_bytes(b"half")
        raise _Crash
    assert _content(dest) == OLD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_stale_stages_removed_only_when_ours(tmp_path):
    dest = _make(tmp_path / "out", OLD)
    dead = _make(tmp_path / ".out.999999999.abcdefgh.tmp", {"coreset.fasta": b">a\n"})
    legacy = _make(tmp_path / ".out.k3j_9x0q.tmp", {"coreset.fasta": b""})
    alive = _make(tmp_path / f".out.{os.getppid()}.abcdefgh.tmp", {"x": b""})  # a live process
    others = [
        _make(tmp_path / ".other.999999999.abcdefgh.tmp", {"x": b""}),  # another output's
        _make(tmp_path / ".out.notes.tmp", {"x": b""}),  # not our pattern
        _make(tmp_path / ".out.999999999.old.bak", {"x": b""}),
    ]
    recover_dir(dest)
    assert not dead.exists() and not legacy.exists()
    assert alive.exists() and all(p.exists() for p in others)
    assert _content(dest) == OLD


def test_refuses_the_current_folder(tmp_path, monkeypatch):
    dest = _make(tmp_path / "here", {"thesis.txt": b"precious"})
    stage = _make(tmp_path / ".here.1.abcdefgh.tmp", NEW)
    monkeypatch.chdir(dest)
    with pytest.raises(OutputPathError, match="current folder"):
        replace_dir(stage, Path("."))
    assert _content(dest) == {"thesis.txt": b"precious"}


def test_check_not_input(tmp_path):
    corpus = tmp_path / "inp" / "c.fa"
    with pytest.raises(OutputPathError, match="is the input"):
        check_not_input([corpus], [tmp_path / "inp" / ".." / "inp" / "c.fa"], command="score")
    with pytest.raises(OutputPathError, match="holds the input"):
        check_not_input([corpus], [tmp_path / "inp"], command="select")
    check_not_input([corpus, None], [tmp_path / "out"], command="select")


def test_a_leftover_aside_of_this_process_does_not_cost_the_new_stage(tmp_path):
    dest = _make(tmp_path / "out", OLD)
    _make(tmp_path / f".out.{os.getpid()}.old", {"user.txt": b"mine"})  # an earlier failure's
    stage = _make(tmp_path / f".out.{os.getpid()}.abcdefgh.tmp", NEW)
    replace_dir(stage, dest, own=set(OLD))
    assert _content(dest) == {**NEW, "user.txt": b"mine"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]

"""Issue 31: one owner for a command's output (biocoreset.store.owned): symbolic links written
through, recovery first, the user's files kept by every recovery, one writer at a time, a user's
``<output>.parts`` never deleted, and the old score file kept until the new one is complete."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from biocoreset.errors import ConfigError, OutputExistsError, OutputPathError
from biocoreset.store.owned import OwnedOutput, missing_output_note, recover_dir
from biocoreset.store.result import ScoreResult
from biocoreset.store.shards import ScoreStore
from biocoreset.train.outdir import _library_file

OWN = ("a.txt", "b.txt")


def _make(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def _content(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(folder.iterdir())} if folder.is_dir() else {}


def _write(out: Path, text: str) -> None:
    with OwnedOutput(out, own=OWN, command="t").replace() as stage:
        for name in OWN:
            (stage / name).write_text(text)


def test_a_symlinked_output_is_written_through(tmp_path):
    target = _make(tmp_path / "big" / "sel", {"a.txt": "old", "user.txt": "mine"})
    link = tmp_path / "sel"
    link.symlink_to(target)
    _write(link, "new")
    assert link.is_symlink() and link.resolve() == target.resolve()
    assert _content(target) == {"a.txt": "new", "b.txt": "new", "user.txt": "mine"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big", "sel"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["sel"]


def test_a_dangling_link_is_refused_in_one_line(tmp_path):
    link = tmp_path / "sel"
    link.symlink_to(tmp_path / "nowhere")
    with pytest.raises(OutputPathError, match=r"symbolic link to .*nowhere.*does not exist"):
        _write(link, "new")
    assert link.is_symlink() and not (tmp_path / "nowhere").exists()


def test_a_leftover_link_aside_is_put_back_when_the_output_is_missing(tmp_path):
    """An earlier version, killed after moving the link aside: the link returns."""
    target = _make(tmp_path / "t", {"a.txt": "old", "user.txt": "mine"})
    aside = tmp_path / ".sel.999999999.old"
    aside.symlink_to(target)
    OwnedOutput(tmp_path / "sel", own=OWN, command="t").recover()
    assert (tmp_path / "sel").is_symlink() and not aside.is_symlink()
    assert _content(target) == {"a.txt": "old", "user.txt": "mine"}


def test_a_leftover_link_aside_after_the_old_bug_is_undone(tmp_path):
    """An earlier version moved the link aside, put a real folder in its place and moved the
    user's files out of the link's target into it; the next run puts everything back."""
    target = _make(tmp_path / "t", {"a.txt": "old", "b.txt": "old"})
    (tmp_path / ".sel.999999999.old").symlink_to(target)
    _make(tmp_path / "sel", {"a.txt": "new", "user.txt": "mine"})  # b.txt: the new one lacks it
    _write(tmp_path / "sel", "newer")
    assert (tmp_path / "sel").is_symlink()
    assert _content(target) == {"a.txt": "newer", "b.txt": "newer", "user.txt": "mine"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sel", "t"]


def test_recovery_keeps_the_users_files_of_a_model_folder(tmp_path):
    """finetune killed between steps 2 and 3: the recovery (with the model folder's own names)
    hands the user's file back instead of deleting it."""
    _make(tmp_path / "ft", {"model.pt": "new", "finetune.json": "new"})
    _make(tmp_path / ".ft.999999999.old", {"model.pt": "old", "notes.txt": "mine"})
    OwnedOutput(tmp_path / "ft", own=_library_file, command="finetune").recover()
    assert _content(tmp_path / "ft") == {
        "finetune.json": "new",
        "model.pt": "new",
        "notes.txt": "mine",
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ft"]


def test_recovery_comes_before_the_exists_check(tmp_path):
    """Killed between steps 1 and 2: the output is missing; a plain rerun (no --force) must find
    the old output back and refuse, not write over it."""
    _make(tmp_path / ".sel.999999999.old", {"a.txt": "old", "user.txt": "mine"})
    owned = OwnedOutput(tmp_path / "sel", own=OWN, command="t")
    with pytest.raises(OutputExistsError, match=r"already holds a\.txt; pass force=True"):
        owned.check(force=False)
    assert _content(tmp_path / "sel") == {"a.txt": "old", "user.txt": "mine"}


def test_a_reader_is_told_what_happened(tmp_path):
    aside = _make(tmp_path / ".ft.999999999.old", {"model.pt": "old"})
    note = missing_output_note(tmp_path / "ft")
    assert "interrupted" in note and str(aside) in note
    from biocoreset.errors import InputError
    from biocoreset.modelio.manifest import model_folder

    with pytest.raises(InputError, match="does not exist \\(a replacement of it was interrupted"):
        model_folder(tmp_path / "ft")
    assert missing_output_note(tmp_path / "other") == ""


def _hold_lock(path: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    path.write_text(json.dumps({"pid": proc.pid, "host": socket.gethostname()}))
    return proc


def test_a_second_writer_is_refused_in_one_line(tmp_path):
    _make(tmp_path / "sel", {"a.txt": "old", "user.txt": "mine"})
    proc = _hold_lock(tmp_path / ".sel.lock")
    try:
        with pytest.raises(
            ConfigError, match=f"being written by another process \\(pid {proc.pid}"
        ):
            _write(tmp_path / "sel", "new")
        with pytest.raises(ConfigError, match="being written by another process"):
            OwnedOutput(tmp_path / "sel", own=OWN, command="t").check(force=True)
    finally:
        proc.kill()
        proc.wait()
    assert _content(tmp_path / "sel") == {"a.txt": "old", "user.txt": "mine"}
    _write(tmp_path / "sel", "new")  # the holder is gone: its stale lock is removed
    assert _content(tmp_path / "sel") == {"a.txt": "new", "b.txt": "new", "user.txt": "mine"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sel"]


def test_an_aside_of_a_live_writer_is_left_alone(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        aside = _make(tmp_path / f".sel.{proc.pid}.old", {"a.txt": "old"})
        recover_dir(tmp_path / "sel", own=OWN)
        assert aside.is_dir() and not (tmp_path / "sel").exists()
        assert "being replaced by process" in missing_output_note(tmp_path / "sel")
    finally:
        proc.kill()
        proc.wait()


# -- score files ------------------------------------------------------------------------------


def _score_file(path: Path) -> bytes:
    ScoreResult(ids=["a"], scores=[1.0], loss=[0.0], length=[1]).save(path, force=True)
    return path.read_bytes()


def test_force_keeps_the_old_score_file_until_the_merge(tmp_path):
    out = tmp_path / "s.parquet"
    old = _score_file(out)
    store = ScoreStore(out)
    store.prepare({"n": 1}, num_rows=1, shard_size=1, force=True)
    assert out.read_bytes() == old  # scoring starts: yesterday's result is still there
    from biocoreset.store.shards import ShardRecord

    store.write_shard(ShardRecord.of(0, rows=[0], ids=["b"], scores=[2.0], loss=[0.5], length=[4]))
    assert out.read_bytes() == old
    store.merge({"seed": 0}, force=True)
    assert out.read_bytes() != old and not store.parts.exists()


@pytest.mark.parametrize("kind", ["user_folder", "file", "symlink"])
def test_force_never_deletes_a_users_parts(tmp_path, kind):
    out = tmp_path / "s.parquet"
    old = _score_file(out)
    parts = tmp_path / "s.parquet.parts"
    if kind == "user_folder":
        _make(parts, {"thesis.txt": "precious"})
    elif kind == "file":
        parts.write_text("precious")
    else:
        parts.symlink_to(_make(tmp_path / "elsewhere", {"thesis.txt": "precious"}))
    with pytest.raises(ConfigError, match="not a biocoreset work folder"):
        ScoreStore(out).prepare({"n": 1}, num_rows=1, shard_size=1, force=True)
    with pytest.raises(ConfigError, match="not a biocoreset work folder"):
        ScoreStore(out).check_output(force=True)
    assert out.read_bytes() == old
    assert "precious" in (
        parts.read_text() if kind == "file" else (parts / "thesis.txt").read_text()
    )


def test_force_resumes_an_unfinished_run_of_the_same_fingerprint(tmp_path):
    from biocoreset.store.shards import ShardRecord

    out = tmp_path / "s.parquet"
    _score_file(out)
    store = ScoreStore(out)
    assert store.prepare({"n": 2}, num_rows=2, shard_size=1, force=True) is False
    store.write_shard(ShardRecord.of(0, rows=[0], ids=["b"], scores=[2.0], loss=[0.5], length=[4]))
    store.release_lock()  # as a killed run leaves it: a stale lock is taken over
    again = ScoreStore(out)
    assert again.prepare({"n": 2}, num_rows=2, shard_size=1, force=True) is True
    assert again.completed_shards() == {0}
    other = ScoreStore(out)  # another configuration: its unfinished work is discarded
    other.release_lock()
    again.release_lock()
    assert other.prepare({"n": 3}, num_rows=2, shard_size=1, force=True) is False


def test_a_symlinked_score_file_is_written_through(tmp_path):
    real = tmp_path / "disk" / "s.parquet"
    real.parent.mkdir()
    _score_file(real)
    link = tmp_path / "s.parquet"
    link.symlink_to(real)
    ScoreResult(ids=["z"], scores=[3.0], loss=[0.0], length=[1]).save(link, force=True)
    assert link.is_symlink() and link.read_bytes() == real.read_bytes()
    store = ScoreStore(link)
    assert store.output == Path(os.path.realpath(real))
    assert store.parts.parent == store.output.parent

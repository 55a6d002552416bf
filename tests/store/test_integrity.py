"""Shard checksums and the work-folder lock (issue 15)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from biocoreset.errors import BioCoresetWarning, ConfigError, InputError
from biocoreset.store.lock import FolderLock, pid_alive
from biocoreset.store.shards import ScoreStore, ShardRecord


def _store(tmp_path, n=4, size=2):
    store = ScoreStore(tmp_path / "s.parquet")
    assert store.prepare({"n": n}, num_rows=n, shard_size=size, force=False) is False
    for k in range(n // size):
        rows = list(range(k * size, (k + 1) * size))
        store.write_shard(
            ShardRecord.of(
                k,
                rows=rows,
                ids=[f"r{r}" for r in rows],
                scores=[float(r) for r in rows],
                loss=[0.5] * size,
                length=[3] * size,
            )
        )
    return store


def _replace_shard(store, k):
    """A valid shard file with other values in place of shard ``k`` (as a careless user might)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = store.shard_path(k)
    table = pq.read_table(path)
    other = table.set_column(2, "score", pa.array([99.0] * table.num_rows))
    pq.write_table(other, path)


def test_every_finished_shard_has_a_checksum(tmp_path):
    store = _store(tmp_path)
    for k in (0, 1):
        assert store.checksum_path(k).read_text().split()[0] != ""
    store.verify_shards()
    store.release_lock()


def test_a_replaced_shard_stops_the_merge_naming_it(tmp_path):
    store = _store(tmp_path)
    _replace_shard(store, 1)
    with pytest.raises(
        InputError, match=r"shard 1 \(.*shard-00000001.parquet'\) does not match the SHA-256"
    ):
        store.merge({"seed": 0})
    assert not store.output.exists()
    store.release_lock()


def test_a_replaced_shard_stops_the_resume_and_rescoring_it_works(tmp_path):
    store = _store(tmp_path)
    store.release_lock()
    _replace_shard(store, 0)
    again = ScoreStore(tmp_path / "s.parquet")
    with pytest.raises(InputError, match=r"shard 0 .* delete it and rerun the same command"):
        again.prepare({"n": 4}, num_rows=4, shard_size=2, force=False)
    again.release_lock()
    store.shard_path(0).unlink()  # what the message says to do
    again = ScoreStore(tmp_path / "s.parquet")
    assert again.prepare({"n": 4}, num_rows=4, shard_size=2, force=False) is True
    assert again.completed_shards() == {1}
    again.write_shard(
        ShardRecord.of(
            0, rows=[0, 1], ids=["r0", "r1"], scores=[0, 1], loss=[0.5] * 2, length=[3] * 2
        )
    )
    again.merge({"seed": 0})
    assert again.output.exists()


def test_a_shard_without_its_checksum_is_scored_again(tmp_path):
    store = _store(tmp_path)
    store.checksum_path(1).unlink()  # a crash between the shard's rename and its checksum
    assert store.completed_shards() == {0}
    store.release_lock()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert not pid_alive(proc.pid)
    return proc.pid


def test_a_live_lock_refuses_a_second_process(tmp_path):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        store = ScoreStore(tmp_path / "s.parquet")
        store.parts.mkdir()
        store.lock.path.write_text(json.dumps({"pid": other.pid, "host": socket.gethostname()}))
        with pytest.raises(
            ConfigError, match=rf"being written by another process \(pid {other.pid} on"
        ):
            store.prepare({"n": 2}, num_rows=2, shard_size=2, force=True)
        assert store.lock.path.exists()
    finally:
        other.kill()
        other.wait()


def test_a_lock_from_another_host_counts_as_live(tmp_path):
    lock = FolderLock(tmp_path / "lock", owner="'x'")
    lock.path.write_text(json.dumps({"pid": 1, "host": "elsewhere.example"}))
    with pytest.raises(ConfigError, match=r"pid 1 on elsewhere\.example"):
        lock.acquire()


def test_a_stale_lock_is_taken_over_with_a_warning(tmp_path):
    store = ScoreStore(tmp_path / "s.parquet")
    store.parts.mkdir()
    pid = _dead_pid()
    (store.parts / "lock").write_text(json.dumps({"pid": pid, "host": socket.gethostname()}))
    with pytest.warns(BioCoresetWarning, match=rf"stale lock .* pid {pid} .* is gone"):
        store.prepare({"n": 2}, num_rows=2, shard_size=2, force=False)
    held = json.loads((store.parts / "lock").read_text())
    assert held["pid"] != pid
    store.release_lock()
    assert not (store.parts / "lock").exists()


def test_two_processes_scoring_into_one_output(tmp_path):
    """A real second process: it fails with one line while the first holds the lock."""
    store = ScoreStore(tmp_path / "s.parquet")
    assert store.prepare({"n": 2}, num_rows=2, shard_size=2, force=False) is False
    code = (
        "import sys\n"
        "from biocoreset.store.shards import ScoreStore\n"
        "from biocoreset.errors import ConfigError\n"
        f"s = ScoreStore({str(store.output)!r})\n"
        "try:\n"
        "    s.prepare({'n': 2}, num_rows=2, shard_size=2, force=False)\n"
        "except ConfigError as exc:\n"
        "    print(exc); sys.exit(3)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr
    assert f"pid {__import__('os').getpid()}" in proc.stdout
    store.release_lock()

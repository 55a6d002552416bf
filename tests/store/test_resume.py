"""Crash and resume: a scoring process killed with SIGKILL is finished by rerunning the command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from biocoreset import score
from biocoreset.adapters.hf import HFAdapter
from biocoreset.data.synthetic import write_fasta
from biocoreset.errors import ConfigError
from biocoreset.store.shards import ScoreStore
from biocoreset.testing import random_rna, tiny_esm
from floats import assert_equal_to_rounding

WORKER = Path(__file__).with_name("crash_worker.py")


def _env():
    env = dict(os.environ)
    env.update(
        OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1"
    )
    return env


def _run(corpus, output, delay=0.0):
    log = open(Path(output).with_suffix(".log"), "wb")  # noqa: SIM115 - closed by _wait
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), str(corpus), str(output), str(delay)],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    proc.log = log  # type: ignore[attr-defined]
    return proc


def _wait(proc, timeout=300):
    try:
        return proc.wait(timeout=timeout)
    finally:
        proc.log.close()


def _log(proc):
    return Path(proc.log.name).read_text(errors="replace")


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")
def test_kill_9_mid_scoring_then_rerun_gives_identical_scores(tmp_path):
    """Invariant: a run killed mid-scoring and rerun gives the uninterrupted run's ids, scores and
    losses. The two runs are separate processes, so the floats are compared to float64 rounding
    (docs/reliability.md, "Floats across CPUs"); a lost or doubled shard, or a refit D_sub, would
    move them by far more."""
    corpus = write_fasta(random_rna(40, seed=11, min_len=4, max_len=30), tmp_path / "c.fa")
    reference = tmp_path / "ref.parquet"
    proc = _run(corpus, reference)
    assert _wait(proc) == 0, _log(proc)

    output = tmp_path / "s.parquet"
    parts = ScoreStore(output).parts
    proc = _run(corpus, output, delay=0.15)
    deadline = time.time() + 240
    while time.time() < deadline and len(ScoreStore(output).completed_shards()) < 3:
        assert proc.poll() is None, "the child finished before it could be killed: " + _log(proc)
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    _wait(proc, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    done_before = len(ScoreStore(output).completed_shards())  # the killed shard may lack its sum
    assert 3 <= done_before < 10 and not output.exists()

    proc = _run(corpus, output)  # the same command again
    assert _wait(proc) == 0, _log(proc)
    import pyarrow.parquet as pq

    got, ref = pq.read_table(output), pq.read_table(reference)
    ids = got.column("id").to_pylist()
    assert len(ids) == len(set(ids)) == 40
    assert ids == ref.column("id").to_pylist()
    assert_equal_to_rounding(got.column("score").to_numpy(), ref.column("score").to_numpy())
    assert_equal_to_rounding(got.column("loss").to_numpy(), ref.column("loss").to_numpy())
    import json

    meta = json.loads(got.schema.metadata[b"biocoreset"])
    assert meta["resumed_shards"] == done_before
    assert meta["curvature_restored"] is True
    assert not parts.exists()


class _Crash(RuntimeError):
    pass


def _setup():
    model, tok = tiny_esm(seed=4)
    return HFAdapter(model, tok), random_rna(22, seed=3, min_len=3, max_len=25)


def test_interrupted_run_resumes_without_recomputing(tmp_path, monkeypatch):
    """Invariant: a resumed run keeps the finished shards and the saved curvature (nothing is
    scored or fitted again) and its scores are the uninterrupted run's, to float64 rounding: the
    restored curvature and the shards read back meet the kernels at other memory addresses, and
    MKL's last bits can depend on alignment (docs/reliability.md, "Floats across CPUs")."""
    adapter, records = _setup()
    opts = dict(subset=5, batch_size=2, shard_size=4, damping=1e-3)
    reference = score(adapter, records, **opts)
    calls = {"n": 0}
    original = ScoreStore.write_shard

    def crash_after_two(self, record):
        if calls["n"] == 2:
            raise _Crash("simulated crash")
        calls["n"] += 1
        return original(self, record)

    monkeypatch.setattr(ScoreStore, "write_shard", crash_after_two)
    output = tmp_path / "s.parquet"
    with pytest.raises(_Crash):
        score(adapter, records, output=output, **opts)
    monkeypatch.setattr(ScoreStore, "write_shard", original)
    assert not output.exists() and len(list(ScoreStore(output).parts.glob("shard-*"))) == 2

    scored = []
    original_collate = adapter.collate
    monkeypatch.setattr(
        adapter,
        "collate",
        lambda recs, seed: scored.extend(r[0] for r in recs) or original_collate(recs, seed=seed),
    )
    resumed = score(adapter, records, output=output, **opts)
    assert resumed.ids == reference.ids
    assert_equal_to_rounding(resumed.scores, reference.scores)
    assert resumed.metadata["resumed_shards"] == 2 and resumed.metadata["curvature_restored"]
    assert (
        len(scored) == 22 - 8
    )  # the two finished shards (8 rows) were not scored again, nor was D_sub refit


def test_changed_config_refuses_to_resume(tmp_path, monkeypatch):
    adapter, records = _setup()
    output = tmp_path / "s.parquet"

    def crash(self, k, *args, **kwargs):
        raise _Crash("simulated crash")

    monkeypatch.setattr(ScoreStore, "write_shard", crash)
    with pytest.raises(_Crash):
        score(adapter, records, output=output, subset=5, batch_size=2, shard_size=4, damping=1e-3)
    monkeypatch.undo()
    with pytest.raises(ConfigError, match=r"different configuration \(damping: 0.001 -> 0.01\)"):
        score(adapter, records, output=output, subset=5, batch_size=2, shard_size=4, damping=1e-2)
    result = score(
        adapter,
        records,
        output=output,
        subset=5,
        batch_size=2,
        shard_size=4,
        damping=1e-2,
        force=True,
    )
    assert len(result) == 22


def test_changed_data_refuses_to_resume(tmp_path, monkeypatch):
    adapter, records = _setup()
    output = tmp_path / "s.parquet"
    monkeypatch.setattr(
        ScoreStore, "write_shard", lambda self, record: (_ for _ in ()).throw(_Crash())
    )
    with pytest.raises(_Crash):
        score(adapter, records, output=output, subset=5, batch_size=2, shard_size=4)
    monkeypatch.undo()
    changed = [*records[:-1], (records[-1][0], "ACGU")]
    with pytest.raises(ConfigError, match="data:"):
        score(adapter, changed, output=output, subset=5, batch_size=2, shard_size=4)

"""The sharded score store: manifest, resume checks, atomic merge, curvature snapshots."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from biocoreset.curvature.diagonal import DiagonalFisher
from biocoreset.errors import ConfigError, InputError, OutputExistsError
from biocoreset.protocols import LayerFactors, ParamBlock
from biocoreset.store.result import ScoreResult, load_scores
from biocoreset.store.shards import (
    ScoreStore,
    ShardRecord,
    restore_curvature,
    snapshot_curvature,
)
from floats import assert_equal_to_rounding


def _fill(store, shards, size=2, n=5):
    for k in shards:
        rows = list(range(k * size, min((k + 1) * size, n)))
        store.write_shard(
            ShardRecord.of(
                k,
                rows=rows,
                ids=[f"s{r}" for r in rows],
                scores=[float(r) for r in rows],
                loss=[0.5] * len(rows),
                length=[3] * len(rows),
            )
        )


def test_prepare_resume_and_merge(tmp_path):
    store = ScoreStore(tmp_path / "s.parquet")
    assert store.prepare({"a": 1}, num_rows=5, shard_size=2, force=False) is False
    _fill(store, [0, 2])
    again = ScoreStore(tmp_path / "s.parquet")
    assert again.prepare({"a": 1}, num_rows=5, shard_size=2, force=False) is True
    assert again.completed_shards() == {0, 2}
    with pytest.raises(InputError, match=r"shard 1 .* is missing"):
        again.merge({})
    _fill(again, [1])
    path = again.merge({"seed": 3})
    result = load_scores(path)
    assert result.ids == [f"s{r}" for r in range(5)]
    assert result.scores.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert result.metadata == {"seed": 3}
    assert not again.parts.exists()


def test_changed_fingerprint_refuses_to_resume_and_names_the_key(tmp_path):
    store = ScoreStore(tmp_path / "s.parquet")
    store.prepare({"batch_size": 16, "damping": None}, num_rows=5, shard_size=2, force=False)
    with pytest.raises(
        ConfigError, match=r"different configuration \(batch_size: 16 -> 8\).*--force"
    ):
        ScoreStore(tmp_path / "s.parquet").prepare(
            {"batch_size": 8, "damping": None}, num_rows=5, shard_size=2, force=False
        )
    with pytest.raises(ConfigError, match="shard_size: 2 -> 4"):
        ScoreStore(tmp_path / "s.parquet").prepare(
            {"batch_size": 16, "damping": None}, num_rows=5, shard_size=4, force=False
        )
    # force discards the unfinished run
    fresh = ScoreStore(tmp_path / "s.parquet")
    assert fresh.prepare({"batch_size": 8}, num_rows=5, shard_size=2, force=True) is False


def test_existing_output_is_never_overwritten_without_force(tmp_path):
    out = tmp_path / "s.parquet"
    out.write_text("precious")
    with pytest.raises(OutputExistsError, match="already exists; pass force=True"):
        ScoreStore(out).prepare({}, num_rows=1, shard_size=1, force=False)
    assert out.read_text() == "precious"
    # issue 27: force replaces only a score file, never another file
    with pytest.raises(OutputExistsError, match="is not a biocoreset score file"):
        ScoreStore(out).prepare({}, num_rows=1, shard_size=1, force=True)
    assert out.read_text() == "precious"
    result = ScoreResult(ids=["a"], scores=[1.0], loss=[0.0], length=[1])
    with pytest.raises(OutputExistsError, match="is not a biocoreset score file"):
        result.save(out, force=True)  # the Python API keeps the same rule
    assert out.read_text() == "precious"
    out.unlink()
    result.save(out)
    result.save(out, force=True)  # an earlier score file is replaced
    store = ScoreStore(out)
    before = out.read_bytes()
    store.prepare({}, num_rows=1, shard_size=1, force=True)
    assert out.read_bytes() == before  # issue 31: the old file stays until the new one is merged


def test_foreign_work_folder_is_refused(tmp_path):
    parts = tmp_path / "s.parquet.parts"
    parts.mkdir()
    (parts / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="without a manifest"):
        ScoreStore(tmp_path / "s.parquet").prepare({}, num_rows=1, shard_size=1, force=False)


def test_shard_with_wrong_rows_is_detected(tmp_path):
    store = ScoreStore(tmp_path / "s.parquet")
    store.prepare({}, num_rows=4, shard_size=2, force=False)

    def record(k, rows, ids):
        return ShardRecord.of(k, rows=rows, ids=ids, scores=[1.0, 2.0], loss=[0, 0], length=[1, 1])

    store.write_shard(record(0, [0, 1], ["a", "b"]))
    store.write_shard(record(1, [1, 2], ["b", "c"]))  # overlaps shard 0
    with pytest.raises(InputError, match=r"should hold 2\.\.3"):
        store.merge({})
    assert not (tmp_path / "s.parquet").exists()


def test_stale_temporaries_are_removed_on_resume(tmp_path):
    store = ScoreStore(tmp_path / "s.parquet")
    store.prepare({}, num_rows=2, shard_size=1, force=False)
    (store.parts / ".shard-00000000.parquet.abc.tmp").write_bytes(b"half")
    ScoreStore(tmp_path / "s.parquet").prepare({}, num_rows=2, shard_size=1, force=False)
    assert not list(store.parts.glob(".*.tmp"))
    manifest = json.loads((store.parts / "manifest.json").read_text())
    assert manifest["num_rows"] == 2 and len(manifest["hash"]) == 64


def _fitted_fisher():
    p = torch.nn.Parameter(torch.arange(6, dtype=torch.float64).reshape(2, 3))
    block = ParamBlock(name="lin", kind="generic", params={"lin.weight": p})
    fisher = DiagonalFisher()
    fisher.fit_begin([block])
    g = torch.randn(4, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    fisher.fit_accumulate(LayerFactors(block, 4, lambda: {"lin.weight": g}))
    fisher.fit_end(4)
    return fisher, block


def test_curvature_snapshot_round_trip(tmp_path):
    fisher, block = _fitted_fisher()
    store = ScoreStore(tmp_path / "s.parquet")
    store.prepare({}, num_rows=1, shard_size=1, force=False)
    assert store.save_curvature(fisher)
    fresh = DiagonalFisher()
    fresh.fit_begin([block])
    assert store.load_curvature(fresh)
    assert fresh.damping == fisher.damping
    # exact: the Fisher saved and read back
    assert torch.equal(fresh.fisher["lin.weight"], fisher.fisher["lin.weight"])
    g = torch.randn(3, 2, 3, dtype=torch.float64)
    factors = LayerFactors(block, 3, lambda: {"lin.weight": g})
    # the saved Fisher loads bit for bit (above); the form is recomputed: to float64 rounding
    assert_equal_to_rounding(fresh.quadratic_form(factors), fisher.quadratic_form(factors))


def test_curvature_restore_rejects_a_mismatch():
    fisher, block = _fitted_fisher()
    state = snapshot_curvature(fisher)
    state["metadata"] = state["metadata"].replace('"damping"', '"damping_x"')
    fresh = DiagonalFisher()
    fresh.fit_begin([block])
    assert restore_curvature(fresh, state) is False


def test_snapshot_skips_parameters():
    class Curv:
        def __init__(self):
            self.weight = torch.nn.Parameter(torch.ones(2))
            self.stat = torch.ones(2)

        def metadata(self):
            return {"curvature": "x"}

    state = snapshot_curvature(Curv())
    assert set(state["state"]) == {"stat"}
    # exact: a state saved and read back
    assert np.array_equal(state["state"]["stat"].numpy(), np.ones(2))


def test_snapshot_of_a_slotted_attrs_curvature():
    import attrs

    @attrs.define(kw_only=True)
    class Slotted:
        scale: float = 2.0
        stat: torch.Tensor = attrs.field(factory=lambda: torch.ones(2), init=False)

        def metadata(self):
            return {"curvature": "slotted", "scale": self.scale, "stat": float(self.stat.sum())}

    saved = Slotted(scale=3.0)
    saved.stat = torch.full((2,), 5.0)
    state = snapshot_curvature(saved)
    assert set(state["state"]) == {"scale", "stat"}
    fresh = Slotted(scale=3.0)
    assert restore_curvature(fresh, state) and float(fresh.stat.sum()) == 10.0

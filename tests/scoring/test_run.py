"""The run's phases: shard sizes (default, resumed), the metadata record, moved options."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from biocoreset import load_scores, score
from biocoreset.adapters.hf import HFAdapter
from biocoreset.errors import ConfigError
from biocoreset.scoring import ScoreMetadata, auto_shard_size
from biocoreset.store.shards import ScoreStore
from biocoreset.testing import random_rna, tiny_esm


@pytest.fixture(scope="module")
def adapter():
    model, tok = tiny_esm(seed=6)
    return HFAdapter(model, tok)


def test_default_shards_give_every_rank_work():
    for n, ranks in ((1500, 2), (1500, 8), (64 * 2 * 16, 2), (10**7, 4)):
        size = auto_shard_size(n, ranks, 16)
        shards = -(-n // size)
        assert size % 16 == 0 and 16 <= size <= 4096
        assert shards >= min(4 * ranks, -(-n // 16)) or size == 4096
    assert auto_shard_size(3, 2, 16) == 16  # never below one batch
    assert auto_shard_size(1500, 1, 16) == 4096  # one process: the largest shards (length windows)


def test_a_resumed_run_keeps_its_shard_size(tmp_path, adapter, monkeypatch):
    """A run started with one default shard size (e.g. under another world size) resumes with it."""
    import biocoreset.scoring.run as run_module

    records = random_rna(24, seed=2, min_len=3, max_len=20)
    reference = score(adapter, records, subset=6, batch_size=2, damping=1e-3)
    output = tmp_path / "s.parquet"
    calls = []
    original = ScoreStore.write_shard

    def crash_after_two(self, record):
        calls.append(record.k)
        if len(calls) > 2:
            raise KeyboardInterrupt("simulated crash")
        return original(self, record)

    monkeypatch.setattr(run_module, "auto_shard_size", lambda n, r, b: 4)
    monkeypatch.setattr(ScoreStore, "write_shard", crash_after_two)
    with pytest.raises(KeyboardInterrupt):
        score(adapter, records, subset=6, batch_size=2, damping=1e-3, output=output)
    monkeypatch.undo()
    manifest = json.loads((ScoreStore(output).parts / "manifest.json").read_text())
    assert manifest["shard_size"] == 4 and len(ScoreStore(output).completed_shards()) == 2
    # the default is now 48 rows (one process), but the unfinished run is resumed with its 4
    meta = score(adapter, records, subset=6, batch_size=2, damping=1e-3, output=output).metadata
    assert meta["shard_size"] == 4 and meta["resumed_shards"] == 2
    np.testing.assert_allclose(load_scores(output).scores, reference.scores, rtol=1e-10)
    # an explicit, different shard size is still refused
    output2 = tmp_path / "t.parquet"
    monkeypatch.setattr(ScoreStore, "write_shard", crash_after_two)
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        score(adapter, records, subset=6, batch_size=2, damping=1e-3, shard_size=4, output=output2)
    monkeypatch.undo()
    with pytest.raises(ConfigError, match="shard_size: 4 -> 8"):
        score(adapter, records, subset=6, batch_size=2, damping=1e-3, shard_size=8, output=output2)


def test_metadata_record_round_trips_a_real_file(tmp_path, adapter):
    records = random_rna(10, seed=1)
    meta = score(adapter, records, subset=4, batch_size=4, output=tmp_path / "s.parquet").metadata
    record = ScoreMetadata.from_dict(meta)
    assert record.to_dict() == meta
    assert record.damping == meta["damping"] > 0 and record.subset_size == 4
    assert record.curvature_info["damping_mode"] == "relative"
    keys = {
        "scorer", "curvature", "damping", "adapter", "seed", "subset_seed", "batch_size",
        "masking", "loss_mode", "fit_on", "fit_samples", "negated", "subset_ids", "subset_size",
        "num_scored_parameters", "scored_parameter_patterns", "engine", "source", "reader",
        "num_sequences", "validation", "adapter_stats", "config_hash", "data_digest", "world_size",
        "resumed_shards", "curvature_restored", "biocoreset_version", "torch_version", "timing",
        "seconds",
    }  # fmt: skip
    assert keys <= set(meta)  # every key of earlier versions is still written
    assert {"subset_rule", "shard_size", "max_tokens", "length_window"} <= set(meta)


def test_metadata_of_an_earlier_version_loads():
    old = {"scorer": "self-influence", "curvature": "diagonal", "damping": 0.5, "seed": 0}
    record = ScoreMetadata.from_dict(old)
    assert record.subset_rule == "row-number" and record.damping == 0.5
    loss_only = ScoreMetadata.from_dict({"scorer": "loss", "curvature": None, "damping": None})
    assert loss_only.damping is None and loss_only.to_dict()["damping"] is None


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"damping_relative": 0.2}, "merged into damping: pass damping='0.2\\*mean'"),
        ({"loss_mode": "paper-compat"}, "loss_mode is the adapter's option"),
        ({"dampng": 1.0}, "unknown score\\(\\) option.*Did you mean 'damping'"),
        ({"damping": "0.1*max"}, "damping must be a number >= 0 .* or a string '<r>\\*mean'"),
        ({"damping": -1.0}, "damping must be"),
    ],
)
def test_moved_and_bad_options_say_what_to_do(adapter, option, message):
    with pytest.raises(ConfigError, match=message):
        score(adapter, random_rna(4), **option)


def test_one_damping_form_and_the_absolute_lambda_is_recorded(adapter):
    records = random_rna(8, seed=4)
    rel = score(adapter, records, subset=4, damping="0.5*mean")
    base = score(adapter, records, subset=4)
    assert rel.metadata["damping"] == pytest.approx(5 * base.metadata["damping"], rel=1e-12)
    absolute = score(adapter, records, subset=4, damping=rel.metadata["damping"])
    np.testing.assert_allclose(absolute.scores, rel.scores, rtol=1e-12)
    assert absolute.metadata["damping_mode"] == "absolute"


def test_autocast_scores_track_float32_and_are_recorded():
    """``autocast="bf16"`` (the GPU setting) runs the forward pass in bf16 with float32
    per-sample sums: the scores follow the float32 ones at bf16 round-off, and the engine's
    metadata records it."""
    records = random_rna(12, seed=3)
    model, tok = tiny_esm(seed=6, dtype=torch.float32)  # autocast leaves float64 models alone
    adapter = HFAdapter(model, tok)
    plain = score(adapter, records, subset=6, batch_size=4)
    mixed = score(adapter, records, subset=6, batch_size=4, autocast="bf16")
    assert mixed.metadata["autocast"] == "bf16" and plain.metadata["autocast"] is None
    rel = np.abs(mixed.scores - plain.scores) / np.abs(plain.scores)
    assert 0 < rel.max() < 0.1  # bf16 moved them, but only by round-off
    assert np.corrcoef(mixed.scores, plain.scores)[0, 1] > 0.99
    with pytest.raises(ConfigError, match="needs the hook engine"):
        score(adapter, records, subset=6, engine="loop", autocast="bf16")
    with pytest.raises(ConfigError, match="autocast must be one of"):
        score(adapter, records, subset=6, autocast="bf8")

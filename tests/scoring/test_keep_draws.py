"""keep_draws: every mask draw's own score, against the float64 brute force; in memory, in the
score file (resumed or not) and through the CLI; orientation and the refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from biocoreset import score
from biocoreset.adapters.hf import HFAdapter
from biocoreset.config import ScoreConfig
from biocoreset.errors import ConfigError, InputError
from biocoreset.store.result import ScoreResult, load_scores
from biocoreset.testing import random_rna, tiny_esm
from reference import per_sample_grads

K = 3


def _run(tmp_path=None, **extra):
    model, tok = tiny_esm(seed=1)
    adapter = HFAdapter(model, tok)
    records = random_rna(11, seed=4, min_len=4, max_len=30)  # varied lengths: padding present
    opts = {"subset": 5, "batch_size": 4, "seed": 5, "mask_draws": K, **extra}
    return adapter, records, score(adapter, records, **opts)


def test_each_draw_matches_the_bruteforce_and_the_mean_is_the_score():
    adapter, records, result = _run(keep_draws=True)
    names = list(adapter.scored_parameters())
    grads = [per_sample_grads(adapter, records, names, seed=5, draw=k, draws=K) for k in range(K)]
    subset_rows = [result.ids.index(i) for i in result.metadata["subset_ids"]]
    fisher = torch.stack([g[subset_rows].pow(2).mean(0) for g in grads]).mean(0)
    lam = result.metadata["damping"]
    assert result.draws is not None and result.draws.shape == (K, len(records))
    for k, g in enumerate(grads):  # draw k: its own mask, the run's (mean-over-draws) Fisher
        expected = (g.pow(2) / (fisher + lam)).sum(1).numpy()
        np.testing.assert_allclose(result.draws[k], expected, rtol=1e-6, atol=0)
    # the mean column is the mean of the draw columns (float64 summation order only)
    np.testing.assert_allclose(result.draws.mean(0), result.scores, rtol=1e-12, atol=0)
    assert result.metadata["keep_draws"] is True
    assert not np.allclose(result.draws[0], result.draws[1])  # the draws really differ


def test_keep_draws_changes_nothing_else():
    _, _, kept = _run(keep_draws=True)
    _, _, plain = _run()
    assert plain.draws is None and plain.metadata["keep_draws"] is False
    np.testing.assert_allclose(kept.scores, plain.scores, rtol=1e-12, atol=0)
    np.testing.assert_allclose(kept.loss, plain.loss, rtol=1e-12, atol=0)
    assert kept.metadata["stability"]["split_half"] == pytest.approx(
        plain.metadata["stability"]["split_half"], abs=1e-12
    )


def test_one_draw_kept_is_the_score():
    _, _, r = _run(mask_draws=1, keep_draws=True)
    assert r.draws is not None and r.draws.shape == (1, len(r))
    np.testing.assert_array_equal(r.draws[0], r.scores)  # exact: the same array, in one process


def test_draws_in_the_file_resumed_and_negated(tmp_path, monkeypatch):
    from biocoreset.store.shards import ScoreStore

    _, _, memory = _run(keep_draws=True, negate=True)
    np.testing.assert_allclose(memory.draws.mean(0), memory.scores, rtol=1e-12)
    assert (memory.draws <= 0).all()  # oriented as the scores: -I per draw
    out = tmp_path / "s.parquet"
    original, calls = ScoreStore.write_shard, []

    def crash_after_one(self, record):
        if calls:
            raise KeyboardInterrupt("simulated crash")
        calls.append(record.k)
        return original(self, record)

    monkeypatch.setattr(ScoreStore, "write_shard", crash_after_one)
    with pytest.raises(KeyboardInterrupt):
        _run(keep_draws=True, negate=True, output=out, shard_size=4)
    monkeypatch.undo()
    _, _, resumed = _run(keep_draws=True, negate=True, output=out, shard_size=4)
    assert resumed.metadata["resumed_shards"] == 1
    np.testing.assert_allclose(resumed.draws, memory.draws, rtol=1e-12, atol=0)
    loaded = load_scores(out)
    import pyarrow.parquet as pq

    names = pq.read_schema(out).names
    assert [n for n in names if n.startswith("score_draw_")] == [
        f"score_draw_{k}" for k in range(K)
    ]
    np.testing.assert_allclose(loaded.draws, memory.draws, rtol=1e-12, atol=0)


def test_keep_draws_is_part_of_the_fingerprint(tmp_path, monkeypatch):
    from biocoreset.store.shards import ScoreStore

    out = tmp_path / "s.parquet"
    monkeypatch.setattr(
        ScoreStore, "write_shard", lambda self, record: (_ for _ in ()).throw(KeyboardInterrupt())
    )
    with pytest.raises(KeyboardInterrupt):
        _run(output=out, shard_size=4)
    monkeypatch.undo()
    with pytest.raises(ConfigError, match=r"different configuration \(keep_draws"):
        _run(output=out, shard_size=4, keep_draws=True)


def test_refusals():
    with pytest.raises(ConfigError, match=r"keep_draws=True needs mask_reduce='mean-score'"):
        ScoreConfig(mask_draws=4, mask_reduce="mean-gradient", keep_draws=True)
    r = ScoreResult(ids=["a"], scores=[1.0], loss=[0.0], length=[1])
    with pytest.raises(InputError, match="--keep-draws"):
        r.draw(0)
    kept = ScoreResult(ids=["a"], scores=[1.0], loss=[0.0], length=[1], draws=[[1.0], [1.0]])
    with pytest.raises(InputError, match=r"draw 2 does not exist: choose 0\.\.1"):
        kept.draw(2)
    with pytest.raises(InputError, match=r"shape \(1, 2\)"):
        ScoreResult(ids=["a"], scores=[1.0], loss=[0.0], length=[1], draws=[[1.0, 2.0]])


def test_a_gap_in_the_draw_columns_is_refused(tmp_path):
    import pyarrow.parquet as pq

    table = ScoreResult(
        ids=["a"], scores=[1.0], loss=[0.0], length=[1], draws=[[1.0], [1.0]]
    ).to_table()
    table = table.drop_columns(["score_draw_0"])
    pq.write_table(table, tmp_path / "gap.parquet")
    with pytest.raises(InputError, match=r"score_draw_0 \.\. score_draw_\{K-1\} without gaps"):
        load_scores(tmp_path / "gap.parquet")

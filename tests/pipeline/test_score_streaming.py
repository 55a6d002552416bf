"""score() from files (streamed), shard sizes, the fit loop, and bad inputs."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from biocoreset import score
from biocoreset.adapters.hf import HFAdapter
from biocoreset.api import score_to_file
from biocoreset.config import ScoreConfig
from biocoreset.data.sources import open_sequences
from biocoreset.data.synthetic import write_fasta
from biocoreset.errors import BudgetError, ConfigError, InputError, OutputExistsError
from biocoreset.runtime.distributed import DistContext
from biocoreset.scoring import fit_curvature
from biocoreset.testing import random_rna, tiny_esm
from floats import assert_equal_to_rounding


@pytest.fixture(scope="module")
def adapter():
    model, tok = tiny_esm(seed=5)
    return HFAdapter(model, tok)


@pytest.fixture(scope="module")
def records():
    return random_rna(13, seed=2, min_len=3, max_len=25)


@pytest.fixture(scope="module")
def reference(adapter, records):
    return score(adapter, records, subset=5, batch_size=4, damping=1e-3)


def test_fasta_gzip_and_table_sources_match_in_memory(tmp_path, adapter, records, reference):
    fa = write_fasta(records, tmp_path / "c.fa")
    gz = tmp_path / "c.fa.gz"
    gz.write_bytes(gzip.compress(fa.read_bytes()))
    tsv = tmp_path / "c.tsv"
    tsv.write_text("name\tseq\n" + "".join(f"{r}\t{s}\n" for r, s in records))
    for src in (fa, gz, open_sequences(tsv, id_column="name", sequence_column="seq")):
        got = score(adapter, src, subset=5, batch_size=4, damping=1e-3)
        assert got.ids == reference.ids
        # invariant: the source's format does not change the scores (recomputed: to rounding)
        assert_equal_to_rounding(got.scores, reference.scores)
        assert got.metadata["subset_ids"] == reference.metadata["subset_ids"]
    meta = score(adapter, fa, subset=5, batch_size=4, damping=1e-3).metadata
    assert meta["reader"]["path"].endswith("c.fa") and meta["validation"]["kept"] == 13


def test_score_to_file_and_shard_sizes(tmp_path, adapter, records, reference):
    for size in (4, 8, 16):
        meta = score_to_file(
            adapter,
            records,
            tmp_path / f"s{size}.parquet",
            subset=5,
            batch_size=4,
            damping=1e-3,
            shard_size=size,
        )
        from biocoreset import load_scores

        got = load_scores(tmp_path / f"s{size}.parquet")
        # invariant: shard size does not change the scores (recomputed: to rounding)
        assert_equal_to_rounding(got.scores, reference.scores)
        assert meta["num_sequences"] == 13 and set(meta["timing"]) >= {"index", "fit", "score"}
    with pytest.raises(OutputExistsError, match="already exists"):
        score_to_file(adapter, records, tmp_path / "s4.parquet", subset=5)


def test_shard_size_must_hold_whole_batches():
    with pytest.raises(
        ConfigError, match="shard_size \\(10\\) must be a multiple of batch_size \\(4\\)"
    ):
        ScoreConfig(batch_size=4, shard_size=10)


def test_subset_larger_than_the_data(adapter, records):
    with pytest.raises(ConfigError, match="subset size 14 exceeds the 13 sequences"):
        score(adapter, records, subset=14)


def test_explicit_subset_ids_missing(adapter, records):
    with pytest.raises(InputError, match="not in the sequences"):
        score(adapter, records, subset=["nope"])


def test_fit_on_all_uses_every_row(adapter, records):
    result = score(adapter, records, fit_on="all", subset=5, damping=1e-3)
    assert result.metadata["fit_samples"] == 13
    assert not np.allclose(result.scores, score(adapter, records, subset=5, damping=1e-3).scores)


class _TwoPass:
    name = "two-pass"
    needs_fit = True

    def __init__(self):
        self.fit_passes = 2
        self.seen, self.ends = [], []

    def fit_begin(self, blocks):
        self.blocks = blocks

    def fit_accumulate(self, factors):
        self.seen.append(factors.batch_size)

    def fit_end(self, num_samples, reduce=None):
        self.ends.append((num_samples, reduce))


def test_fit_loop_repeats_for_multi_pass_curvatures(adapter, records):
    from biocoreset.grads import make_engine

    curv = _TwoPass()
    engine = make_engine(adapter, adapter.scored_parameters(None), engine="loop")
    rows = np.array([0, 3, 4, 9, 12])
    fit_curvature(
        curv,
        adapter,
        engine,
        lambda: ((i, r, s) for i, (r, s) in enumerate(records)),
        rows,
        ScoreConfig(batch_size=2, progress=False),
        DistContext(),
    )
    n_blocks = len(engine.blocks)
    assert curv.ends == [(5, None), (5, None)]
    assert curv.seen == ([2] * n_blocks + [2] * n_blocks + [1] * n_blocks) * 2


def test_budget_larger_than_n():
    from biocoreset import select

    with pytest.raises(BudgetError, match="budget 5 exceeds the 4 scored sequences"):
        select([0.1, 0.2, 0.3, 0.4], "topk", budget=5)

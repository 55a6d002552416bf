"""select(..., debias="length"): topk and cci on the length-conditional score; the fit recorded."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from biocoreset import select
from biocoreset.errors import ConfigError
from biocoreset.store.result import ScoreResult


@pytest.fixture
def result():
    rng = np.random.default_rng(5)
    n = 2000
    L = np.exp(rng.normal(np.log(120), 0.7, size=n)).astype(np.int64) + 15
    # an exact decreasing function of length plus independent noise
    scores = 1e5 / L**1.5 * np.exp(0.5 * rng.normal(size=n))
    ids = [f"s{i}" for i in range(n)]
    return ScoreResult(
        ids=ids, scores=scores, loss=np.zeros(n), length=L, metadata={"negated": False}
    )


@pytest.mark.parametrize("method", ["topk", "cci"])
def test_debiased_selection_follows_the_corpus_lengths(result, method):
    L = result.length
    plain = select(result, method, budget=0.1)
    assert plain.debias is None
    assert sps.ks_2samp(L[plain.indices], L).pvalue < 1e-6
    fair = select(result, method, budget=0.1, debias="length")
    assert fair.budget == plain.budget == 200
    assert sps.ks_2samp(L[fair.indices], L).pvalue > 0.05
    assert fair.debias["debias"] == "length"
    assert (
        fair.debias["spearman_length"] < -0.7 and abs(fair.debias["spearman_length_after"]) < 0.05
    )
    assert fair.ids == [result.ids[i] for i in fair.indices]


def test_negated_scores_and_plain_arrays_give_the_same_debiased_set(result):
    fair = select(result, "topk", budget=100, debias="length")
    neg = select(
        -result.scores, "topk", budget=100, negated=True, debias="length", lengths=result.length
    )
    # exact: selected indices
    assert np.array_equal(fair.indices, neg.indices)


def test_debias_errors(result):
    with pytest.raises(ConfigError, match="not 'random'"):
        select(result, "random", budget=10, debias="length")
    with pytest.raises(ConfigError, match="Did you mean 'length'"):
        select(result, "topk", budget=10, debias="lenght")
    with pytest.raises(ConfigError, match="needs the sequence lengths"):
        select(result.scores, "topk", budget=10, debias="length")

"""debias="length": selection on length-controlled scores follows the corpus's length mix."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from biocoreset.errors import ConfigError, InputError
from biocoreset.selectors.cci import cci_plan
from biocoreset.selectors.debias import check_debias, debias_values
from biocoreset.selectors.topk import top_indices


@pytest.fixture
def corpus():
    rng = np.random.default_rng(11)
    n = 3000
    L = np.exp(rng.normal(np.log(100), 0.8, size=n)).astype(int) + 10
    # an exact decreasing function of length plus independent noise
    scores = 5e4 / L**1.5 + 2.0 * rng.gamma(2.0, size=n)
    return scores, L


def test_plain_topk_is_mostly_short_sequences(corpus):
    scores, L = corpus
    top = top_indices(scores, 300)
    assert np.median(L[top]) < 0.5 * np.median(L)
    assert sps.ks_2samp(L[top], L).pvalue < 1e-6


def test_debiased_topk_and_cci_follow_the_corpus_length_distribution(corpus):
    scores, L = corpus
    z, fit = debias_values(scores, L, negated=False)
    assert fit["spearman_length"] < -0.3 and abs(fit["spearman_length_after"]) < 0.05
    top = top_indices(z, 300)
    assert sps.ks_2samp(L[top], L).pvalue > 0.05
    cci = cci_plan(z, 300, beta=0.05, strata=50, seed=0).selected
    assert sps.ks_2samp(L[cci], L).pvalue > 0.05
    # the same on negated storage (paper-compat convention)
    zn, _ = debias_values(-scores, L, negated=True)
    np.testing.assert_allclose(zn, z)


def test_bad_debias_options():
    assert check_debias(None) is None and check_debias("length") == "length"
    with pytest.raises(ConfigError, match="Did you mean 'length'"):
        check_debias("lenght")
    with pytest.raises(InputError, match="one length per score"):
        debias_values(np.ones(3), np.ones(2), negated=False)

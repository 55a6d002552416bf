"""Issue 31 item 3: API inputs that used to give a misleading message or a silently wrong result."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

import biocoreset
from biocoreset.diagnose import diagnose
from biocoreset.errors import InputError
from biocoreset.store.result import ScoreResult
from biocoreset.testing import tiny_esm


@pytest.mark.parametrize("empty", [[], np.array([]), ()])
def test_select_on_empty_scores_says_they_are_empty(empty):
    with pytest.raises(InputError, match=r"scores are empty") as info:
        biocoreset.select(empty, "topk", budget=1)
    assert "budget" not in str(info.value)


@pytest.mark.parametrize(
    ("scores", "shown"),
    [([1 + 2j, 3 + 0j], "(1+2j) at index 0"), (np.array([1.0, 2.0]) + 0j, "0j parts")],
    ids=["imaginary", "zero-imaginary"],
)
def test_complex_scores_are_refused(scores, shown):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ComplexWarning: refused before any cast
        with pytest.raises(InputError, match=r"scores are complex numbers") as info:
            biocoreset.select(scores, "topk", budget=1)
    assert shown in str(info.value)
    with pytest.raises(InputError, match="complex"):
        ScoreResult(ids=["a", "b"], scores=np.array([1 + 1j, 2]), loss=[0, 0], length=[1, 2])


def test_score_on_bare_sequences_names_the_pair_form():
    model, tok = tiny_esm(seed=0, dtype=torch.float32)
    with pytest.raises(InputError) as info:
        biocoreset.score(model, ["ACGU", "GGCA"], tokenizer=tok, subset=2)
    message = str(info.value)
    assert "'ACGU', which is not an existing file" in message
    assert "(id, sequence) pairs such as [('seq0', 'ACGU')" in message
    assert "\n" not in message


def test_score_result_refuses_a_nan_length():
    with pytest.raises(InputError, match=r"ScoreResult.length has length nan at row 1"):
        ScoreResult(ids=["a", "b"], scores=[1.0, 2.0], loss=[0, 0], length=[3.0, math.nan])
    assert ScoreResult(ids=["a"], scores=[1.0], loss=[0], length=[3.0]).length.dtype == np.int64


def test_diagnose_on_a_score_result_checks_it_too():
    r = ScoreResult(ids=["a", "b", "a"], scores=[1.0, 2.0, 3.0], loss=[0] * 3, length=[3, 4, 5])
    with pytest.raises(InputError, match=r"the ScoreResult holds the id 'a' twice"):
        diagnose(r)
    r = ScoreResult(ids=["a", "b", "c"], scores=[1.0, math.nan, 3.0], loss=[0] * 3, length=[3] * 3)
    with pytest.raises(InputError, match=r"first: row 1, id 'b', nan"):
        diagnose(r)

"""Issue 27: ``select`` names what is wrong with scores that are not numbers."""

from __future__ import annotations

import pytest

from biocoreset import select
from biocoreset.errors import InputError


@pytest.mark.parametrize(
    ("scores", "message"),
    [
        ([1, 2, "x"], r"scores must be numbers, got 'x' \(str\)"),
        (None, "scores is None; pass one number per sequence"),
        (3.0, r"got a single value \(float\)"),
        ([[1.0, 2.0]], r"got shape \(1, 2\)"),
    ],
)
def test_bad_scores_are_named(scores, message):
    with pytest.raises(InputError, match=message):
        select(scores, "topk", budget=1)


def test_numbers_still_select():
    assert select([1, 3, 2], "topk", budget=1).indices.tolist() == [1]

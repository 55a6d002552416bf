"""Metrics against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from biocoreset.bench import metrics as M


def test_classification():
    y = ["a", "a", "b", "b", "c"]
    p = ["a", "b", "b", "b", "a"]
    assert M.accuracy(y, p) == pytest.approx(3 / 5)
    # F1: a: P=1/2, R=1/2 -> 1/2; b: P=2/3, R=1 -> 4/5; c: 0. Macro = (0.5 + 0.8 + 0) / 3.
    assert M.macro_f1(y, p) == pytest.approx(1.3 / 3)


def test_regression():
    y, p = [1.0, 2.0, 3.0, 4.0], [1.5, 2.0, 2.0, 5.0]
    assert M.mse(y, p) == pytest.approx((0.25 + 0 + 1 + 1) / 4)
    assert M.mae(y, p) == pytest.approx((0.5 + 0 + 1 + 1) / 4)
    assert M.rmse(y, p) == pytest.approx(math.sqrt(2.25 / 4))
    # R² = 1 - SS_res / SS_tot = 1 - 2.25 / 5
    assert M.r2(y, p) == pytest.approx(1 - 2.25 / 5)
    # ranks of p: 1, 2.5, 2.5, 4 against 1, 2, 3, 4: Pearson of the ranks.
    rp = np.array([1, 2.5, 2.5, 4])
    ry = np.array([1, 2, 3, 4])
    assert M.spearman(y, p) == pytest.approx(np.corrcoef(ry, rp)[0, 1])
    assert math.isnan(M.spearman([1, 2, 3], [5, 5, 5]))


def test_ranking():
    y = [0, 0, 1, 1]
    s = [0.1, 0.4, 0.35, 0.8]
    # Positive/negative pairs ranked right: (0.35>0.1), (0.8>0.1), (0.8>0.4); wrong: (0.35<0.4) -> 3/4.
    assert M.roc_auc(y, s) == pytest.approx(0.75)
    # Ranked: 0.8(+) 0.4(-) 0.35(+) 0.1(-): AP = (1/1 + 2/3) / 2.
    assert M.aupr(y, s) == pytest.approx((1 + 2 / 3) / 2)
    assert math.isnan(M.roc_auc([1, 1], [0.2, 0.3]))
    # Two labels: column 0 AUC 1.0, column 1 AUC 0.5 (0.9 > 0.5 right, 0.3 < 0.5 wrong); the constant column is skipped.
    Y = np.array([[0, 1, 1], [1, 0, 1], [1, 1, 1]])
    S = np.array([[0.2, 0.9, 0.5], [0.8, 0.5, 0.5], [0.6, 0.3, 0.5]])
    assert M.mean_auc(Y, S) == pytest.approx((1.0 + 0.5) / 2)


def _map(n: int, pairs: list[tuple[int, int]]) -> np.ndarray:
    m = np.zeros((n, n), bool)
    for i, j in pairs:
        m[i, j] = m[j, i] = True
    return m


def test_basepairs():
    t = _map(6, [(0, 5), (1, 4)])
    p = _map(6, [(0, 5), (2, 3), (1, 3)])
    # Upper triangle: 15 cells. TP=1, FP=2, FN=1, TN=11.
    assert M.pair_confusion(t, p) == (1, 2, 1, 11)
    s = M.basepair_scores([t], [p])
    P, R = 1 / 3, 1 / 2
    assert s["precision"] == pytest.approx(P)
    assert s["recall"] == pytest.approx(R)
    assert s["f1"] == pytest.approx(2 * P * R / (P + R))
    assert s["mcc"] == pytest.approx((1 * 11 - 2 * 1) / math.sqrt(3 * 2 * 13 * 12))
    # Averaged per sequence: a perfect second sequence.
    both = M.basepair_scores([t, t], [p, t])
    assert both["precision"] == pytest.approx((P + 1) / 2)
    empty = M.basepair_scores([_map(4, [(0, 3)])], [_map(4, [])])
    assert empty == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "mcc": 0.0}


def test_contact_precision():
    L = 40
    t = _map(L, [(0, 30), (1, 35), (2, 39), (5, 10)])  # (5, 10) is short-range
    prob = np.zeros((L, L))
    ranked = [(0, 30, 0.99), (3, 33, 0.98), (1, 35, 0.97), (5, 10, 0.999), (4, 38, 0.5)]
    for i, j, v in ranked:
        prob[i, j] = prob[j, i] = v
    out = M.contact_precision([t], [prob], min_separation=24)
    # Long-range candidates ranked: (0,30)+ (3,33)- (1,35)+ (4,38)- then zeros (ties, stable order).
    # top L/10 = 4: 2/4; top L/5 = 8: the 4 ranked + 4 zero-probability pairs in index order:
    # (0,24)..(0,29) are not contacts -> 2/8.
    assert out["top_l10"] == pytest.approx(2 / 4)
    assert out["top_l5"] == pytest.approx(2 / 8)
    assert out["top_l2"] == pytest.approx(2 / 20)  # (2, 39) has probability 0 and ranks late
    assert set(out) == {"top_l", "top_l2", "top_l5", "top_l10"}


def test_distance_scores_pool_the_upper_triangle_and_skip_unknowns():
    t = np.array([[0, 1, 2], [1, 0, np.nan], [2, np.nan, 0]], dtype=float)
    p = np.array([[0, 1.5, 2], [1.5, 0, 9], [2, 9, 0]], dtype=float)
    s = M.distance_scores([t], [p])
    assert s["mae"] == pytest.approx(0.25)  # pairs (0,1): 0.5, (0,2): 0; (1,2) unknown
    assert s["mse"] == pytest.approx(0.125)
    assert s["r2"] == pytest.approx(1 - 0.25 / 0.5)

"""Downstream metrics (paper Appendix B), computed with scikit-learn and SciPy.

Sequence-level metrics take flat arrays. Map metrics take one map per sequence and average over
sequences (base pairs, contacts) or pool every pair (distances), as documented per function.
All return plain ``float``; a metric that is undefined for the data (e.g. AUC with one class) is NaN.

Example:
    >>> accuracy([0, 1, 1], [0, 1, 0])
    0.6666666666666666
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "accuracy",
    "aupr",
    "basepair_scores",
    "contact_precision",
    "distance_scores",
    "macro_f1",
    "mae",
    "mean_auc",
    "mse",
    "pair_confusion",
    "r2",
    "rmse",
    "roc_auc",
    "spearman",
]

ArrayLike = Any


def _flat(x: ArrayLike) -> np.ndarray:
    return np.asarray(x).reshape(-1)


def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Fraction of exact matches (also Q3 for per-residue labels flattened over residues)."""
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(_flat(y_true), _flat(y_pred)))


def macro_f1(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Unweighted mean of the per-class F1 over the classes present in ``y_true`` or ``y_pred``.

    >>> round(macro_f1([0, 0, 1, 1], [0, 1, 1, 1]), 4)
    0.7333
    """
    from sklearn.metrics import f1_score

    return float(f1_score(_flat(y_true), _flat(y_pred), average="macro", zero_division=0))


def spearman(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Spearman rank correlation (NaN when either side is constant).

    >>> spearman([1, 2, 3], [10, 20, 15])
    0.5
    """
    from scipy.stats import spearmanr

    a, b = _flat(y_true).astype(np.float64), _flat(y_pred).astype(np.float64)
    if a.size < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan")
    return float(spearmanr(a, b).statistic)


def mse(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean squared error."""
    from sklearn.metrics import mean_squared_error

    return float(mean_squared_error(_flat(y_true), _flat(y_pred)))


def rmse(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Root mean squared error."""
    return math.sqrt(mse(y_true, y_pred))


def mae(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean absolute error."""
    from sklearn.metrics import mean_absolute_error

    return float(mean_absolute_error(_flat(y_true), _flat(y_pred)))


def r2(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Coefficient of determination ``1 - SS_res / SS_tot``."""
    from sklearn.metrics import r2_score

    return float(r2_score(_flat(y_true), _flat(y_pred)))


def roc_auc(y_true: ArrayLike, score: ArrayLike) -> float:
    """Area under the ROC curve of binary labels (NaN with a single class).

    >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    """
    from sklearn.metrics import roc_auc_score

    y = _flat(y_true)
    if np.unique(y).size < 2:
        return float("nan")
    return float(roc_auc_score(y, _flat(score)))


def aupr(y_true: ArrayLike, score: ArrayLike) -> float:
    """Area under the precision-recall curve as average precision (NaN without positives)."""
    from sklearn.metrics import average_precision_score

    y = _flat(y_true)
    if not np.any(y == 1):
        return float("nan")
    return float(average_precision_score(y, _flat(score)))


def mean_auc(y_true: ArrayLike, score: ArrayLike) -> float:
    """Mean ROC AUC over the label columns of a multi-label problem (columns with one class skipped).

    >>> mean_auc([[0, 1], [1, 0], [1, 1]], [[0.2, 0.9], [0.8, 0.5], [0.6, 0.3]])
    0.75
    """
    y, s = np.asarray(y_true), np.asarray(score)
    if y.ndim == 1:
        return roc_auc(y, s)
    aucs = [roc_auc(y[:, k], s[:, k]) for k in range(y.shape[1])]
    aucs = [a for a in aucs if not math.isnan(a)]
    return float(np.mean(aucs)) if aucs else float("nan")


def pair_confusion(
    true_map: np.ndarray, pred_map: np.ndarray, *, min_separation: int = 1
) -> tuple[int, int, int, int]:
    """``(TP, FP, FN, TN)`` over the upper triangle ``j - i >= min_separation`` of two boolean maps."""
    t, p = np.asarray(true_map, dtype=bool), np.asarray(pred_map, dtype=bool)
    iu = np.triu_indices(t.shape[0], k=min_separation)
    t, p = t[iu], p[iu]
    tp = int(np.sum(t & p))
    fp = int(np.sum(~t & p))
    fn = int(np.sum(t & ~p))
    tn = int(np.sum(~t & ~p))
    return tp, fp, fn, tn


def _prf_mcc(tp: int, fp: int, fn: int, tn: int) -> dict[str, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    den = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    mcc = (tp * tn - fp * fn) / den if den else 0.0
    return {"precision": p, "recall": r, "f1": f1, "mcc": mcc}


def basepair_scores(
    true_maps: Sequence[np.ndarray], pred_maps: Sequence[np.ndarray]
) -> dict[str, float]:
    """Precision, recall, F1 and MCC of predicted base pairs, per sequence then averaged.

    Each map is a boolean ``[L, L]`` matrix; only the upper triangle (``i < j``) counts. For one
    sequence a ratio with a zero denominator is 0 (no predicted pair: precision 0).

    >>> t = np.zeros((4, 4), bool); t[0, 3] = t[1, 2] = True
    >>> p = np.zeros((4, 4), bool); p[0, 3] = p[0, 2] = True
    >>> {k: round(v, 4) for k, v in basepair_scores([t], [p]).items()}
    {'precision': 0.5, 'recall': 0.5, 'f1': 0.5, 'mcc': 0.25}
    """
    if len(true_maps) != len(pred_maps) or not true_maps:
        raise ValueError(
            f"need the same non-zero number of maps, got {len(true_maps)} and {len(pred_maps)}."
        )
    rows = [_prf_mcc(*pair_confusion(t, p)) for t, p in zip(true_maps, pred_maps, strict=True)]
    return {k: float(np.mean([r[k] for r in rows])) for k in ("precision", "recall", "f1", "mcc")}


def contact_precision(
    true_maps: Sequence[np.ndarray],
    prob_maps: Sequence[np.ndarray],
    *,
    fractions: Sequence[float] = (1.0, 0.5, 0.2, 0.1),
    min_separation: int = 24,
) -> dict[str, float]:
    """Long-range top-``L·f`` precision, per sequence then averaged.

    For a sequence of length ``L``, the pairs ``i < j`` with ``j - i >= min_separation`` are ranked by
    predicted probability; the top ``k = max(1, floor(f·L))`` are taken (fewer if there are fewer
    candidates) and the precision is the fraction that are true contacts. Sequences without any
    candidate pair are skipped. Keys: ``"top_l"``, ``"top_l2"``, ``"top_l5"``, ``"top_l10"`` for the
    default fractions (``"top_{f}l"`` otherwise).

    >>> t = np.zeros((30, 30), bool); t[0, 29] = True
    >>> p = np.zeros((30, 30)); p[0, 29] = 0.9; p[1, 28] = 0.8
    >>> contact_precision([t], [p], fractions=(1 / 15,), min_separation=24)
    {'top_0.0667l': 0.5}
    """
    names = {1.0: "top_l", 0.5: "top_l2", 0.2: "top_l5", 0.1: "top_l10"}
    out: dict[str, list[float]] = {names.get(f, f"top_{f:.3g}l"): [] for f in fractions}
    for t, p in zip(true_maps, prob_maps, strict=True):
        L = t.shape[0]
        iu = np.triu_indices(L, k=min_separation)
        if iu[0].size == 0:
            continue
        truth = np.asarray(t, dtype=bool)[iu]
        order = np.argsort(-np.asarray(p, dtype=np.float64)[iu], kind="stable")
        for f in fractions:
            k = min(order.size, max(1, math.floor(f * L)))
            out[names.get(f, f"top_{f:.3g}l")].append(float(truth[order[:k]].mean()))
    return {k: float(np.mean(v)) if v else float("nan") for k, v in out.items()}


def distance_scores(
    true_maps: Sequence[np.ndarray], pred_maps: Sequence[np.ndarray]
) -> dict[str, float]:
    """R², Spearman, MAE and MSE over every known pair ``i < j`` of every sequence, pooled.

    Unknown distances (NaN in the true map) are left out.
    """
    ts, ps = [], []
    for t, p in zip(true_maps, pred_maps, strict=True):
        iu = np.triu_indices(t.shape[0], k=1)
        tv, pv = np.asarray(t, dtype=np.float64)[iu], np.asarray(p, dtype=np.float64)[iu]
        keep = ~np.isnan(tv)
        ts.append(tv[keep])
        ps.append(pv[keep])
    y, yhat = np.concatenate(ts), np.concatenate(ps)
    return {
        "r2": r2(y, yhat),
        "spearman": spearman(y, yhat),
        "mae": mae(y, yhat),
        "mse": mse(y, yhat),
    }

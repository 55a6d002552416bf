"""Statistics behind the trust tools: rank correlation, length control, split-half stability.

Pure NumPy (no torch, no scipy), so selection and reports stay light to import.

* :func:`spearman` — Spearman's ρ with mid-ranks for ties.
* :func:`length_control` — how much of a score is explained by sequence length, and the
  length-conditional z-score of each score (what ``select(..., debias="length")`` ranks on).
* :func:`split_half_stability` — from the means of two halves of ``K`` mask draws: their Spearman
  ρ, its Spearman–Brown projection to ``K`` draws, the same with length regressed out, and the
  number of draws that would reach a target reliability.

Example:
    >>> import numpy as np
    >>> spearman(np.array([1.0, 2.0, 3.0]), np.array([3.0, 5.0, 9.0]))
    1.0
    >>> round(spearman_brown(0.5, 2.0), 4)
    0.6667
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import attrs
import numpy as np

from biocoreset.errors import QualityWarning

__all__ = [
    "LengthControl",
    "draws_for_reliability",
    "length_control",
    "r_squared",
    "rankdata",
    "spearman",
    "spearman_brown",
    "split_half_stability",
]


def rankdata(values: np.ndarray) -> np.ndarray:
    """Mid-ranks (1-based, float64) of ``values``; ties share the mean of their ranks.

    >>> rankdata(np.array([10.0, 30.0, 20.0, 20.0])).tolist()
    [1.0, 4.0, 2.5, 2.5]
    """
    a = np.asarray(values, dtype=np.float64)
    order = np.argsort(a, kind="stable")
    sorted_a = a[order]
    ranks = np.empty(a.size, dtype=np.float64)
    # run boundaries of equal values
    starts = np.flatnonzero(np.r_[True, sorted_a[1:] != sorted_a[:-1]])
    ends = np.r_[starts[1:], a.size]
    mid = (starts + ends + 1) / 2.0  # mean of 1-based ranks start+1 .. end
    ranks[order] = np.repeat(mid, ends - starts)
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of ``a`` and ``b`` (mid-ranks for ties; ``nan`` when either is
    constant or there are fewer than two values)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(
            f"spearman needs two 1-D arrays of one length, got {a.shape} and {b.shape}."
        )
    if a.size < 2:
        return float("nan")
    ra, rb = rankdata(a) - (a.size + 1) / 2.0, rankdata(b) - (b.size + 1) / 2.0
    den = math.sqrt(float(ra @ ra) * float(rb @ rb))
    return float(ra @ rb) / den if den > 0 else float("nan")


def r_squared(y: np.ndarray, fitted: np.ndarray) -> float:
    """Share of the variance of ``y`` explained by ``fitted`` (1 − SS_res / SS_tot).

    >>> r_squared(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0]))
    1.0
    """
    y = np.asarray(y, dtype=np.float64)
    tot = float(np.square(y - y.mean()).sum())
    return 1.0 - float(np.square(y - fitted).sum()) / tot if tot > 0 else float("nan")


def spearman_brown(r: float, factor: float) -> float:
    """Reliability of a measurement ``factor`` times as long as one of reliability ``r``."""
    if not math.isfinite(r):
        return float("nan")
    return factor * r / (1.0 + (factor - 1.0) * r)


def draws_for_reliability(r_single: float, target: float = 0.9) -> float:
    """Number of averaged draws whose mean reaches reliability ``target``, from the reliability of
    one draw (Spearman–Brown solved for the length; ``inf`` when ``r_single <= 0``).

    >>> round(draws_for_reliability(0.5, 0.9), 3)
    9.0
    """
    if not math.isfinite(r_single) or r_single <= 0:
        return float("inf")
    if r_single >= 1:
        return 1.0
    return target * (1.0 - r_single) / (r_single * (1.0 - target))


@attrs.frozen(kw_only=True)
class LengthControl:
    """A fitted length control of log scores (see :func:`length_control`).

    Attributes:
        z: Length-conditional score of every sequence: ``(log s − m(L)) / d(L)``, with ``m`` and
            ``d`` the running median and scale of log scores at that length, then rank-matched
            within each length bin to the pooled distribution. Higher = more influential than
            other sequences of the same length.
        log_scores: The transformed scores the fit ran on.
        centers: Log-length at the centre of each length bin.
        medians: Median log score per bin.
        scales: Robust scale (1.4826 × MAD) of log scores per bin.
        spearman_length: Spearman ρ of the scores with length.
        r2_length: Share of the variance of the log scores explained by the length fit.
        spearman_length_after: Spearman ρ of ``z`` with length (≈ 0 when the control works).
        transform: ``"log"`` (scores > 0) or ``"identity"`` (scores with zeros or negatives).
    """

    z: np.ndarray
    log_scores: np.ndarray
    centers: np.ndarray
    medians: np.ndarray
    scales: np.ndarray
    spearman_length: float
    r2_length: float
    spearman_length_after: float
    transform: str

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable description of the fit (no per-sequence arrays)."""
        return {
            "method": "length-binned median/MAD of log score, interpolated in log length",
            "transform": self.transform,
            "bins": int(self.centers.size),
            "log_length_centers": [round(float(c), 6) for c in self.centers],
            "median_log_score": [float(m) for m in self.medians],
            "scale_log_score": [float(s) for s in self.scales],
            "spearman_length": self.spearman_length,
            "r2_length": self.r2_length,
            "spearman_length_after": self.spearman_length_after,
        }


def _transform(scores: np.ndarray) -> tuple[np.ndarray, str]:
    if scores.size and float(scores.min()) > 0:
        return np.log(scores), "log"
    bad = int(np.count_nonzero(scores <= 0))
    warnings.warn(
        f"length control: {bad} of {scores.size} scores are <= 0 (smallest {float(scores.min()):.3g}), "
        "so the length trend is fitted on the raw scores, not their logarithm (transform "
        "'identity', recorded with the fit). Expected for mask_reduce='mean-gradient'; with "
        "positive scores, look for a wrong sign (pass I(z), not -I(z)).",
        QualityWarning,
        stacklevel=3,
    )
    return scores.astype(np.float64, copy=True), "identity"


def length_control(
    scores: np.ndarray, lengths: np.ndarray, *, min_bin: int = 30, max_bins: int = 50
) -> LengthControl:
    """Fit how (log) scores depend on (log) length, and the length-conditional z-score.

    Sequences are split into up to ``max_bins`` bins of equal count by length (at least
    ``min_bin`` sequences each). In each bin the median and the robust scale (1.4826 × MAD) of the
    log scores are taken; both are interpolated linearly in log length between bin centres (flat
    beyond the ends), so a smooth, possibly non-monotone, length trend in location *and* spread is
    removed. Within each bin the result is then rank-matched to the pooled distribution
    (quantile normalisation), so a length-dependent *shape* of the spread (a heavier tail at some
    lengths) is removed as well. ``z`` thus compares each sequence only with sequences of similar
    length: selecting on it gives a set whose length distribution follows the corpus's, while the
    pooled distribution keeps the score's overall shape for CCI's strata.

    Scores must be oriented so that higher = more influential (pass ``I(z)``, not ``-I(z)``). With
    any score ``<= 0`` the raw scores are used instead of their logarithm (``transform ==
    "identity"``), with a :class:`~biocoreset.errors.QualityWarning`; scores from
    ``mask_reduce="mean-gradient"`` are often ``<= 0``.

    >>> rng = np.random.default_rng(0)
    >>> L = rng.integers(20, 400, size=2000)
    >>> s = 1e4 / L**2 * np.exp(rng.normal(size=2000))
    >>> lc = length_control(s, L)
    >>> lc.spearman_length < -0.7, abs(lc.spearman_length_after) < 0.05
    (True, True)
    """
    s = np.asarray(scores, dtype=np.float64)
    L = np.asarray(lengths, dtype=np.float64)
    if s.shape != L.shape or s.ndim != 1:
        raise ValueError(f"scores and lengths must be 1-D of one length, got {s.shape}, {L.shape}.")
    if s.size == 0:
        raise ValueError("length control needs at least one score.")
    y, transform = _transform(s)
    x = np.log(np.maximum(L, 1.0))
    n = s.size
    bins = int(max(1, min(max_bins, n // max(1, min_bin))))
    order = np.argsort(x, kind="stable")
    xs = x[order]
    groups: list[np.ndarray] = []
    start = 0
    for cut in np.linspace(0, n, bins + 1).astype(np.int64)[1:]:
        if cut <= start:
            continue
        stop = int(np.searchsorted(xs, xs[cut - 1], side="right"))  # never split equal lengths
        groups.append(order[start:stop])
        start = stop
    # bins hold disjoint, increasing length ranges, so their centres increase strictly
    centers = np.array([float(np.median(x[g])) for g in groups])
    medians = np.array([float(np.median(y[g])) for g in groups])
    scales = np.array([1.4826 * float(np.median(np.abs(y[g] - np.median(y[g])))) for g in groups])
    positive = scales[scales > 0]
    floor = float(positive.min()) if positive.size else 1.0
    scales = np.where(scales > 0, scales, floor)
    m = np.interp(x, centers, medians)
    d = np.interp(x, centers, scales)
    trend = (y - m) / d
    # The shape of the spread may differ with length too (e.g. a skewed tail at some lengths):
    # within each bin, replace each value by the pooled distribution's quantile at its rank, so
    # every length has the same distribution of z and the tails compete on equal terms.
    pooled = np.sort(trend)
    z = np.empty(n, dtype=np.float64)
    for g in groups:
        p = (rankdata(trend[g]) - 0.5) / g.size
        z[g] = np.quantile(pooled, p)
    return LengthControl(
        z=z,
        log_scores=y,
        centers=centers,
        medians=medians,
        scales=scales,
        spearman_length=spearman(s, L),
        r2_length=r_squared(y, m),
        spearman_length_after=spearman(z, L),
        transform=transform,
    )


def split_half_stability(
    first: np.ndarray,
    second: np.ndarray,
    draws: int,
    lengths: np.ndarray | None = None,
    *,
    target: float = 0.9,
) -> dict[str, Any]:
    """Reliability of a ``draws``-draw mean score from the means of its two halves.

    Args:
        first: Per-sequence mean score over the first half of the draws (oriented: higher = more
            influential).
        second: The same over the second half.
        draws: The number of draws ``K`` the full mean averages (``>= 2``).
        lengths: Sequence lengths; when given, the same figures are computed on the
            length-conditional z-scores (:func:`length_control`).
        target: Reliability to report the needed number of draws for.

    Returns:
        ``{"draws", "split_half", "projected", "single_draw", "draws_for_target", "target"}`` and,
        with ``lengths``, the same keys with a ``_length_regressed`` suffix. ``projected`` is the
        Spearman–Brown projection of the split-half ρ to ``K`` draws: an estimate of the Spearman
        ρ between two independent runs of ``K`` draws each that ran up to 0.1 high in the
        measurements (the halves of one run share its Fisher and ``D_sub``; ``docs/trust.md``).

    >>> rng = np.random.default_rng(1)
    >>> signal = rng.normal(size=3000)
    >>> a = signal + rng.normal(size=3000); b = signal + rng.normal(size=3000)
    >>> stats = split_half_stability(a, b, draws=2)
    >>> 0.45 < stats["split_half"] < 0.55, 0.62 < stats["projected"] < 0.71
    (True, True)
    """
    if draws < 2:
        raise ValueError(f"split-half stability needs at least 2 draws, got {draws}.")
    half = draws / 2.0

    def figures(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
        rho = spearman(a, b)
        single = rho / (half - (half - 1.0) * rho) if math.isfinite(rho) else float("nan")
        return {
            "split_half": rho,
            "projected": spearman_brown(rho, 2.0),
            "single_draw": single,
            "draws_for_target": draws_for_reliability(single, target),
        }

    out: dict[str, Any] = {"draws": int(draws), "target": target, **figures(first, second)}
    if lengths is not None:
        za = length_control(first, lengths).z
        zb = length_control(second, lengths).z
        out.update({f"{k}_length_regressed": v for k, v in figures(za, zb).items()})
    return out

"""Several masks per sequence (``score(..., mask_draws=K)``): a batch scored under ``K`` masks, and
the run's split-half stability.

Every batch is collated ``K`` times (draw ``k`` of ``K``, seeded by ``(seed, id, k)``; see
:mod:`biocoreset.data.masking`) and scored once per draw; the score and the loss are the means over
the draws (summed in float64). ``K = 1`` runs exactly the single-mask code path.

With ``K >= 2`` each row also keeps the mean of the first ``⌊K/2⌋`` draws and of the remaining
``⌈K/2⌉`` (:class:`DrawScores.halves`, stored in the shard tables as ``half_1``/``half_2`` so that a
resumed or multi-rank run has them for every row; the final score file keeps only the figures, in
``metadata["stability"]``). :func:`stability_figures` turns them into the split-half Spearman, its
Spearman–Brown projection to ``K`` draws and the same with length regressed out
(:func:`biocoreset.stats.split_half_stability`). For odd ``K`` the halves differ by one draw; the
projection still treats them as equal halves (a slight underestimate of the reliability).

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> signal = rng.lognormal(size=2000)
    >>> halves = signal * rng.lognormal(0, 0.5, size=(2, 2000))
    >>> figs = stability_figures(halves, rng.integers(20, 200, size=2000), draws=4)
    >>> figs["draws"], figs["projected"] > figs["split_half"] > 0.5
    (4, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np
import torch

from biocoreset.protocols import CurvatureEstimator, Engine, ModelAdapter, Scorer
from biocoreset.stats import split_half_stability

__all__ = ["RELIABILITY_WARNING", "DrawScores", "score_draws", "stability_figures"]

RELIABILITY_WARNING = 0.9
"""``score`` warns when the projected reliability (two runs' Spearman ρ) is below this."""


@attrs.frozen(kw_only=True)
class DrawScores:
    """One batch's results over its mask draws (float64, in batch order; scores not negated).

    Attributes:
        scores: Mean score over the draws.
        loss: Mean loss over the draws.
        length: Residues per sequence.
        halves: ``(2, n)`` means of the first and second half of the draws (``None`` for one draw).
    """

    scores: np.ndarray
    loss: np.ndarray
    length: np.ndarray
    halves: np.ndarray | None = None


def _host(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy()


def score_draws(
    scorer: Scorer,
    adapter: ModelAdapter,
    records: Sequence[tuple[str, str]],
    engine: Engine,
    curvature: CurvatureEstimator | None,
    *,
    seed: int,
    draws: int = 1,
) -> DrawScores:
    """Score ``records`` under ``draws`` masks each and average.

    Args:
        scorer: The scorer.
        adapter: The adapter (collates each draw).
        records: ``(id, sequence)`` pairs of one batch.
        engine: The per-sample gradient engine.
        curvature: The fitted curvature (``None`` for scorers without one).
        seed: The masking seed.
        draws: Masks per sequence ``K``.
    """
    if draws == 1:  # the single-mask path, exactly as before mask_draws existed
        batch = adapter.collate(list(records), seed=seed)
        s, loss = scorer.score_batch(adapter, batch, engine, curvature)
        return DrawScores(scores=_host(s), loss=_host(loss), length=batch.lengths.to("cpu").numpy())
    half = draws // 2
    sums = np.zeros((2, len(records)), dtype=np.float64)
    loss_sum = np.zeros(len(records), dtype=np.float64)
    length = None
    for k in range(draws):
        batch = adapter.collate(list(records), seed=seed, draw=k, draws=draws)
        s, loss = scorer.score_batch(adapter, batch, engine, curvature)
        sums[0 if k < half else 1] += _host(s)
        loss_sum += _host(loss)
        if length is None:
            length = batch.lengths.to("cpu").numpy()
    assert length is not None
    return DrawScores(
        scores=(sums[0] + sums[1]) / draws,
        loss=loss_sum / draws,
        length=length,
        halves=sums / np.array([[half], [draws - half]], dtype=np.float64),
    )


def stability_figures(halves: np.ndarray, lengths: np.ndarray, draws: int) -> dict[str, Any]:
    """``metadata["stability"]``: :func:`~biocoreset.stats.split_half_stability` of the two
    half-means (oriented: higher = more influential), with and without length.

    Keys: ``draws``, ``split_half`` (Spearman ρ of the half-means), ``projected`` (its
    Spearman–Brown projection to ``K`` draws: the expected ρ between two runs with different
    seeds), ``single_draw``, ``draws_for_target``, ``target`` and the same with a
    ``_length_regressed`` suffix (on length-conditional z-scores), plus ``rows``.
    """
    figs = split_half_stability(
        np.asarray(halves[0], np.float64),
        np.asarray(halves[1], np.float64),
        draws,
        np.asarray(lengths),
        target=RELIABILITY_WARNING,
    )
    figs["rows"] = int(np.shape(halves)[1])
    return figs

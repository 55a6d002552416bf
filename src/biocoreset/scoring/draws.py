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

With ``mask_reduce="mean-gradient"`` (:func:`mean_gradient_draws`) the ``K`` draws run as one batch
of ``K·B`` rows and the score is the unbiased estimate of the score of the mean gradient; the halves
are each half's own estimate (``K >= 4``; none for ``K < 4``).

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

from biocoreset.config.core import MEAN_GRADIENT_COVER
from biocoreset.data.masking import resolve_schedule
from biocoreset.errors import ConfigError
from biocoreset.grads.groups import group_factors
from biocoreset.grads.totals import BatchTotal
from biocoreset.protocols import (
    Batch,
    CurvatureEstimator,
    Engine,
    LayerFactors,
    ModelAdapter,
    Scorer,
    capabilities,
)
from biocoreset.stats import split_half_stability

__all__ = [
    "RELIABILITY_WARNING",
    "DrawScores",
    "check_mean_gradient",
    "concat_batches",
    "score_draws",
    "stability_figures",
]

RELIABILITY_WARNING = 0.9
"""``score`` warns when the projected reliability (an estimate of two runs' Spearman ρ that ran up
to 0.1 high in the measurements, ``docs/trust.md``) is below this."""


@attrs.frozen(kw_only=True)
class DrawScores:
    """One batch's results over its mask draws (float64, in batch order; scores not negated).

    Attributes:
        scores: Mean score over the draws.
        loss: Mean loss over the draws.
        length: Residues per sequence.
        halves: ``(2, n)`` means of the first and second half of the draws (``None`` for one draw).
        per_draw: ``(K, n)`` every draw's own score (``keep_draws``; ``None`` when not kept).
    """

    scores: np.ndarray
    loss: np.ndarray
    length: np.ndarray
    halves: np.ndarray | None = None
    per_draw: np.ndarray | None = None


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
    reduce: str = "mean-score",
    keep: bool = False,
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
        reduce: ``"mean-score"`` (the mean of the per-draw scores) or ``"mean-gradient"`` (the
            unbiased estimate of the score of the mean gradient; see :func:`mean_gradient_draws`).
        keep: Also return every draw's own score (``DrawScores.per_draw``; ``"mean-score"`` only).
    """
    if reduce == "mean-gradient":
        return mean_gradient_draws(
            scorer, adapter, records, engine, curvature, seed=seed, draws=draws
        )
    if draws == 1:  # the single-mask path, exactly as before mask_draws existed
        batch = adapter.collate(list(records), seed=seed)
        s, loss = scorer.score_batch(adapter, batch, engine, curvature)
        one = _host(s)
        return DrawScores(
            scores=one,
            loss=_host(loss),
            length=batch.lengths.to("cpu").numpy(),
            per_draw=one[None].copy() if keep else None,
        )
    half = draws // 2
    sums = np.zeros((2, len(records)), dtype=np.float64)
    per_draw = np.empty((draws, len(records)), dtype=np.float64)
    loss_sum = np.zeros(len(records), dtype=np.float64)
    length = None
    for k in range(draws):
        batch = adapter.collate(list(records), seed=seed, draw=k, draws=draws)
        s, loss = scorer.score_batch(adapter, batch, engine, curvature)
        per_draw[k] = _host(s)
        sums[0 if k < half else 1] += per_draw[k]
        loss_sum += _host(loss)
        if length is None:
            length = batch.lengths.to("cpu").numpy()
    assert length is not None
    return DrawScores(
        scores=(sums[0] + sums[1]) / draws,
        loss=loss_sum / draws,
        length=length,
        halves=sums / np.array([[half], [draws - half]], dtype=np.float64),
        per_draw=per_draw if keep else None,
    )


def check_mean_gradient(scorer: Scorer, draws: int, schedule: str = "independent") -> None:
    """Refuse ``mask_reduce="mean-gradient"`` where it has no meaning.

    Args:
        scorer: The run's scorer.
        draws: Mask draws ``K``.
        schedule: The resolved masking schedule
            (:func:`~biocoreset.data.masking.resolve_schedule`).

    Raises:
        ConfigError: Fewer than two draws, the ``"cover"`` schedule (``U`` is unbiased only for
            independent draws), or a scorer without a curvature quadratic form.

    >>> from types import SimpleNamespace
    >>> check_mean_gradient(SimpleNamespace(name="self-influence"), 4, "cover")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    biocoreset.errors.ConfigError: mask_reduce='mean-gradient' needs independent mask draws, ...
    """
    if draws < 2:
        raise ConfigError(
            f"mask_reduce='mean-gradient' needs mask_draws >= 2 (got {draws}); use mask_draws=K >= 2 "
            "or mask_reduce='mean-score'."
        )
    if schedule == "cover":
        raise ConfigError(MEAN_GRADIENT_COVER)
    if scorer.name != "self-influence":
        raise ConfigError(
            f"mask_reduce='mean-gradient' is defined for the 'self-influence' scorer (any curvature: "
            f"identity, diagonal, kfac, ekfac), not {scorer.name!r}; use mask_reduce='mean-score'."
        )


def concat_batches(batches: Sequence[Batch]) -> Batch:
    """One batch of the rows of ``batches`` (draw-major), which share one padded width.

    Raises:
        ConfigError: The batches have different widths (not draws of the same records).
    """
    first = batches[0]
    if any(b.input_ids.shape != first.input_ids.shape for b in batches):
        raise ConfigError("the mask draws of one batch collated to different widths.")
    extra: dict[str, Any] = {}
    for key, value in first.extra.items():
        if isinstance(value, torch.Tensor) and value.dim() and value.shape[0] == len(first):
            extra[key] = torch.cat([b.extra[key] for b in batches])
        else:
            extra[key] = value
    return attrs.evolve(
        first,
        ids=tuple(i for b in batches for i in b.ids),
        input_ids=torch.cat([b.input_ids for b in batches]),
        attention_mask=torch.cat([b.attention_mask for b in batches]),
        labels=torch.cat([b.labels for b in batches]),
        lengths=torch.cat([b.lengths for b in batches]),
        extra=extra,
    )


def _unbiased(group: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """``(‖Σ_k g_k‖² − Σ_k ‖g_k‖²) / (K(K−1))`` from the group form and the per-draw forms."""
    return (group - rows.sum(0)) / (k * (k - 1))


def mean_gradient_draws(
    scorer: Scorer,
    adapter: ModelAdapter,
    records: Sequence[tuple[str, str]],
    engine: Any,
    curvature: CurvatureEstimator | None,
    *,
    seed: int,
    draws: int,
) -> DrawScores:
    """Score ``records`` by the unbiased estimate of ``‖E_m g‖²_W`` over ``draws`` masks.

    The ``K`` draws of the batch are collated as one batch of ``K·B`` rows (draw-major) and run
    through the engine once. For each block the curvature's quadratic form is taken of each row
    (``‖g_k‖²_W``) and of each sample's group of rows (``‖Σ_k g_k‖²_W``,
    :func:`~biocoreset.grads.groups.group_factors`), so

    ``U = (‖Σ_k g_k‖²_W − Σ_k ‖g_k‖²_W) / (K(K−1))``,

    the mean over ordered pairs ``k ≠ l`` of ``g_kᵀ W g_l``: unbiased for ``‖E_m g‖²_W`` and free of
    the mask-noise term ``tr(W Σ_m)`` that the mean score carries. It can be ``<= 0``. With
    ``K >= 4`` the halves (``⌊K/2⌋`` and ``⌈K/2⌉`` draws) get their own ``U`` for the split-half
    stability (two more group forms); with ``K < 4`` ``halves`` is ``None``. The batch holds
    ``K·B`` rows at once: memory is ``K`` times one draw's.
    """
    own = capabilities(adapter).masking
    schedule = "independent" if own is None else resolve_schedule(own.schedule, draws)
    check_mean_gradient(scorer, draws, schedule)
    if curvature is None:
        raise ConfigError("the 'self-influence' scorer needs a curvature (e.g. 'diagonal').")
    n = len(records)
    batch = concat_batches(
        [adapter.collate(list(records), seed=seed, draw=k, draws=draws) for k in range(draws)]
    )
    half = draws // 2
    with_halves = draws >= 4
    rows_total = BatchTotal(n * draws)
    groups = [BatchTotal(n) for _ in range(3 if with_halves else 1)]

    def on_block(factors: LayerFactors) -> None:
        rows_total.add(curvature.quadratic_form(factors))
        groups[0].add(curvature.quadratic_form(group_factors(factors, draws)))
        if with_halves:
            cut = n * half
            for total, part, k in (
                (groups[1], slice(0, cut), half),
                (groups[2], slice(cut, None), draws - half),
            ):
                total.add(curvature.quadratic_form(group_factors(factors, k, part)))

    losses = engine.run(batch, on_block)
    per_row, host_losses = rows_total.to_host(losses)
    rows = per_row.numpy().reshape(draws, n)
    forms = [t.to_host()[0].numpy() for t in groups]
    halves = None
    if with_halves:
        halves = np.stack(
            [_unbiased(forms[1], rows[:half], half), _unbiased(forms[2], rows[half:], draws - half)]
        )
    return DrawScores(
        scores=_unbiased(forms[0], rows, draws),
        loss=host_losses.numpy().reshape(draws, n).mean(0),
        length=batch.lengths[:n].to("cpu").numpy(),
        halves=halves,
    )


def stability_figures(halves: np.ndarray, lengths: np.ndarray, draws: int) -> dict[str, Any]:
    """``metadata["stability"]``: :func:`~biocoreset.stats.split_half_stability` of the two
    half-means (oriented: higher = more influential), with and without length.

    Keys: ``draws``, ``split_half`` (Spearman ρ of the half-means), ``projected`` (its
    Spearman–Brown projection to ``K`` draws: an estimate of the ρ between two runs with different
    seeds that ran up to 0.1 high in the measurements, ``docs/trust.md``), ``single_draw``, ``draws_for_target``, ``target`` and the same with a
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

"""The fit phase: accumulate the curvature's statistics over ``D_sub`` (or every row).

Batches are length-grouped (:func:`~biocoreset.scoring.streaming.rank_batches`); under ``torchrun``
batch ``j`` goes to rank ``j mod R`` and the statistics are summed over ranks in ``fit_end``. Per-
sample gradients do not depend on batch companions, so the curvature equals a single-process,
file-order fit up to the order of floating-point sums.

With ``mask_draws = K`` every batch is accumulated under the same ``K`` masks as it is scored
with, and ``fit_end`` divides by ``K·m`` gradient samples: the curvature is the mean over the draws
of each draw's empirical Fisher (for K-FAC, the mean over draws of the factor statistics), so
``K = 1`` is unchanged. The curvature's own ``fit_samples`` then counts ``K·m`` gradient samples.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from biocoreset.config import ScoreConfig
from biocoreset.data.sources import SequenceSource
from biocoreset.errors import ConfigError
from biocoreset.protocols import CurvatureEstimator, Engine, ModelAdapter, MultiPassCurvature
from biocoreset.runtime.distributed import DistContext, current
from biocoreset.runtime.progress import progress_bar, progress_enabled
from biocoreset.scoring.streaming import (
    Row,
    grouping_window,
    length_key,
    only_rows,
    rank_batches,
)

__all__ = ["fit_curvature"]


def fit_curvature(
    curvature: CurvatureEstimator,
    adapter: ModelAdapter,
    engine: Engine,
    source: SequenceSource | Callable[[], Iterable[Row]],
    subset: np.ndarray | None,
    config: ScoreConfig,
    ctx: DistContext | None = None,
    *,
    num_rows: int | None = None,
) -> None:
    """Fit ``curvature`` on the ``subset`` rows; under ``torchrun`` batches are split over ranks and
    the statistics summed in ``fit_end``. A curvature with ``fit_passes = k`` (e.g. EK-FAC) gets
    ``k`` rounds of "accumulate over every batch, then ``fit_end``".

    Args:
        curvature: The estimator.
        adapter: The adapter.
        engine: The per-sample gradient engine.
        source: A source (read unvalidated), or a callable returning a validated row stream.
        subset: Sorted rows to fit on, or ``None`` for every row (then ``num_rows`` is required).
        config: Batch size, token budget, length window, seed and progress settings.
        ctx: Distributed context (default: this process's).
        num_rows: Number of rows when ``subset`` is ``None``.

    Raises:
        ConfigError: ``subset`` is ``None`` and ``num_rows`` is not given.
    """
    ctx = ctx or current()
    if subset is not None:
        m = len(subset)
    elif num_rows is not None:
        m = int(num_rows)
    else:
        raise ConfigError("fit_curvature needs num_rows when subset is None (fit on every row).")
    draws = int(config.mask_draws)
    m *= draws  # gradient samples: the Fisher is the mean over draws of each draw's Fisher
    curvature.fit_begin(engine.blocks)
    reduce = ctx.all_reduce_ if ctx.is_distributed else None
    if not curvature.needs_fit:
        curvature.fit_end(m, reduce)
        return
    passes = int(curvature.fit_passes) if isinstance(curvature, MultiPassCurvature) else 1
    show = progress_enabled(config.progress) and ctx.is_main
    for p in range(passes):
        if isinstance(source, SequenceSource):
            stream: Iterable[Row] = ((i, rid, seq) for i, (rid, seq) in enumerate(source))
        else:
            stream = source()
        batches = rank_batches(
            only_rows(stream, subset),
            config.batch_size,
            ctx,
            window=grouping_window(adapter, config.batch_size, config.length_window),
            max_tokens=config.max_tokens,
            length=length_key(adapter),
        )
        desc = "fit curvature" if passes == 1 else f"fit curvature ({p + 1}/{passes})"
        with progress_bar(enabled=show, total=m, desc=desc, unit="seq") as bar:
            for batch in batches:
                recs = [(rid, seq) for _, rid, seq in batch]
                if draws == 1:
                    engine.run(adapter.collate(recs, seed=config.seed), curvature.fit_accumulate)
                for k in range(draws if draws > 1 else 0):
                    batch_k = adapter.collate(recs, seed=config.seed, draw=k, draws=draws)
                    engine.run(batch_k, curvature.fit_accumulate)
                bar.update(len(batch) * ctx.world_size * draws)
        curvature.fit_end(m, reduce)

"""The front door: :func:`score` and :func:`select`.

Example:
    >>> from biocoreset import score, select
    >>> from biocoreset.testing import tiny_esm, random_rna
    >>> model, tokenizer = tiny_esm()
    >>> result = score(model, random_rna(12), tokenizer=tokenizer, subset=4, batch_size=4)
    >>> len(result), result.metadata["curvature"]
    (12, 'diagonal')
    >>> select(result, method="topk", budget=3).ids.__len__()
    3
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

import attrs
import numpy as np
import torch

from biocoreset.config import ScoreConfig, SelectConfig
from biocoreset.data.sources import SequenceSource, as_source
from biocoreset.errors import ConfigError, InputError
from biocoreset.grads import make_engine
from biocoreset.plugins import get_registry
from biocoreset.protocols import CurvatureEstimator, ModelAdapter, Scorer
from biocoreset.selectors.budget import resolve_budget
from biocoreset.store.result import ScoreResult

__all__ = [
    "Selection",
    "choose_subset",
    "fit_curvature",
    "iter_batches",
    "resolve_adapter",
    "score",
    "select",
]


def _progress(enabled: bool | None) -> bool:
    return sys.stderr.isatty() if enabled is None else bool(enabled)


def _tqdm(iterable: Any, *, enabled: bool | None, **kw: Any) -> Any:
    from tqdm.auto import tqdm

    return tqdm(iterable, disable=not _progress(enabled), dynamic_ncols=True, **kw)


def resolve_adapter(model: Any, *, adapter: str = "auto", tokenizer: Any = None, **options: Any) -> ModelAdapter:
    """Return ``model`` if it is already an adapter, else wrap it with the named adapter.

    ``"auto"`` uses the generic ``hf`` adapter.
    """
    if isinstance(model, ModelAdapter):
        if tokenizer is not None or options:
            raise ConfigError("tokenizer/adapter options apply only when score() is given a bare model.")
        return model
    name = "hf" if adapter == "auto" else adapter
    factory = get_registry().get("adapter", name).factory
    return factory(model=model, tokenizer=tokenizer, **options)  # type: ignore[no-any-return]


def _read_ids(source: SequenceSource) -> list[str]:
    ids: list[str] = []
    first: dict[str, int] = {}
    for i, (rid, _) in enumerate(source):
        if rid in first:
            raise InputError(
                f"duplicate sequence id {rid!r}: records {first[rid] + 1} and {i + 1} of "
                f"{source.describe()}. Ids must be unique; rename or drop one."
            )
        first[rid] = i
        ids.append(rid)
    if not ids:
        raise InputError(f"{source.describe()} holds no sequences.")
    return ids


def choose_subset(ids: Sequence[str], subset: Any, seed: int) -> np.ndarray:
    """Indices (ascending) of ``D_sub``: a seeded random subset, or the given ids.

    Args:
        ids: All sequence ids in input order.
        subset: Size (int), fraction (float) or explicit ids; ``None`` is 1% (at least 256).
        seed: Seed of the random choice.

    >>> choose_subset(["a", "b", "c"], ["c", "a"], 0).tolist()
    [0, 2]
    """
    n = len(ids)
    if subset is not None and not isinstance(subset, (int, float)):
        where = {rid: i for i, rid in enumerate(ids)}
        wanted = list(subset)
        missing = [rid for rid in wanted if rid not in where]
        if missing:
            raise InputError(
                f"{len(missing)} subset id(s) are not in the sequences, e.g. {missing[:3]!r}."
            )
        if not wanted:
            raise InputError("the explicit subset is empty.")
        return np.array(sorted({where[rid] for rid in wanted}), dtype=np.int64)
    if subset is None:
        m = min(n, max(256, math.ceil(0.01 * n)))
    elif isinstance(subset, int):
        if subset > n:
            raise ConfigError(f"subset size {subset} exceeds the {n} sequences.")
        m = subset
    else:
        m = max(1, math.floor(float(subset) * n))
    rng = np.random.default_rng([int(seed), 0x5B])
    return np.sort(rng.choice(n, size=m, replace=False)).astype(np.int64)


def iter_batches(
    source: SequenceSource, batch_size: int, keep: np.ndarray | None = None
) -> Iterator[tuple[np.ndarray, list[tuple[str, str]]]]:
    """Yield ``(row indices, records)`` batches in input order, optionally only rows in ``keep``."""
    wanted = None if keep is None else set(keep.tolist())
    rows: list[int] = []
    recs: list[tuple[str, str]] = []
    for i, rec in enumerate(source):
        if wanted is not None and i not in wanted:
            continue
        rows.append(i)
        recs.append(rec)
        if len(recs) == batch_size:
            yield np.array(rows, dtype=np.int64), recs
            rows, recs = [], []
    if recs:
        yield np.array(rows, dtype=np.int64), recs


def fit_curvature(
    curvature: CurvatureEstimator,
    adapter: ModelAdapter,
    engine: Any,
    source: SequenceSource,
    subset: np.ndarray,
    config: ScoreConfig,
) -> None:
    """Fit ``curvature`` on the ``subset`` rows of ``source``."""
    curvature.fit_begin(engine.blocks)
    if curvature.needs_fit:
        batches = iter_batches(source, config.batch_size, subset)
        total = math.ceil(len(subset) / config.batch_size)
        for _, recs in _tqdm(batches, enabled=config.progress, total=total, desc="fit curvature", unit="batch"):
            batch = adapter.collate(recs, seed=config.seed)
            engine.run(batch, curvature.fit_accumulate)
    curvature.fit_end(len(subset), None)


def score(
    model: Any,
    sequences: Any,
    *,
    tokenizer: Any = None,
    adapter: str = "auto",
    adapter_options: dict[str, Any] | None = None,
    config: ScoreConfig | None = None,
    **options: Any,
) -> ScoreResult:
    """Score every sequence by subset-based self-influence (or another scorer).

    Args:
        model: A :class:`~biocoreset.protocols.ModelAdapter`, or a bare masked LM (wrapped with
            ``adapter``; for Hugging Face models pass ``tokenizer``).
        sequences: A FASTA path, or an iterable of ``(id, sequence)`` pairs.
        tokenizer: Tokenizer for a bare Hugging Face model.
        adapter: Adapter name for a bare model (``"auto"``: ``"hf"``).
        adapter_options: Extra adapter options (``masking`` is taken from the config).
        config: A :class:`~biocoreset.config.ScoreConfig`; keyword ``options`` override its fields
            (``curvature``, ``subset``, ``damping``, ``batch_size``, ``seed``, ``parameters``...).

    Returns:
        A :class:`~biocoreset.store.result.ScoreResult` in input order.
    """
    cfg = config or ScoreConfig()
    unknown = set(options) - {f.name for f in attrs.fields(ScoreConfig)}
    if unknown:
        raise ConfigError(
            f"unknown score() option(s) {sorted(unknown)}; valid: "
            f"{', '.join(f.name for f in attrs.fields(ScoreConfig))}."
        )
    cfg = attrs.evolve(cfg, **options)
    a_opts = dict(adapter_options or {})
    if not isinstance(model, ModelAdapter):
        a_opts.setdefault("masking", cfg.masking)
    adp = resolve_adapter(model, adapter=adapter, tokenizer=tokenizer, **a_opts)
    registry = get_registry()
    scorer: Scorer = registry.get("scorer", cfg.scorer).factory()
    curvature: CurvatureEstimator | None = None
    if scorer.needs_curvature:
        curvature = registry.get("curvature", cfg.curvature).factory(
            damping=cfg.damping, damping_relative=cfg.damping_relative, **cfg.curvature_options
        )

    source = as_source(sequences)
    t0 = time.time()
    ids = _read_ids(source)
    subset = choose_subset(ids, cfg.subset, cfg.seed)
    params = adp.scored_parameters(cfg.parameters)
    engine = make_engine(adp, params, engine=cfg.engine)

    was_training = adp.model.training
    adp.model.eval()
    try:
        if curvature is not None:
            fit_curvature(curvature, adp, engine, source, subset, cfg)
        n = len(ids)
        scores = np.empty(n, dtype=np.float64)
        losses = np.empty(n, dtype=np.float64)
        lengths = np.empty(n, dtype=np.int64)
        total = math.ceil(n / cfg.batch_size)
        batches = iter_batches(source, cfg.batch_size)
        for rows, recs in _tqdm(batches, enabled=cfg.progress, total=total, desc="score", unit="batch"):
            batch = adp.collate(recs, seed=cfg.seed)
            s, loss = scorer.score_batch(adp, batch, engine, curvature)
            scores[rows] = s.numpy()
            losses[rows] = loss.numpy()
            lengths[rows] = batch.lengths.numpy()
    finally:
        adp.model.train(was_training)

    from biocoreset import __version__

    meta: dict[str, Any] = {
        "scorer": scorer.name,
        "curvature": curvature.name if curvature is not None else None,
        "damping": None,
        "adapter": adp.name,
        "seed": cfg.seed,
        "batch_size": cfg.batch_size,
        "masking": {"probability": cfg.masking.probability, "replacement": list(cfg.masking.replacement)},
        "subset_ids": [ids[i] for i in subset.tolist()],
        "subset_size": len(subset),
        "num_scored_parameters": int(sum(p.numel() for p in params.values())),
        "scored_parameter_patterns": list(cfg.parameters) if cfg.parameters else None,
        "engine": getattr(engine, "name", type(engine).__name__),
        "source": source.describe(),
        "num_sequences": n,
        "adapter_stats": dict(getattr(adp, "stats", {})),
        "seconds": round(time.time() - t0, 3),
        "biocoreset_version": __version__,
        "torch_version": torch.__version__,
    }
    if curvature is not None:
        meta.update(curvature.metadata())
    return ScoreResult(ids=ids, scores=scores, loss=losses, length=lengths, metadata=meta)


@attrs.frozen(kw_only=True)
class Selection:
    """A selected coreset.

    Attributes:
        indices: Selected row indices (ascending) into the scores.
        ids: Selected ids (``None`` when plain scores were given).
        method: Selector name.
        budget: Number selected.
        seed: Seed used.
        options: Selector options.
        plan: The selector's plan where it has one (CCI: cut, strata, counts), else ``None``.
    """

    indices: np.ndarray
    ids: list[str] | None
    method: str
    budget: int
    seed: int
    options: dict[str, Any]
    plan: Any = None


def select(
    scores: ScoreResult | Sequence[float] | np.ndarray,
    method: str = "cci",
    *,
    budget: int | float,
    seed: int = 0,
    **options: Any,
) -> Selection:
    """Select a coreset from scores.

    Args:
        scores: A :class:`ScoreResult` or an array of scores.
        method: Selector name: ``"cci"`` (default), ``"topk"``, ``"random"`` or a plugin's.
        budget: A count, or a fraction of the number of scores.
        seed: Seed of random choices.
        **options: Selector options (CCI: ``beta=0.05``, ``strata=50``).

    >>> select([0.3, 0.1, 0.9, 0.5], "topk", budget=2).indices.tolist()
    [2, 3]
    """
    cfg = SelectConfig(method=method, budget=budget, seed=seed, options=options)
    ids = scores.ids if isinstance(scores, ScoreResult) else None
    values = scores.scores if isinstance(scores, ScoreResult) else np.asarray(scores, dtype=np.float64)
    if values.ndim != 1:
        raise InputError(f"scores must be one-dimensional, got shape {values.shape}.")
    k = resolve_budget(cfg.budget, values.size)
    selector = get_registry().get("selector", cfg.method).factory(**cfg.options)
    plan = selector.plan(values, k, seed=cfg.seed) if hasattr(selector, "plan") else None
    idx = plan.selected if plan is not None else np.asarray(selector.select(values, k, seed=cfg.seed))
    idx = np.asarray(idx, dtype=np.int64)
    return Selection(
        indices=idx,
        ids=[ids[i] for i in idx.tolist()] if ids is not None else None,
        method=cfg.method,
        budget=k,
        seed=cfg.seed,
        options=dict(cfg.options),
        plan=plan,
    )

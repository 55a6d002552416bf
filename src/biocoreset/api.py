"""The front door: :func:`score` and :func:`select`.

Scoring streams the input in three passes and holds no sequence beyond the current batch:

1. **index** — every record is validated against the adapter's alphabet
   (:mod:`biocoreset.data.validation`), counted and hashed; duplicate ids are found with 8 bytes per
   record; ``D_sub`` is drawn by row number;
2. **fit** — the curvature is fitted on the ``D_sub`` rows (or on every row with ``fit_on="all"``);
3. **score** — rows are scored in shards of ``shard_size``; with ``output=`` each shard is written
   to disk as soon as it is done, so a rerun after a crash resumes (:mod:`biocoreset.store.shards`).

Under ``torchrun`` the fit and the shards are split over the ranks
(:mod:`biocoreset.train.distributed`) and one merged result is written.

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

import hashlib
import math
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import attrs
import numpy as np
import torch

from biocoreset.config import ScoreConfig
from biocoreset.data.readers import ByteCounter
from biocoreset.data.sources import SequenceSource, as_source
from biocoreset.data.validation import SourceIndex, Validator, scan_source
from biocoreset.errors import ConfigError, InputError
from biocoreset.grads import make_engine
from biocoreset.plugins import get_registry
from biocoreset.progress import progress_bar, progress_enabled
from biocoreset.protocols import CurvatureEstimator, ModelAdapter, Scorer
from biocoreset.runtime.distributed import DistContext, current
from biocoreset.selection import Selection, select
from biocoreset.store.result import ScoreResult
from biocoreset.store.shards import MemorySink, ScoreStore, fingerprint_hash

__all__ = [
    "Selection",
    "choose_subset",
    "choose_subset_rows",
    "fit_curvature",
    "index_source",
    "iter_batches",
    "iter_rows",
    "model_fingerprint",
    "resolve_adapter",
    "score",
    "score_to_file",
    "select",
]


def resolve_adapter(
    model: Any, *, adapter: str = "auto", tokenizer: Any = None, **options: Any
) -> ModelAdapter:
    """Return ``model`` if it is already an adapter, else wrap it with the named adapter.

    ``"auto"`` uses the generic ``hf`` adapter.
    """
    if isinstance(model, ModelAdapter):
        if tokenizer is not None or options:
            raise ConfigError(
                "tokenizer/adapter options apply only when score() is given a bare model."
            )
        return model
    name = "hf" if adapter == "auto" else adapter
    factory = get_registry().get("adapter", name).factory
    adp: ModelAdapter = factory(model=model, tokenizer=tokenizer, **options)
    return adp


# -- D_sub ---------------------------------------------------------------------------------------


def choose_subset_rows(
    n: int, subset: Any, seed: int, positions: Mapping[str, int] | None = None
) -> np.ndarray:
    """Rows (ascending) of ``D_sub`` among ``n`` rows.

    Args:
        n: Number of rows.
        subset: Size (int), fraction (float), explicit ids (then ``positions`` maps them to rows),
            or ``None`` (1% of the rows, at least 256, all if fewer).
        seed: Seed of the random draw.
        positions: Row of each explicit id found in the data.

    Raises:
        ConfigError: A size larger than ``n``.
        InputError: Explicit ids missing from the data, or an empty list.

    >>> choose_subset_rows(10, 3, 0).size
    3
    """
    if subset is not None and not isinstance(subset, (int, float)):
        wanted = list(subset)
        if not wanted:
            raise InputError("the explicit subset is empty.")
        where = positions or {}
        missing = [rid for rid in wanted if rid not in where]
        if missing:
            raise InputError(
                f"{len(missing)} subset id(s) are not in the sequences, e.g. {missing[:3]!r}."
            )
        return np.array(sorted({where[rid] for rid in wanted}), dtype=np.int64)
    if subset is None:
        m = min(n, max(256, math.ceil(0.01 * n)))
    elif isinstance(subset, int):
        if subset > n:
            raise ConfigError(
                f"subset size {subset} exceeds the {n} sequences; choose a D_sub size <= {n} or a fraction."
            )
        m = subset
    else:
        m = max(1, math.floor(float(subset) * n))
    rng = np.random.default_rng([int(seed), 0x5B])
    return np.sort(rng.choice(n, size=m, replace=False)).astype(np.int64)


def choose_subset(ids: Sequence[str] | int, subset: Any, seed: int) -> np.ndarray:
    """Indices (ascending) of ``D_sub``: a seeded random subset, or the given ids.

    Args:
        ids: All sequence ids in input order (or just their number).
        subset: Size (int), fraction (float) or explicit ids; ``None`` is 1% (at least 256).
        seed: Seed of the random choice.

    >>> choose_subset(["a", "b", "c"], ["c", "a"], 0).tolist()
    [0, 2]
    """
    if isinstance(ids, int):
        return choose_subset_rows(ids, subset, seed)
    positions = None
    if subset is not None and not isinstance(subset, (int, float)):
        positions = {rid: i for i, rid in enumerate(ids)}
    return choose_subset_rows(len(ids), subset, seed, positions)


# -- streaming -------------------------------------------------------------------------------------


def iter_rows(source: SequenceSource, validator: Validator) -> Iterator[tuple[int, str, str]]:
    """``(row, id, sequence)`` of the records the validator keeps, in input order."""
    return ((row, rid, seq) for row, (rid, seq) in enumerate(validator.iter(source.iter())))


def _only_rows(
    stream: Iterable[tuple[int, str, str]], rows: np.ndarray | None
) -> Iterator[tuple[int, str, str]]:
    """The items of ``stream`` whose row is in the sorted ``rows`` (stops after the last); every
    item when ``rows`` is ``None``."""
    if rows is None:
        yield from stream
        return
    wanted = rows.tolist()
    j = 0
    if not wanted:
        return
    for item in stream:
        if item[0] == wanted[j]:
            yield item
            j += 1
            if j == len(wanted):
                return


def iter_batches(
    source: SequenceSource, batch_size: int, keep: np.ndarray | None = None
) -> Iterator[tuple[np.ndarray, list[tuple[str, str]]]]:
    """Yield ``(row indices, records)`` batches in input order, optionally only rows in ``keep``.

    Records are not validated here (see :func:`iter_rows`).
    """
    stream: Iterable[tuple[int, str, str]] = ((i, rid, seq) for i, (rid, seq) in enumerate(source))
    if keep is not None:
        stream = _only_rows(stream, np.sort(np.asarray(keep, dtype=np.int64)))
    rows: list[int] = []
    recs: list[tuple[str, str]] = []
    for i, rid, seq in stream:
        rows.append(i)
        recs.append((rid, seq))
        if len(recs) == batch_size:
            yield np.array(rows, dtype=np.int64), recs
            rows, recs = [], []
    if recs:
        yield np.array(rows, dtype=np.int64), recs


def index_source(
    source: SequenceSource,
    validator: Validator,
    *,
    wanted_ids: Iterable[str] | None = None,
    progress: bool | None = None,
) -> SourceIndex:
    """The index pass (see :func:`biocoreset.data.validation.scan_source`) with a progress bar:
    bytes read (with ETA) for files, records for in-memory data."""
    size = source.size_bytes
    counter = ByteCounter()
    if size is not None:
        bar = progress_bar(
            enabled=progress, total=size, desc="read", unit="B", unit_scale=True, unit_divisor=1024
        )
    else:
        bar = progress_bar(enabled=progress, total=source.num_records, desc="read", unit="seq")

    def tick(count: int) -> None:
        done = counter.bytes_read if size is not None else count
        bar.update(done - bar.n)

    try:
        return scan_source(
            lambda: source.iter(counter),
            validator,
            wanted_ids=wanted_ids,
            where=source.describe(),
            on_record=tick,
        )
    finally:
        bar.close()


def model_fingerprint(model: torch.nn.Module) -> str:
    """Hex hash of a model's parameters and buffers (names, dtypes, shapes and bytes).

    >>> a = torch.nn.Linear(2, 2); model_fingerprint(a) == model_fingerprint(a)
    True
    """
    h = hashlib.blake2b(digest_size=16)
    for name, t in model.state_dict().items():
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


# -- the fit -------------------------------------------------------------------------------------


def _global_batches(
    stream: Iterable[tuple[int, str, str]], batch_size: int, ctx: DistContext
) -> Iterator[tuple[np.ndarray, list[tuple[str, str]]]]:
    """Consecutive batches of ``stream``; batch ``j`` is kept by rank ``j mod world_size``."""
    rows: list[int] = []
    recs: list[tuple[str, str]] = []
    j = 0
    for row, rid, seq in stream:
        rows.append(row)
        recs.append((rid, seq))
        if len(recs) == batch_size:
            if j % ctx.world_size == ctx.rank:
                yield np.array(rows, dtype=np.int64), recs
            rows, recs, j = [], [], j + 1
    if recs and j % ctx.world_size == ctx.rank:
        yield np.array(rows, dtype=np.int64), recs


def fit_curvature(
    curvature: CurvatureEstimator,
    adapter: ModelAdapter,
    engine: Any,
    source: SequenceSource | Callable[[], Iterable[tuple[int, str, str]]],
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
        config: Batch size, seed and progress settings.
        ctx: Distributed context (default: this process's).
        num_rows: Number of rows when ``subset`` is ``None``.
    """
    ctx = ctx or current()
    if subset is None and num_rows is None:
        raise ConfigError("fit_curvature needs num_rows when subset is None (fit on every row).")
    m = len(subset) if subset is not None else int(num_rows)  # type: ignore[arg-type]
    curvature.fit_begin(engine.blocks)
    reduce = ctx.all_reduce_ if ctx.is_distributed else None
    if not curvature.needs_fit:
        curvature.fit_end(m, reduce)
        return
    passes = int(getattr(curvature, "fit_passes", 1))
    n_batches = math.ceil(m / config.batch_size)
    mine = len(range(ctx.rank, n_batches, ctx.world_size))
    for p in range(passes):
        if isinstance(source, SequenceSource):
            stream: Iterable[tuple[int, str, str]] = (
                (i, rid, seq) for i, (rid, seq) in enumerate(source)
            )
        else:
            stream = source()
        batches = _global_batches(_only_rows(stream, subset), config.batch_size, ctx)
        desc = "fit curvature" if passes == 1 else f"fit curvature ({p + 1}/{passes})"
        with progress_bar(
            batches,
            enabled=progress_enabled(config.progress) and ctx.is_main,
            total=mine,
            desc=desc,
            unit="batch",
        ) as bar:
            for _, recs in bar:
                batch = adapter.collate(recs, seed=config.seed)
                engine.run(batch, curvature.fit_accumulate)
        curvature.fit_end(m, reduce)


# -- score -------------------------------------------------------------------------------------


def _resolve_config(config: ScoreConfig | None, options: Mapping[str, Any]) -> ScoreConfig:
    cfg = config or ScoreConfig()
    names = [f.name for f in attrs.fields(ScoreConfig)]
    unknown = set(options) - set(names)
    if unknown:
        raise ConfigError(
            f"unknown score() option(s) {sorted(unknown)}; valid: {', '.join(names)}."
        )
    return attrs.evolve(cfg, **options)


def _components(
    model: Any,
    tokenizer: Any,
    adapter: str,
    adapter_options: Mapping[str, Any] | None,
    cfg: ScoreConfig,
) -> tuple[ModelAdapter, Scorer, CurvatureEstimator | None]:
    a_opts = dict(adapter_options or {})
    if not isinstance(model, ModelAdapter):
        a_opts.setdefault("masking", cfg.masking)
        if cfg.loss_mode != "masked":
            a_opts.setdefault("loss_mode", cfg.loss_mode)
    adp = resolve_adapter(model, adapter=adapter, tokenizer=tokenizer, **a_opts)
    mode = getattr(adp, "loss_mode", "masked")
    if cfg.loss_mode != "masked" and mode != cfg.loss_mode:
        raise ConfigError(
            f"the config asks for loss_mode={cfg.loss_mode!r} but the adapter was built with "
            f"loss_mode={mode!r}; build the adapter with loss_mode={cfg.loss_mode!r}."
        )
    registry = get_registry()
    scorer: Scorer = registry.get("scorer", cfg.scorer).factory()
    curvature: CurvatureEstimator | None = None
    if scorer.needs_curvature:
        curvature = registry.get("curvature", cfg.curvature).factory(
            damping=cfg.damping, damping_relative=cfg.damping_relative, **cfg.curvature_options
        )
    return adp, scorer, curvature


def _jsonable_subset(subset: Any) -> Any:
    if subset is None or isinstance(subset, (int, float)):
        return subset
    ids = sorted(str(s) for s in subset)
    return {"ids": len(ids), "sha256": hashlib.sha256("\n".join(ids).encode("utf-8")).hexdigest()}


def _fingerprint(
    cfg: ScoreConfig,
    adp: ModelAdapter,
    scorer: Scorer,
    curvature: CurvatureEstimator | None,
    params: Mapping[str, torch.nn.Parameter],
    engine: Any,
    index: SourceIndex,
) -> dict[str, Any]:
    from biocoreset import __version__

    masking = getattr(adp, "masking", cfg.masking)
    return {
        "scorer": scorer.name,
        "curvature": curvature.name if curvature is not None else None,
        "curvature_options": cfg.curvature_options,
        "damping": cfg.damping,
        "damping_relative": cfg.damping_relative,
        "batch_size": cfg.batch_size,
        "seed": cfg.seed,
        "subset": _jsonable_subset(cfg.subset),
        "subset_seed": cfg.subset_seed,
        "parameters": hashlib.sha256("\n".join(params).encode("utf-8")).hexdigest(),
        "engine": getattr(engine, "name", type(engine).__name__),
        "masking": {"probability": masking.probability, "replacement": list(masking.replacement)},
        "fit_on": cfg.fit_on,
        "negate": cfg.negate,
        "invalid": cfg.invalid,
        "replacement": cfg.replacement,
        "adapter": adp.name,
        "loss_mode": getattr(adp, "loss_mode", "masked"),
        "max_length": getattr(adp, "max_length", None),
        "long_policy": getattr(adp, "long_policy", None),
        "model": model_fingerprint(adp.model),
        "data": index.digest,
        "biocoreset_version": __version__,
    }


def _pending_rows(n: int, size: int, done: set[int], ctx: DistContext) -> int:
    total = 0
    for k in range(ctx.rank, math.ceil(n / size), ctx.world_size):
        if k not in done:
            total += min(size, n - k * size)
    return total


class _Run:
    """One scoring run: components, input, configuration and where the rows go."""

    def __init__(
        self,
        adp: ModelAdapter,
        scorer: Scorer,
        curvature: CurvatureEstimator | None,
        source: SequenceSource,
        cfg: ScoreConfig,
    ) -> None:
        self.adp, self.scorer, self.curvature, self.source, self.cfg = (
            adp,
            scorer,
            curvature,
            source,
            cfg,
        )
        self.ctx = current(auto_init=True)
        self.show = progress_enabled(cfg.progress) and self.ctx.is_main
        self.timing: dict[str, float] = {}

    def validator(self) -> Validator:
        return Validator.for_adapter(
            self.adp,
            policy=self.cfg.invalid,
            replacement=self.cfg.replacement,
            where=self.source.describe(),
        )

    def rows(self) -> Iterator[tuple[int, str, str]]:
        return iter_rows(self.source, self.validator())

    def execute(
        self, output: str | os.PathLike[str] | None, force: bool
    ) -> tuple[dict[str, Any], Any]:
        cfg, ctx, adp = self.cfg, self.ctx, self.adp
        t_start = time.perf_counter()
        store = ScoreStore(output) if output is not None else None
        if store is not None:
            store.check_output(force=force)  # fail before any work (every rank sees the same file)
        t = time.perf_counter()
        wanted = (
            None if cfg.subset is None or isinstance(cfg.subset, (int, float)) else list(cfg.subset)
        )
        validator = self.validator()
        index = index_source(self.source, validator, wanted_ids=wanted, progress=self.show)
        n = index.num_rows
        subset_seed = cfg.seed if cfg.subset_seed is None else cfg.subset_seed
        subset = choose_subset_rows(n, cfg.subset, subset_seed, index.positions)
        fit_rows = subset if cfg.fit_on == "subset" else None  # None: every row
        self.timing["index"] = time.perf_counter() - t

        params = adp.scored_parameters(cfg.parameters)
        engine = make_engine(adp, params, engine=cfg.engine)
        fingerprint = _fingerprint(cfg, adp, self.scorer, self.curvature, params, engine, index)
        size = cfg.rows_per_shard
        sink: ScoreStore | MemorySink
        resumed = False
        if store is not None:
            resumed = ctx.main_only(
                lambda: store.prepare(fingerprint, num_rows=n, shard_size=size, force=force)
            )
            if not ctx.is_main:
                store.attach(fingerprint)
            sink = store
        else:
            sink = MemorySink(n)
        done = sink.completed_shards()
        ctx.barrier()  # every rank has listed the finished shards before anyone writes new ones

        was_training = adp.model.training
        adp.model.eval()
        try:
            t = time.perf_counter()
            restored = False
            if self.curvature is not None:
                if store is not None and resumed:
                    self.curvature.fit_begin(engine.blocks)
                    ok = store.load_curvature(self.curvature, getattr(adp, "device", "cpu"))
                    restored = all(ctx.all_gather_object(ok))
                if not restored:
                    fit_curvature(
                        self.curvature, adp, engine, self.rows, fit_rows, cfg, ctx, num_rows=n
                    )
                    if store is not None and ctx.is_main:
                        store.save_curvature(self.curvature)
            self.timing["fit"] = time.perf_counter() - t
            t = time.perf_counter()
            # hygiene counts of the scoring pass only (the fit pass tokenises D_sub a second time)
            stats_before = Counter(getattr(adp, "stats", {}))
            subset_ids = self._score_pass(engine, sink, n, size, done, subset)
            score_stats = Counter(getattr(adp, "stats", {})) - stats_before
            self.timing["score"] = time.perf_counter() - t
        finally:
            adp.model.train(was_training)
        ctx.barrier()

        from biocoreset import __version__

        meta: dict[str, Any] = {
            "scorer": self.scorer.name,
            "curvature": self.curvature.name if self.curvature is not None else None,
            "damping": None,
            "adapter": adp.name,
            "seed": cfg.seed,
            "subset_seed": subset_seed,
            "batch_size": cfg.batch_size,
            "masking": fingerprint["masking"],
            "loss_mode": fingerprint["loss_mode"],
            "fit_on": cfg.fit_on,
            "fit_samples": n if fit_rows is None else len(fit_rows),
            "negated": cfg.negate,
            "subset_ids": subset_ids,
            "subset_size": len(subset),
            "num_scored_parameters": int(sum(p.numel() for p in params.values())),
            "scored_parameter_patterns": list(cfg.parameters) if cfg.parameters else None,
            "engine": fingerprint["engine"],
            "source": self.source.describe(),
            "reader": self.source.reader_options(),
            "num_sequences": n,
            "validation": index.report.as_dict(),
            "adapter_stats": dict(score_stats),
            "config_hash": fingerprint_hash(fingerprint),
            "data_digest": index.digest,
            "world_size": ctx.world_size,
            "resumed_shards": len(done),
            "curvature_restored": bool(
                store is not None and resumed and self.curvature is not None and restored
            ),
            "biocoreset_version": __version__,
            "torch_version": torch.__version__,
        }
        if self.curvature is not None:
            meta.update(self.curvature.metadata())
        t = time.perf_counter()
        if store is not None:
            meta["timing"] = {k: round(v, 3) for k, v in self.timing.items()}
            meta["seconds"] = round(time.perf_counter() - t_start, 3)

            def merge() -> None:
                with progress_bar(enabled=self.show, total=n, desc="merge", unit="seq") as bar:
                    store.merge(meta, force=force, progress=bar.update)

            ctx.main_only(merge)
            return meta, store.output
        parts = (
            ctx.all_gather_object(sink.local_parts())
            if ctx.is_distributed
            else [sink.local_parts()]
        )  # type: ignore[union-attr]
        self.timing["merge"] = time.perf_counter() - t
        meta["timing"] = {k: round(v, 3) for k, v in self.timing.items()}
        meta["seconds"] = round(time.perf_counter() - t_start, 3)
        return meta, _assemble(parts, n)

    def _score_pass(
        self,
        engine: Any,
        sink: ScoreStore | MemorySink,
        n: int,
        size: int,
        done: set[int],
        subset: np.ndarray,
    ) -> list[str]:
        ctx = self.ctx
        subset_list = subset.tolist()
        j = 0
        subset_ids: list[str] = []
        total = _pending_rows(n, size, done, ctx)
        pending: list[tuple[int, str, str]] = []
        with progress_bar(enabled=self.show, total=total, desc="score", unit="seq") as bar:
            for row, rid, seq in self.rows():
                if j < len(subset_list) and row == subset_list[j]:
                    subset_ids.append(rid)
                    j += 1
                k = row // size
                if k % ctx.world_size != ctx.rank or k in done:
                    continue
                pending.append((row, rid, seq))
                if row == min((k + 1) * size, n) - 1:
                    self._score_shard(k, pending, engine, sink, bar)
                    pending = []
        assert not pending, "internal error: an incomplete shard was left over"
        return subset_ids

    def _score_shard(
        self,
        k: int,
        items: list[tuple[int, str, str]],
        engine: Any,
        sink: ScoreStore | MemorySink,
        bar: Any,
    ) -> None:
        cfg = self.cfg
        m = len(items)
        scores = np.empty(m, dtype=np.float64)
        losses = np.empty(m, dtype=np.float64)
        lengths = np.empty(m, dtype=np.int64)
        for start in range(0, m, cfg.batch_size):
            chunk = items[start : start + cfg.batch_size]
            batch = self.adp.collate([(rid, seq) for _, rid, seq in chunk], seed=cfg.seed)
            s, loss = self.scorer.score_batch(self.adp, batch, engine, self.curvature)
            stop = start + len(chunk)
            scores[start:stop] = s.detach().to("cpu", torch.float64).numpy()
            losses[start:stop] = loss.detach().to("cpu", torch.float64).numpy()
            lengths[start:stop] = batch.lengths.to("cpu").numpy()
            bar.update(len(chunk))
        if cfg.negate:
            scores = -scores
        sink.write_shard(
            k, [r for r, _, _ in items], [rid for _, rid, _ in items], scores, losses, lengths
        )


def _assemble(
    parts: list[tuple[np.ndarray, list[str], np.ndarray, np.ndarray, np.ndarray]], n: int
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    rows = np.concatenate([p[0] for p in parts])
    ids_all = [i for p in parts for i in p[1]]
    order = np.argsort(rows, kind="stable")
    if rows.size != n or not np.array_equal(rows[order], np.arange(n)):
        raise InputError(
            f"internal error: scored rows do not cover 0..{n - 1} exactly once; please report this."
        )
    ids = [ids_all[i] for i in order.tolist()]
    scores = np.concatenate([p[2] for p in parts])[order]
    loss = np.concatenate([p[3] for p in parts])[order]
    length = np.concatenate([p[4] for p in parts])[order]
    return ids, scores, loss, length


def score(
    model: Any,
    sequences: Any,
    *,
    tokenizer: Any = None,
    adapter: str = "auto",
    adapter_options: dict[str, Any] | None = None,
    config: ScoreConfig | None = None,
    output: str | os.PathLike[str] | None = None,
    force: bool = False,
    **options: Any,
) -> ScoreResult:
    """Score every sequence by subset-based self-influence (or another scorer).

    Args:
        model: A :class:`~biocoreset.protocols.ModelAdapter`, or a bare masked LM (wrapped with
            ``adapter``; for Hugging Face models pass ``tokenizer``).
        sequences: A sequence file path (FASTA/FASTQ/CSV/TSV, plain or gzip), a
            :class:`~biocoreset.data.sources.SequenceSource` (e.g. from
            :func:`~biocoreset.data.sources.open_sequences` for table columns), or an iterable of
            ``(id, sequence)`` pairs.
        tokenizer: Tokenizer for a bare Hugging Face model.
        adapter: Adapter name for a bare model (``"auto"``: ``"hf"``).
        adapter_options: Extra adapter options (``masking`` is taken from the config).
        config: A :class:`~biocoreset.config.ScoreConfig`; keyword ``options`` override its fields
            (``curvature``, ``subset``, ``damping``, ``batch_size``, ``seed``, ``parameters``...).
        output: Write the scores to this Parquet file, shard by shard as they are computed; rerunning
            the same call after a crash resumes (see :mod:`biocoreset.store.shards`).
        force: Overwrite an existing ``output`` and discard an unfinished run.

    Returns:
        A :class:`~biocoreset.store.result.ScoreResult` in input order (rows dropped by validation
        excluded). Under ``torchrun`` every rank returns the merged result.

    Raises:
        OutputExistsError: ``output`` exists and ``force`` is false.
        ConfigError: A bad option, or an unfinished run in ``output`` with a different configuration.
        InputError: Bad input (the message names the record).
    """
    cfg = _resolve_config(config, options)
    adp, scorer, curvature = _components(model, tokenizer, adapter, adapter_options, cfg)
    run = _Run(adp, scorer, curvature, as_source(sequences), cfg)
    meta, out = run.execute(output, force)
    if output is not None:
        return ScoreResult.load(out)
    ids, scores, loss, length = out
    return ScoreResult(ids=ids, scores=scores, loss=loss, length=length, metadata=meta)


def score_to_file(
    model: Any,
    sequences: Any,
    output: str | os.PathLike[str],
    *,
    tokenizer: Any = None,
    adapter: str = "auto",
    adapter_options: dict[str, Any] | None = None,
    config: ScoreConfig | None = None,
    force: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """Like :func:`score` with ``output=``, but return only the metadata (the scores of a large corpus
    are never loaded into memory). Used by ``biocoreset score``.

    Returns:
        The metadata written with the scores.
    """
    cfg = _resolve_config(config, options)
    adp, scorer, curvature = _components(model, tokenizer, adapter, adapter_options, cfg)
    meta, _ = _Run(adp, scorer, curvature, as_source(sequences), cfg).execute(output, force)
    return meta

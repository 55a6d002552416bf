"""One scoring run, phase by phase: index → (restore or) fit → score shards → merge.

:class:`ScoringRun` holds the components, the input and the configuration; :meth:`ScoringRun.execute`
runs the phases in order:

1. **index** (:mod:`~biocoreset.scoring.index`) — validate, count and hash every record, then draw
   ``D_sub`` from the ids (:mod:`~biocoreset.scoring.subset`);
2. **sink** — the score store (resumable file output, :mod:`biocoreset.store.shards`) or memory, and
   the shard size (given, resumed, or sized from the rows and ranks);
3. **fit** (:mod:`~biocoreset.scoring.fit`) — the curvature on ``D_sub`` (or restored when resuming);
4. **score** — every shard of this rank, batches length-grouped inside the shard, results written
   back in row order;
5. **finish** — the metadata record (:mod:`~biocoreset.scoring.metadata`), then the merged file or
   the gathered result.
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from typing import Any

import attrs
import numpy as np
import torch

from biocoreset._version import __version__
from biocoreset.config import ScoreConfig
from biocoreset.data.batching import length_batches
from biocoreset.data.masking import resolve_schedule
from biocoreset.data.sources import SequenceSource
from biocoreset.data.validation import SourceIndex, Validator, sequence_hash
from biocoreset.errors import BioCoresetWarning, ConfigError
from biocoreset.grads import make_engine
from biocoreset.protocols import CurvatureEstimator, Engine, ModelAdapter, Scorer, capabilities
from biocoreset.runtime.distributed import current
from biocoreset.runtime.progress import progress_bar, progress_enabled
from biocoreset.scoring.draws import (
    RELIABILITY_WARNING,
    check_mean_gradient,
    score_draws,
    stability_figures,
)
from biocoreset.scoring.fingerprint import run_fingerprint, run_masking
from biocoreset.scoring.fit import fit_curvature
from biocoreset.scoring.index import index_source
from biocoreset.scoring.metadata import ScoreMetadata
from biocoreset.scoring.streaming import (
    OpenShards,
    Row,
    auto_shard_size,
    grouping_window,
    iter_rows,
    length_key,
    pending_rows,
)
from biocoreset.scoring.subset import SUBSET_RULE, draw_subset, explicit_ids, subset_order
from biocoreset.store.shards import MemorySink, ScoreStore, Sink, fingerprint_hash

__all__ = ["RunState", "ScoringRun"]


@attrs.frozen(kw_only=True)
class RunState:
    """What the phases after the index share, built once by :meth:`ScoringRun.execute`.

    Attributes:
        sink: Where shards go: the score store (a resumable file) or memory; it implements every
            phase (:class:`~biocoreset.store.shards.Sink`), so no phase asks which it is.
        index: The index pass's result (the id hashes already freed).
        subset: ``D_sub``'s rows, sorted.
        params: The scored parameters.
        engine: The per-sample gradient engine.
        fingerprint: Every setting that changes a score (see :mod:`~biocoreset.scoring.fingerprint`).
        shard_size: Rows per shard (given, resumed or sized from the rows and ranks).
        resumed: Whether the store resumed an earlier run.
        done: Shards already written before this run.
        force: Whether an existing output may be replaced.
        t_start: When the run started (``time.perf_counter()``).
    """

    sink: Sink
    index: SourceIndex
    subset: np.ndarray
    params: dict[str, torch.nn.Parameter]
    engine: Engine
    fingerprint: dict[str, Any]
    shard_size: int
    resumed: bool
    done: set[int]
    force: bool
    t_start: float

    @property
    def num_rows(self) -> int:
        """Rows to score."""
        return self.index.num_rows


class ScoringRun:
    """One scoring run: components, input, configuration, and where the rows go.

    Args:
        adapter: The model adapter.
        scorer: The scorer.
        curvature: The curvature (``None`` for scorers without one).
        source: The input.
        config: The configuration.
    """

    def __init__(
        self,
        adapter: ModelAdapter,
        scorer: Scorer,
        curvature: CurvatureEstimator | None,
        source: SequenceSource,
        config: ScoreConfig,
    ) -> None:
        self.adp, self.scorer, self.curvature = adapter, scorer, curvature
        self.source, self.cfg = source, config
        self.ctx = current(auto_init=True)
        self.show = progress_enabled(config.progress) and self.ctx.is_main
        self.timing: dict[str, float] = {}
        self.window = grouping_window(adapter, config.batch_size, config.length_window)
        if config.mask_draws > 1 and capabilities(adapter).loss_mode == "paper-compat":
            raise ConfigError(
                f"mask_draws={config.mask_draws} needs a masked loss, but the adapter's loss_mode is "
                "'paper-compat' (no masking: every draw would be the same); use mask_draws=1."
            )
        if config.mask_reduce == "mean-gradient":
            schedule = resolve_schedule(run_masking(adapter, config).schedule, config.mask_draws)
            check_mean_gradient(scorer, config.mask_draws, schedule)

    # -- input ---------------------------------------------------------------------------------

    def validator(self) -> Validator:
        """A fresh validator for one pass over the input."""
        return Validator.for_adapter(
            self.adp,
            policy=self.cfg.invalid,
            replacement=self.cfg.replacement,
            where=self.source.describe(),
        )

    def rows(self) -> Iterator[Row]:
        """The validated rows, in input order."""
        return iter_rows(self.source, self.validator())

    def _rows_as_read(self) -> Iterator[tuple[int, str, str, str]]:
        """:meth:`rows` with each row's sequence as read (before validation) appended."""
        validator = self.validator()
        row = 0
        for number, (rid, raw) in enumerate(self.source.iter(), start=1):
            seq = validator(number, rid, raw)
            if seq is not None:
                yield row, rid, seq, raw
                row += 1

    @contextlib.contextmanager
    def _timed(self, phase: str) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            self.timing[phase] = time.perf_counter() - t

    # -- the run -------------------------------------------------------------------------------

    def execute(
        self, output: str | os.PathLike[str] | None, force: bool
    ) -> tuple[dict[str, Any], Any]:
        """Run every phase; return the metadata and either the output file (with ``output``) or
        ``(ids, scores, loss, length)`` in row order."""
        t_start = time.perf_counter()
        store = ScoreStore(output) if output is not None else None
        if store is not None:
            store.check_output(force=force)  # fail before any work (every rank sees the same file)
        with self._timed("index"):
            index = index_source(
                self.source,
                self.validator(),
                wanted_ids=explicit_ids(self.cfg.subset),
                progress=self.show,
            )
            subset = draw_subset(index, self.cfg.subset, self.subset_seed)
            index = attrs.evolve(index, id_hashes=np.empty(0, dtype=np.uint64))  # 8 B/row freed
        params = self.adp.scored_parameters(self.cfg.parameters)
        engine = make_engine(self.adp, params, engine=self.cfg.engine, **engine_options(self.cfg))
        fingerprint = run_fingerprint(
            self.cfg, self.adp, self.scorer, self.curvature, params, engine, index
        )
        try:
            sink, size, resumed = self._sink(store, fingerprint, index.num_rows, force)
            state = RunState(
                sink=sink,
                index=index,
                subset=subset,
                params=params,
                engine=engine,
                fingerprint=fingerprint,
                shard_size=size,
                resumed=resumed,
                done=sink.completed_shards(),
                force=force,
                t_start=t_start,
            )
            return self._run(state)
        finally:
            if store is not None:
                store.release_lock()  # every way out (an error, Ctrl-C); merge removed it on success

    def _run(self, state: RunState) -> tuple[dict[str, Any], Any]:
        self.ctx.barrier()  # every rank has listed the finished shards before anyone writes new ones
        was_training = self.adp.model.training
        self.adp.model.eval()
        try:
            with self._timed("fit"):
                restored = self._fit(state)
            with self._timed("score"):
                stats_before = Counter(capabilities(self.adp).stats)
                subset_ids = self._score_pass(state)
                # hygiene counts of the scoring pass only (the fit pass tokenises D_sub again)
                score_stats = Counter(capabilities(self.adp).stats) - stats_before
        finally:
            self.adp.model.train(was_training)
        self.ctx.barrier()
        stability = self._stability(state)
        meta = self._metadata(state, subset_ids, restored, score_stats)
        meta = attrs.evolve(meta, stability=stability)
        return self._finish(state, meta)

    @property
    def subset_seed(self) -> int:
        """The seed of the ``D_sub`` draw."""
        return self.cfg.seed if self.cfg.subset_seed is None else self.cfg.subset_seed

    def _sink(
        self, store: ScoreStore | None, fingerprint: dict[str, Any], n: int, force: bool
    ) -> tuple[Sink, int, bool]:
        """Where shards go (the store, or memory without one), the shard size, and whether the
        store resumed an earlier run."""
        ctx, cfg = self.ctx, self.cfg
        size = cfg.shard_size or auto_shard_size(n, ctx.world_size, cfg.batch_size)
        if store is None:
            return MemorySink(n), size, False
        auto = cfg.shard_size is None
        resumed: bool = ctx.main_only(
            lambda: store.prepare(
                fingerprint, num_rows=n, shard_size=size, force=force, adopt_shard_size=auto
            )
        )
        if not ctx.is_main:
            store.attach(fingerprint)
        assert store.manifest is not None
        return store, int(store.manifest["shard_size"]), resumed

    def _fit(self, state: RunState) -> bool:
        """Fit the curvature (or restore it when resuming); whether it was restored."""
        curvature, sink, subset = self.curvature, state.sink, state.subset
        if curvature is None:
            return False
        if state.resumed:
            curvature.fit_begin(state.engine.blocks)
            ok = sink.load_curvature(curvature, capabilities(self.adp).device)
            if all(self.ctx.all_gather_object(ok)):
                return True
        fit_rows = subset if self.cfg.fit_on == "subset" else None  # None: every row
        fit_curvature(
            curvature,
            self.adp,
            state.engine,
            self.rows,
            fit_rows,
            self.cfg,
            self.ctx,
            num_rows=state.num_rows,
        )
        if self.ctx.is_main:
            sink.save_curvature(curvature)
        return False

    def _score_pass(self, state: RunState) -> list[str]:
        """Score this rank's unfinished shards; return ``D_sub``'s ids (in canonical order).

        The rank's rows stream through length-grouped windows that may span several of its shards
        (a window of small shards would pack badly); each shard is written, whole and in row
        order, as soon as its last row is scored. When the adapter is not composition-free the
        window is one batch, and batches stay aligned with the shards (whole batches each).
        """
        ctx, cfg = self.ctx, self.cfg
        n, size, done, subset = state.num_rows, state.shard_size, state.done, state.subset
        in_subset = np.zeros(n, dtype=bool)
        in_subset[subset] = True
        subset_ids: list[str] = []

        hashes: dict[int, int] = {}  # rows in flight -> hash of the sequence as read

        def mine() -> Iterator[Row]:
            for row, rid, seq, raw in self._rows_as_read():
                if in_subset[row]:
                    subset_ids.append(rid)
                k = row // size
                if k % ctx.world_size == ctx.rank and k not in done:
                    hashes[row] = sequence_hash(raw)
                    yield row, rid, seq

        batches = length_batches(
            mine(),
            batch_size=cfg.batch_size,
            window=self.window,
            max_tokens=cfg.max_tokens,
            length=length_key(self.adp),
        )
        shards = OpenShards(n, size)
        total = pending_rows(n, size, done, ctx)
        with progress_bar(enabled=self.show, total=total, desc="score", unit="seq") as bar:
            for chunk in batches:
                res = score_draws(
                    self.scorer,
                    self.adp,
                    [(rid, seq) for _, rid, seq in chunk],
                    state.engine,
                    self.curvature,
                    seed=cfg.seed,
                    draws=cfg.mask_draws,
                    reduce=cfg.mask_reduce,
                    keep=cfg.keep_draws,
                )
                sign = -1.0 if cfg.negate else 1.0
                for _, shard in shards.put(
                    chunk,
                    sign * res.scores,
                    res.loss,
                    res.length,
                    hashes,
                    res.halves,
                    None if res.per_draw is None else sign * res.per_draw,
                ):
                    state.sink.write_shard(shard)
                bar.update(len(chunk))
        shards.check_closed()
        return [subset_ids[i] for i in subset_order(subset_ids, cfg.subset, self.subset_seed)]

    def _stability(self, state: RunState) -> dict[str, Any] | None:
        """Split-half stability of the mask draws (``mask_draws >= 2``; on every rank), with a
        :class:`~biocoreset.errors.BioCoresetWarning` when the projected reliability is low."""
        draws = self.cfg.mask_draws
        if draws < 2 or (self.cfg.mask_reduce == "mean-gradient" and draws < 4):
            return None  # mean-gradient halves need two draws each
        halves = state.sink.gather_halves(self.ctx)  # every rank: it may be a collective

        def figures() -> dict[str, Any]:
            assert halves is not None  # rank 0 always has them
            return stability_figures(*halves, draws)

        figs = self.ctx.main_only(figures)
        if self.ctx.is_main and not figs["projected"] >= RELIABILITY_WARNING:
            warnings.warn(
                f"the scores are not stable across mask draws: the projected reliability "
                f"{figs['projected']:.3f} < {RELIABILITY_WARNING} at mask_draws={draws} (an "
                f"estimate of two runs' Spearman ρ that ran up to 0.1 high in the measurements, "
                f"docs/trust.md); about {figs['draws_for_target']:.0f} draws would reach "
                f"{RELIABILITY_WARNING}. Raise mask_draws, or select with debias='length'.",
                BioCoresetWarning,
                stacklevel=2,
            )
        return figs

    def _metadata(
        self, state: RunState, subset_ids: list[str], restored: bool, score_stats: Counter[str]
    ) -> ScoreMetadata:
        cfg, n, index, subset = self.cfg, state.num_rows, state.index, state.subset
        fingerprint, params = state.fingerprint, state.params
        return ScoreMetadata(
            scorer=self.scorer.name,
            curvature=self.curvature.name if self.curvature is not None else None,
            adapter=self.adp.name,
            seed=cfg.seed,
            subset_seed=self.subset_seed,
            subset_rule="explicit-ids" if explicit_ids(cfg.subset) is not None else SUBSET_RULE,
            subset_size=len(subset),
            subset_ids=subset_ids,
            batch_size=cfg.batch_size,
            max_tokens=cfg.max_tokens,
            length_window=self.window // cfg.batch_size,
            shard_size=state.shard_size,
            masking=fingerprint["masking"],
            mask_draws=cfg.mask_draws,
            mask_reduce=cfg.mask_reduce,
            mask_schedule=resolve_schedule(run_masking(self.adp, cfg).schedule, cfg.mask_draws),
            keep_draws=cfg.keep_draws,
            loss_mode=fingerprint["loss_mode"],
            fit_on=cfg.fit_on,
            fit_samples=n if cfg.fit_on == "all" else len(subset),
            negated=cfg.negate,
            num_scored_parameters=int(sum(p.numel() for p in params.values())),
            scored_parameter_patterns=list(cfg.parameters) if cfg.parameters else None,
            engine=fingerprint["engine"],
            autocast=cfg.autocast,
            source=self.source.describe(),
            reader=self.source.reader_options(),
            num_sequences=n,
            validation=index.report.as_dict(),
            adapter_stats=dict(score_stats),
            config_hash=fingerprint_hash(fingerprint),
            data_digest=index.digest,
            world_size=self.ctx.world_size,
            resumed_shards=len(state.done),
            curvature_restored=restored,
            biocoreset_version=__version__,
            torch_version=torch.__version__,
            curvature_info=self.curvature.metadata() if self.curvature is not None else {},
        )

    def _finish(self, state: RunState, meta: ScoreMetadata) -> tuple[dict[str, Any], Any]:
        """The stamped metadata, and what the sink finishes with: the final file of the store,
        or the :class:`~biocoreset.store.shard_parts.ScoreColumns` of memory."""
        stamped: dict[str, Any] = {}

        def metadata() -> dict[str, Any]:  # once every result is in: the timing is complete
            timing = {k: round(v, 3) for k, v in self.timing.items()}
            seconds = round(time.perf_counter() - state.t_start, 3)
            stamped.update(attrs.evolve(meta, timing=timing, seconds=seconds).to_dict())
            return stamped

        with (
            self._timed("merge"),
            progress_bar(enabled=self.show, total=state.num_rows, desc="merge", unit="seq") as bar,
        ):
            out = state.sink.finish(metadata, self.ctx, force=state.force, progress=bar.update)
        return stamped or metadata(), out


def engine_options(cfg: ScoreConfig) -> dict[str, Any]:
    """The engine options a score configuration asks for (``autocast`` needs the hook engine).

    Raises:
        ConfigError: ``autocast`` with ``engine="loop"``.

    >>> engine_options(ScoreConfig(autocast="bf16"))
    {'autocast': 'bf16'}
    """
    if cfg.autocast is None:
        return {}
    if cfg.engine == "loop":
        raise ConfigError(
            f"autocast={cfg.autocast!r} needs the hook engine; use engine='auto' or 'hooks', or "
            "drop autocast."
        )
    return {"autocast": cfg.autocast}

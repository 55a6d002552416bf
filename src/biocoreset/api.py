"""The front door of scoring: :func:`score` (and :func:`score_to_file`, what ``biocoreset score``
runs); :func:`~biocoreset.selection.select` lives in :mod:`biocoreset.selection`.

Scoring streams the input and holds no sequence beyond the current shard; the phases live in
:mod:`biocoreset.scoring` — the index pass (validation, duplicate ids, ``D_sub`` drawn from the ids),
the curvature fit on ``D_sub``, and scoring in shards (length-grouped batches, each shard written as
soon as it is done with ``output=``, so a rerun after a crash resumes). Under ``torchrun`` the fit and
the shards are split over the ranks and one merged result is written.

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

import os
from typing import Any

from biocoreset.config import ScoreConfig
from biocoreset.data.sources import as_source
from biocoreset.diagnose.advice import emit, fit_advice, length_advice, score_file_advice
from biocoreset.runtime.distributed import current
from biocoreset.scoring import ScoringRun, build_components, resolve_config
from biocoreset.store.atomic import check_not_input
from biocoreset.store.result import ScoreResult

__all__ = ["score", "score_to_file"]


def _execute(
    model: Any, sequences: Any, cfg: ScoreConfig, output: Any, force: bool, **components: Any
) -> tuple[dict[str, Any], Any]:
    """Build the components (``tokenizer=, adapter=, adapter_options=``) and run the phases."""
    if output is not None:
        seqs = [sequences] if isinstance(sequences, (str, os.PathLike)) else sequences
        paths = (
            [p for p in seqs if isinstance(p, (str, os.PathLike))] if isinstance(seqs, list) else []
        )
        if isinstance(model, (str, os.PathLike)):
            paths.append(model)
        check_not_input(paths, [output, f"{os.fspath(output)}.parts"], command="score")
    if isinstance(model, (str, os.PathLike)):  # a model folder or file, loaded as the CLI does
        from biocoreset.modelio import load_model

        name = components.get("adapter", "auto")
        model = load_model(
            model,
            adapter=None if name == "auto" else name,
            options=components.get("adapter_options"),
        )
        components = {**components, "tokenizer": None, "adapter": "auto", "adapter_options": None}
    adp, scorer, curvature = build_components(model, cfg=cfg, **components)
    return ScoringRun(adp, scorer, curvature, as_source(sequences), cfg).execute(output, force)


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
        model: A :class:`~biocoreset.protocols.ModelAdapter`, a bare masked LM (wrapped with
            ``adapter``; for Hugging Face models pass ``tokenizer``), or the path of a model folder
            or file, loaded by :func:`biocoreset.modelio.load_model` with ``adapter`` (``"auto"``:
            the folder's manifest) and ``adapter_options``, as ``--model`` does.
        sequences: A sequence file path (FASTA/FASTQ/CSV/TSV/OAS unit, plain or gzip; Parquet), a
            list of such paths (read as one corpus), a
            :class:`~biocoreset.data.sources.SequenceSource` (e.g. from
            :func:`~biocoreset.data.sources.open_sequences` for table columns), or an iterable of
            ``(id, sequence)`` pairs.
        tokenizer: Tokenizer for a bare Hugging Face model.
        adapter: Adapter name for a bare model (``"auto"``: ``"hf"``).
        adapter_options: Adapter options for a bare model, e.g. ``{"loss_mode": "paper-compat"}``
            (the loss is the adapter's; ``masking`` is taken from the config).
        config: A :class:`~biocoreset.config.ScoreConfig`; keyword ``options`` override its fields
            (``curvature``, ``subset``, ``damping``, ``batch_size``, ``seed``, ``parameters``,
            ``mask_draws``...). ``mask_draws=K`` averages the score, the loss and the ``D_sub``
            Fisher over ``K`` masks per sequence and records split-half stability in
            ``metadata["stability"]`` (see :mod:`biocoreset.scoring.draws` and ``docs/trust.md``).
        output: Write the scores to this Parquet file, shard by shard as they are computed; rerunning
            the same call after a crash resumes (see :mod:`biocoreset.store.shards`).
        force: Replace an existing ``output`` (it stays until the new one is complete) and
            discard an unfinished run of another configuration (one of the same is resumed).

    Warns:
        QualityWarning: A small ``D_sub``, many zero Fisher entries, or scores that follow length
            (see :mod:`biocoreset.diagnose.advice`; each message names its fix).

    Returns:
        A :class:`~biocoreset.store.result.ScoreResult` in input order (rows dropped by validation
        excluded). Under ``torchrun`` every rank returns the merged result.

    Raises:
        OutputExistsError: ``output`` exists and ``force`` is false.
        ConfigError: A bad option, or an unfinished run in ``output`` with a different configuration.
        InputError: Bad input (the message names the record).
    """
    components = {"tokenizer": tokenizer, "adapter": adapter, "adapter_options": adapter_options}
    cfg = resolve_config(config, options)
    meta, out = _execute(model, sequences, cfg, output, force, **components)
    if output is not None:
        result = ScoreResult.load(out)
    else:
        result = ScoreResult(
            ids=out.ids,
            scores=out.scores,
            loss=out.loss,
            length=out.length,
            draws=out.draws,
            metadata=meta,
        )
    emit(fit_advice(meta) + length_advice(result.scores, result.length))
    return result


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
    components = {"tokenizer": tokenizer, "adapter": adapter, "adapter_options": adapter_options}
    cfg = resolve_config(config, options)
    meta, out = _execute(model, sequences, cfg, output, force, **components)
    if current().is_main:
        emit(score_file_advice(out, meta))
    return meta

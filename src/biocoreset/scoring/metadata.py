"""The metadata written with the scores, as a typed record.

:class:`ScoreMetadata` is what a scoring run knows about itself; :meth:`ScoreMetadata.to_dict` gives
the JSON object stored in the score file (and :attr:`ScoreResult.metadata
<biocoreset.store.result.ScoreResult.metadata>`), with the same keys as before the record existed, so
older score files load. The curvature's own facts (its ``metadata()``: the absolute ``damping`` λ,
``damping_mode``, per-block kinds...) are merged into the top level, as before.

Example:
    >>> meta = ScoreMetadata(scorer="self-influence", curvature="diagonal",
    ...                      curvature_info={"curvature": "diagonal", "damping": 0.02})
    >>> d = meta.to_dict(); d["damping"], d["subset_rule"]
    (0.02, 'id-hash-v1')
    >>> ScoreMetadata.from_dict(d) == meta
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from biocoreset.scoring.subset import SUBSET_RULE

__all__ = ["ScoreMetadata"]

_NOT_TOP = ("curvature_info", "extra")


@attrs.frozen(kw_only=True)
class ScoreMetadata:
    """What a scoring run records with its scores.

    Attributes:
        scorer: Scorer name.
        curvature: Curvature name (``None`` for scorers without one).
        adapter: Adapter name.
        seed: Masking seed.
        subset_seed: Seed of the ``D_sub`` draw.
        subset_rule: How ``D_sub`` was drawn: ``"id-hash-v1"`` (a seeded hash of the ids, see
            :mod:`biocoreset.scoring.subset`) or ``"explicit-ids"``.
        subset_size: Size of ``D_sub``.
        subset_ids: ``D_sub``'s ids in canonical order (by key; explicit ids as given), so the
            same whatever the input order.
        batch_size: Most sequences per batch.
        max_tokens: Most padded residues per batch (``None``: no limit).
        length_window: Batches per length-grouping window.
        shard_size: Rows per shard (as resolved; the default is sized from the rows and ranks).
        masking: Masking probability and replacement fractions.
        mask_draws: Masks per sequence ``K`` (scores, losses and the curvature are means over them).
        mask_reduce: How the draws make one score: ``"mean-score"`` (the mean of the per-draw
            scores; files without the key) or ``"mean-gradient"`` (the unbiased estimate of the
            score of the mean gradient, which can be ``<= 0``).
        mask_schedule: How the draws' positions relate: ``"independent"`` (always for ``K = 1``,
            the paper's single random mask) or ``"cover"``.
        keep_draws: Whether the file has every draw's own score (columns ``score_draw_k``).
        stability: Split-half stability of the mask draws (``K >= 2``; see
            :func:`biocoreset.scoring.draws.stability_figures`), else ``None``.
        loss_mode: The adapter's loss.
        fit_on: ``"subset"`` or ``"all"``.
        fit_samples: Sequences the curvature was fitted on.
        negated: Whether the scores are ``-I(z)``.
        num_scored_parameters: Number of scored parameter entries.
        scored_parameter_patterns: The ``parameters`` patterns (``None``: all trainable).
        engine: Per-sample gradient engine.
        autocast: Mixed precision of the forward pass (``None``: the model's dtype).
        source: The input, described.
        reader: How to re-open the input: path, format read, columns, and an OAS unit's metadata
            object as ``unit_metadata`` (``{}`` for in-memory records; ``{"parts": [...]}`` for
            several files).
        num_sequences: Rows scored.
        validation: Validation counts.
        adapter_stats: The adapter's hygiene counts over the scoring pass.
        config_hash: Hash of the run's fingerprint.
        data_digest: Digest of the validated input (in input order).
        world_size: Number of processes.
        resumed_shards: Shards found finished when the run started.
        curvature_restored: Whether the curvature was restored instead of refitted.
        biocoreset_version: Library version.
        torch_version: torch version.
        curvature_info: The curvature's ``metadata()`` (merged into the top level when saved).
        timing: Seconds per phase (``index``, ``fit``, ``score``, ``merge``).
        seconds: Seconds for the whole run.
        extra: Keys this version does not know (kept from a file written by another version).
    """

    scorer: str | None = None
    curvature: str | None = None
    adapter: str | None = None
    seed: int | None = None
    subset_seed: int | None = None
    subset_rule: str = SUBSET_RULE
    subset_size: int | None = None
    subset_ids: list[str] = attrs.field(factory=list)
    batch_size: int | None = None
    max_tokens: int | None = None
    length_window: int | None = None
    shard_size: int | None = None
    masking: dict[str, Any] | None = None
    mask_draws: int = 1
    mask_reduce: str = "mean-score"
    mask_schedule: str | None = None
    keep_draws: bool = False
    stability: dict[str, Any] | None = None
    loss_mode: str | None = None
    fit_on: str | None = None
    fit_samples: int | None = None
    negated: bool = False
    num_scored_parameters: int | None = None
    scored_parameter_patterns: list[str] | None = None
    engine: str | None = None
    autocast: str | None = None
    source: str | None = None
    reader: dict[str, Any] = attrs.field(factory=dict)
    num_sequences: int | None = None
    validation: dict[str, Any] = attrs.field(factory=dict)
    adapter_stats: dict[str, Any] = attrs.field(factory=dict)
    config_hash: str | None = None
    data_digest: str | None = None
    world_size: int = 1
    resumed_shards: int = 0
    curvature_restored: bool = False
    biocoreset_version: str | None = None
    torch_version: str | None = None
    curvature_info: dict[str, Any] = attrs.field(factory=dict)
    timing: dict[str, float] | None = None
    seconds: float | None = None
    extra: dict[str, Any] = attrs.field(factory=dict)

    @property
    def damping(self) -> float | None:
        """The absolute λ used (``None`` without a curvature)."""
        value = self.curvature_info.get("damping")
        return None if value is None else float(value)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object stored in the score file (the keys of earlier versions, plus new ones)."""
        out: dict[str, Any] = {"damping": None}
        for f in attrs.fields(ScoreMetadata):
            if f.name not in _NOT_TOP and not (
                f.name in ("timing", "seconds") and getattr(self, f.name) is None
            ):
                out[f.name] = getattr(self, f.name)
        out.update(self.curvature_info)
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScoreMetadata:
        """Read the metadata of a score file (from this or an earlier version).

        Keys that are not fields are the curvature's (``damping``, ``damping_mode``...) when the
        file names a curvature, else kept in :attr:`extra`.
        """
        names = {f.name for f in attrs.fields(cls)} - set(_NOT_TOP)
        known = {k: v for k, v in data.items() if k in names}
        rest = {k: v for k, v in data.items() if k not in names}
        if "subset_rule" not in data:
            known["subset_rule"] = "row-number"  # files written before D_sub was drawn from ids
        if data.get("curvature") is not None:
            info = {"curvature": data["curvature"], **rest}
            return cls(**known, curvature_info=info)
        rest.pop("damping", None)
        return cls(**known, extra=rest)

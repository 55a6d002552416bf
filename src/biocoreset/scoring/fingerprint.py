"""What determines a run's scores, as a JSON-serialisable fingerprint (resume refuses a change).

Example:
    >>> import torch
    >>> a = torch.nn.Linear(2, 2); model_fingerprint(a) == model_fingerprint(a)
    True
    >>> jsonable_subset(["b", "a"])["ids"], jsonable_subset(0.1)
    (2, 0.1)
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import torch

from biocoreset._version import __version__
from biocoreset.config import ScoreConfig
from biocoreset.data.masking import MaskingConfig, resolve_schedule
from biocoreset.data.validation import SourceIndex
from biocoreset.protocols import CurvatureEstimator, Engine, ModelAdapter, Scorer, capabilities
from biocoreset.scoring.streaming import grouping_window
from biocoreset.scoring.subset import SUBSET_RULE

__all__ = ["jsonable_subset", "model_fingerprint", "run_fingerprint", "run_masking"]


def model_fingerprint(model: torch.nn.Module) -> str:
    """Hex hash of a model's parameters and buffers (names, dtypes, shapes and bytes)."""
    h = hashlib.blake2b(digest_size=16)
    for name, t in model.state_dict().items():
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def jsonable_subset(subset: Any) -> Any:
    """A ``subset`` spec as JSON: sizes and fractions as they are, explicit ids as their count and
    a SHA-256 of the sorted ids."""
    if subset is None or isinstance(subset, (int, float)):
        return subset
    ids = sorted(str(s) for s in subset)
    return {"ids": len(ids), "sha256": hashlib.sha256("\n".join(ids).encode("utf-8")).hexdigest()}


def run_masking(adapter: ModelAdapter, cfg: ScoreConfig) -> MaskingConfig:
    """The masking a run uses: the adapter's own (``capabilities(adapter).masking``), else the
    run's ``cfg.masking``."""
    own = capabilities(adapter).masking
    return own if own is not None else cfg.masking


def run_fingerprint(
    cfg: ScoreConfig,
    adp: ModelAdapter,
    scorer: Scorer,
    curvature: CurvatureEstimator | None,
    params: Mapping[str, torch.nn.Parameter],
    engine: Engine,
    index: SourceIndex,
) -> dict[str, Any]:
    """Every setting that changes a score, the model's hash, the data digest and the version."""
    caps = capabilities(adp)
    masking = run_masking(adp, cfg)
    draws: dict[str, Any] = {}
    if cfg.mask_draws > 1:  # absent for one draw, so earlier single-mask runs still resume
        draws = {
            "mask_draws": cfg.mask_draws,
            "mask_schedule": resolve_schedule(masking.schedule, cfg.mask_draws),
        }
    if cfg.mask_reduce != "mean-score":  # absent for the default, so earlier runs still resume
        draws["mask_reduce"] = cfg.mask_reduce
    if cfg.autocast is not None:  # absent without autocast, so earlier runs still resume
        draws["autocast"] = cfg.autocast
    if cfg.keep_draws:  # the shards' columns differ; absent by default, so earlier runs resume
        draws["keep_draws"] = True
    return {
        **draws,
        "scorer": scorer.name,
        "curvature": curvature.name if curvature is not None else None,
        "curvature_options": cfg.curvature_options,
        "damping": cfg.damping,
        "batch_size": cfg.batch_size,
        "max_tokens": cfg.max_tokens,
        "length_window": grouping_window(adp, 1, cfg.length_window),
        "seed": cfg.seed,
        "subset": jsonable_subset(cfg.subset),
        "subset_seed": cfg.subset_seed,
        "subset_rule": SUBSET_RULE,
        "parameters": hashlib.sha256("\n".join(params).encode("utf-8")).hexdigest(),
        "engine": engine.name,
        "masking": {"probability": masking.probability, "replacement": list(masking.replacement)},
        "fit_on": cfg.fit_on,
        "negate": cfg.negate,
        "invalid": cfg.invalid,
        "replacement": cfg.replacement,
        "adapter": adp.name,
        "loss_mode": caps.loss_mode,
        "max_length": caps.max_length,
        "long_policy": caps.long_policy,
        "model": model_fingerprint(adp.model),
        "data": index.digest,
        "biocoreset_version": __version__,
    }

"""The components of a scoring run: the configuration from keyword options, the adapter, the scorer
and the curvature, resolved by name through the plugin registry.

Example:
    >>> resolve_config(None, {"damping": 1e-3}).damping
    0.001
    >>> resolve_config(None, {"damping_relative": 0.1})
    Traceback (most recent call last):
    ...
    biocoreset.errors.ConfigError: damping_relative was merged into damping: pass damping='0.1*mean' (λ relative to the mean curvature entry) or damping=1e-3 (absolute).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from biocoreset.config import ScoreConfig, damping_options
from biocoreset.errors import ConfigError, did_you_mean
from biocoreset.plugins import get_registry
from biocoreset.protocols import CurvatureEstimator, ModelAdapter, Scorer

__all__ = ["build_components", "resolve_adapter", "resolve_config"]

_MOVED = {
    "damping_relative": lambda v: (
        f"damping_relative was merged into damping: pass damping='{v!r}*mean' (λ relative to the "
        "mean curvature entry) or damping=1e-3 (absolute)."
    ),
    "loss_mode": lambda v: (
        f"loss_mode is the adapter's option: pass adapter_options={{'loss_mode': {v!r}}} with a "
        f"bare model, or build the adapter with loss_mode={v!r}."
    ),
}


def resolve_adapter(
    model: Any, *, adapter: str = "auto", tokenizer: Any = None, **options: Any
) -> ModelAdapter:
    """Return ``model`` if it is already an adapter, else wrap it with the named adapter.

    ``"auto"`` uses the generic ``hf`` adapter.

    Raises:
        ConfigError: A tokenizer or adapter options given with a ready adapter.
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


def resolve_config(config: ScoreConfig | None, options: Mapping[str, Any]) -> ScoreConfig:
    """``config`` (default :class:`ScoreConfig`) with the keyword ``options`` of ``score()`` applied.

    Raises:
        ConfigError: An unknown option (with a did-you-mean), or one that has moved (the message
            gives the new form).
    """
    cfg = config or ScoreConfig()
    names = [f.name for f in attrs.fields(ScoreConfig)]
    for key, value in options.items():
        if key in _MOVED:
            raise ConfigError(_MOVED[key](value))
    unknown = sorted(set(options) - set(names))
    if unknown:
        raise ConfigError(
            f"unknown score() option(s) {unknown};{did_you_mean(unknown[0], names)} valid: "
            f"{', '.join(names)}."
        )
    return attrs.evolve(cfg, **options)


def build_components(
    model: Any,
    *,
    tokenizer: Any,
    adapter: str,
    adapter_options: Mapping[str, Any] | None,
    cfg: ScoreConfig,
) -> tuple[ModelAdapter, Scorer, CurvatureEstimator | None]:
    """The adapter (wrapping a bare model with ``cfg.masking``), the scorer and, when the scorer
    needs one, the curvature (with ``cfg.damping`` and ``cfg.curvature_options``)."""
    a_opts = dict(adapter_options or {})
    if not isinstance(model, ModelAdapter):
        a_opts.setdefault("masking", cfg.masking)
    adp = resolve_adapter(model, adapter=adapter, tokenizer=tokenizer, **a_opts)
    registry = get_registry()
    scorer: Scorer = registry.get("scorer", cfg.scorer).factory()
    curvature: CurvatureEstimator | None = None
    if scorer.needs_curvature:
        curvature = registry.get("curvature", cfg.curvature).factory(
            **damping_options(cfg.damping), **cfg.curvature_options
        )
    return adp, scorer, curvature

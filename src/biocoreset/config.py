"""Frozen configuration objects (``attrs.frozen(kw_only=True)``; use :func:`attrs.evolve` for variants)."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import attrs

from biocoreset.data.masking import MaskingConfig
from biocoreset.errors import ConfigError

__all__ = ["MaskingConfig", "ScoreConfig", "SelectConfig", "SubsetSpec"]

SubsetSpec = int | float | Sequence[str] | None


def _nonneg_int(name: str, minimum: int = 0):  # type: ignore[no-untyped-def]
    def check(instance: object, attribute: attrs.Attribute, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
            raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}.")

    return check


def _check_subset(instance: object, attribute: attrs.Attribute, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool):
        raise ConfigError(f"subset must be a size, a fraction or a list of ids, got {value!r}.")
    if isinstance(value, numbers.Integral):
        if value < 1:
            raise ConfigError(f"subset size must be >= 1, got {value!r}.")
        return
    if isinstance(value, numbers.Real):
        if not 0.0 < float(value) <= 1.0:
            raise ConfigError(f"subset fraction must be in (0, 1], got {value!r}; pass an int for a size.")
        return
    if isinstance(value, str):
        raise ConfigError("subset must be a list of ids, not a single string; wrap it in a list.")


def _patterns(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


@attrs.frozen(kw_only=True)
class ScoreConfig:
    """Options of :func:`biocoreset.score`.

    Attributes:
        curvature: Curvature name (``"diagonal"``, ``"identity"``, ``"kfac"``, ``"ekfac"``, plugins).
        scorer: Scorer name (``"self-influence"``, ``"loss"``, ``"grad-norm"``, plugins).
        subset: ``D_sub``: a size (int), a fraction of the corpus (float) or explicit ids. Default
            (``None``): 1% of the corpus, at least 256 sequences (all if fewer).
        damping: Absolute λ; when ``None``, ``damping_relative`` × mean curvature.
        damping_relative: Relative λ (default 0.1).
        batch_size: Sequences per batch.
        seed: Seed of ``D_sub`` sampling and masking.
        parameters: Glob patterns of scored parameter names or groups (``None``: all trainable).
        engine: Per-sample gradient engine: ``"auto"``, ``"hooks"`` or ``"loop"``.
        masking: Masking configuration.
        curvature_options: Extra options for the curvature factory.
        progress: Show progress bars (``None``: when stderr is a terminal).
    """

    curvature: str = "diagonal"
    scorer: str = "self-influence"
    subset: SubsetSpec = attrs.field(default=None, validator=_check_subset)
    damping: float | None = attrs.field(default=None, converter=_opt_float)
    damping_relative: float | None = attrs.field(default=None, converter=_opt_float)
    batch_size: int = attrs.field(default=16, validator=_nonneg_int("batch_size", 1))
    seed: int = attrs.field(default=0, validator=_nonneg_int("seed"))
    parameters: tuple[str, ...] | None = attrs.field(default=None, converter=_patterns)
    engine: str = "auto"
    masking: MaskingConfig = attrs.field(factory=MaskingConfig)
    curvature_options: dict[str, Any] = attrs.field(factory=dict)
    progress: bool | None = None


@attrs.frozen(kw_only=True)
class SelectConfig:
    """Options of :func:`biocoreset.select`.

    Attributes:
        method: Selector name (``"cci"``, ``"topk"``, ``"random"``, plugins).
        budget: Count (int) or fraction of the scored sequences (float in (0, 1]).
        seed: Seed of random choices.
        options: Selector options (e.g. ``beta``, ``strata`` for CCI).
    """

    method: str = "cci"
    budget: int | float = 0.1
    seed: int = attrs.field(default=0, validator=_nonneg_int("seed"))
    options: dict[str, Any] = attrs.field(factory=dict)

"""Validators and converters shared by the attrs configs (``attrs.field(validator=...)``).

Each validator factory takes the option's name as it should appear in the message; every failure
is a :class:`~biocoreset.errors.ConfigError` naming the option and showing the bad value.

Example:
    >>> import attrs
    >>> @attrs.frozen(kw_only=True)
    ... class Demo:
    ...     steps: int = attrs.field(default=1, validator=nonneg_int("steps", 1))
    >>> Demo(steps=0)
    Traceback (most recent call last):
    ...
    biocoreset.errors.ConfigError: steps must be an integer >= 1, got 0.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from biocoreset.data.masking import MaskingConfig
from biocoreset.errors import ConfigError, did_you_mean

__all__ = [
    "as_masking",
    "as_patterns",
    "check_subset",
    "nonneg_float",
    "nonneg_int",
    "one_of",
    "opt_float",
    "opt_int",
    "opt_str",
]

Validator = Callable[[Any, Any, Any], None]
"""An attrs validator: ``check(instance, attribute, value)``."""


def nonneg_int(name: str, minimum: int = 0) -> Validator:
    """An integer (not a bool) ``>= minimum``."""

    def check(instance: object, attribute: attrs.Attribute, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
            raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}.")

    return check


def opt_int(name: str, minimum: int = 0) -> Validator:
    """``None`` or an integer ``>= minimum``."""
    inner = nonneg_int(name, minimum)

    def check(instance: object, attribute: attrs.Attribute, value: Any) -> None:
        if value is not None:
            inner(instance, attribute, value)

    return check


def one_of(name: str, choices: Sequence[str]) -> Validator:
    """One of ``choices`` (the message lists them, with a did-you-mean)."""

    def check(instance: object, attribute: attrs.Attribute, value: Any) -> None:
        if value not in choices:
            raise ConfigError(
                f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}."
                f"{did_you_mean(str(value), choices)}"
            )

    return check


def nonneg_float(name: str) -> Validator:
    """``None`` or a finite number ``>= 0``."""

    def check(instance: object, attribute: attrs.Attribute, value: Any) -> None:
        if value is not None and not (value >= 0.0 and value == value and value != float("inf")):
            raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}.")

    return check


def check_subset(instance: object, attribute: attrs.Attribute, value: Any) -> None:
    """A ``D_sub`` spec: ``None``, a size >= 1, a fraction in (0, 1] or a list of ids."""
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
            raise ConfigError(
                f"subset fraction must be in (0, 1], got {value!r}; pass an int for a size."
            )
        return
    if isinstance(value, str):
        raise ConfigError("subset must be a list of ids, not a single string; wrap it in a list.")


def as_patterns(value: Any) -> tuple[str, ...] | None:
    """``None``, or a tuple of glob patterns (one string is one pattern)."""
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def opt_float(value: Any) -> float | None:
    """``None`` or ``float(value)``."""
    return None if value is None else float(value)


def opt_str(value: Any) -> str | None:
    """``None`` for ``None`` or ``""``, else ``str(value)``."""
    return None if value is None or value == "" else str(value)


def as_masking(value: Any) -> MaskingConfig:
    """A :class:`MaskingConfig`, or a mapping of its fields made into one."""
    if isinstance(value, MaskingConfig):
        return value
    if isinstance(value, Mapping):
        return MaskingConfig(**value)
    raise ConfigError(f"masking must be a MaskingConfig or a table of its fields, got {value!r}.")

"""Validators and converters shared by the attrs configuration classes.

Each validator raises :class:`~biocoreset.errors.ConfigError` naming the option, the rule and the
bad value (with a did-you-mean for choices), the house style for configuration errors.

Example:
    >>> import attrs
    >>> @attrs.frozen(kw_only=True)
    ... class Options:
    ...     steps: int = attrs.field(default=1, validator=int_at_least("steps", 1))
    ...     mode: str = attrs.field(default="fast", validator=one_of("mode", ("fast", "exact")))
    >>> Options(mode="exakt")
    Traceback (most recent call last):
    ...
    biocoreset.errors.ConfigError: mode must be one of fast, exact; got 'exakt'. Did you mean 'exact'?
"""

from __future__ import annotations

import math
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
    "float_at_least",
    "int_at_least",
    "nonneg_float",
    "nonneg_int",
    "one_of",
    "opt_float",
    "opt_int",
    "opt_str",
    "optional",
    "optional_float",
]

Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


def int_at_least(name: str, minimum: int = 0) -> Validator:
    """An integer (not a bool) ``>= minimum``.

    >>> int_at_least("epochs", 1)(None, None, 2)
    """

    def check(instance: object, attribute: Any, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
            raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}.")

    return check


def float_at_least(name: str, minimum: float = 0.0, *, strict: bool = False) -> Validator:
    """A finite number ``>= minimum`` (``> minimum`` when ``strict``); ``None`` passes.

    >>> float_at_least("lr", 0.0, strict=True)(None, None, 0.0)
    Traceback (most recent call last):
    ...
    biocoreset.errors.ConfigError: lr must be a finite number > 0, got 0.0.
    """

    def check(instance: object, attribute: Any, value: Any) -> None:
        if value is None:
            return
        ok = isinstance(value, numbers.Real) and math.isfinite(value)
        ok = ok and (value > minimum if strict else value >= minimum)
        if not ok:
            op = ">" if strict else ">="
            raise ConfigError(f"{name} must be a finite number {op} {minimum:g}, got {value!r}.")

    return check


def one_of(name: str, choices: Sequence[str]) -> Validator:
    """One of ``choices`` (the message lists them and suggests the closest).

    >>> one_of("schedule", ("linear", "constant"))(None, None, "linear")
    """
    options = tuple(choices)

    def check(instance: object, attribute: Any, value: Any) -> None:
        if value not in options:
            raise ConfigError(
                f"{name} must be one of {', '.join(options)}; got {value!r}."
                f"{did_you_mean(str(value), options)}"
            )

    return check


def optional(inner: Validator) -> Validator:
    """``None``, or a value ``inner`` accepts.

    >>> optional(int_at_least("max_steps", 1))(None, None, None)
    """

    def check(instance: object, attribute: Any, value: Any) -> None:
        if value is not None:
            inner(instance, attribute, value)

    return check


def optional_float(value: Any) -> float | None:
    """Converter: ``None`` stays ``None``, anything else becomes a float.

    >>> optional_float("0.5"), optional_float(None)
    (0.5, None)
    """
    return None if value is None else float(value)


def as_masking(value: Any) -> MaskingConfig:
    """Converter: a :class:`~biocoreset.data.masking.MaskingConfig` or a table of its fields.

    >>> as_masking({"probability": 0.2}).probability
    0.2
    """
    if isinstance(value, MaskingConfig):
        return value
    if isinstance(value, Mapping):
        return MaskingConfig(**value)
    raise ConfigError(f"masking must be a MaskingConfig or a table of its fields, got {value!r}.")


nonneg_int = int_at_least
"""Alias of :func:`int_at_least` (the scoring configs' name)."""

opt_float = optional_float
"""Alias of :func:`optional_float`."""


def opt_int(name: str, minimum: int = 0) -> Validator:
    """``None`` or an integer ``>= minimum``.

    >>> opt_int("max_tokens", 1)(None, None, None)
    """
    return optional(int_at_least(name, minimum))


def nonneg_float(name: str) -> Validator:
    """``None`` or a finite number ``>= 0``.

    >>> nonneg_float("beta")(None, None, 0.1)
    """
    return float_at_least(name, 0.0)


def check_subset(instance: object, attribute: Any, value: Any) -> None:
    """A ``D_sub`` spec: ``None``, a size >= 1, a fraction in (0, 1] or a list of ids.

    >>> check_subset(None, None, 0.5)
    """
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
    """Converter: ``None``, or a tuple of glob patterns (one string is one pattern).

    >>> as_patterns("blocks.*")
    ('blocks.*',)
    """
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def opt_str(value: Any) -> str | None:
    """Converter: ``None`` for ``None`` or ``""``, else ``str(value)``.

    >>> opt_str(""), opt_str("x")
    (None, 'x')
    """
    return None if value is None or value == "" else str(value)

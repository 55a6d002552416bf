"""Validators and converters of every attrs configuration class, in one naming scheme.

Validators are attrs validators (``(instance, attribute, value)`` callables, composable with
:mod:`attrs.validators`) named after the rule the value must meet, like attrs' own ``ge``/``gt``/
``in_``/``optional``: :func:`integer_ge`, :func:`number_ge`, :func:`number_gt`, :func:`member_of`,
:func:`subset_spec`, :func:`none_or` (``None`` or what the inner validator accepts) and
:func:`all_of` (every one of several). Converters start with ``to_``: :func:`to_float_or_none`,
:func:`to_str_or_none`, :func:`to_masking`, :func:`to_patterns`.

Each validator raises :class:`~biocoreset.errors.ConfigError` naming the option (the field's
name, ``attribute.name``), the rule and the bad value (with a did-you-mean for choices), the house
style for configuration errors. :func:`choices_of` reads back the choices a field's validator
accepts, so a command-line flag derived from the field offers the same ones.

Example:
    >>> import attrs
    >>> @attrs.frozen(kw_only=True)
    ... class Options:
    ...     steps: int = attrs.field(default=1, validator=integer_ge(1))
    ...     mode: str = attrs.field(default="fast", validator=member_of(("fast", "exact")))
    >>> Options(mode="exakt")
    Traceback (most recent call last):
    ...
    biocoreset.errors.ConfigError: mode must be one of fast, exact; got 'exakt'. Did you mean 'exact'?
    >>> Options(steps=0)
    Traceback (most recent call last):
    ...
    biocoreset.errors.ConfigError: steps must be an integer >= 1, got 0.
    >>> choices_of(attrs.fields(Options).mode.validator)
    ('fast', 'exact')
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
    "all_of",
    "choices_of",
    "integer_ge",
    "member_of",
    "none_or",
    "number_ge",
    "number_gt",
    "subset_spec",
    "to_float_or_none",
    "to_masking",
    "to_patterns",
    "to_str_or_none",
]

Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


def integer_ge(minimum: int = 0) -> Validator:
    """An integer (not a bool) ``>= minimum``."""

    def check(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
            raise ConfigError(f"{attribute.name} must be an integer >= {minimum}, got {value!r}.")

    return check


def _number(minimum: float, strict: bool) -> Validator:
    op = ">" if strict else ">="

    def check(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        ok = isinstance(value, numbers.Real) and math.isfinite(value)
        ok = ok and (value > minimum if strict else value >= minimum)
        if not ok:
            raise ConfigError(
                f"{attribute.name} must be a finite number {op} {minimum:g}, got {value!r}."
            )

    return check


def number_ge(minimum: float = 0.0) -> Validator:
    """A finite number ``>= minimum`` (wrap in :func:`none_or` to let ``None`` pass)."""
    return _number(minimum, strict=False)


def number_gt(minimum: float = 0.0) -> Validator:
    """A finite number ``> minimum``."""
    return _number(minimum, strict=True)


@attrs.frozen
class _MemberOf:
    choices: tuple[str, ...]

    def __call__(self, instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value not in self.choices:
            raise ConfigError(
                f"{attribute.name} must be one of {', '.join(self.choices)}; got {value!r}."
                f"{did_you_mean(str(value), self.choices)}"
            )


def member_of(choices: Sequence[str]) -> Validator:
    """One of ``choices`` (the message lists them and suggests the closest)."""
    return _MemberOf(tuple(choices))


@attrs.frozen
class _NoneOr:
    inner: Validator

    def __call__(self, instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not None:
            self.inner(instance, attribute, value)


def none_or(inner: Validator) -> Validator:
    """``None``, or a value ``inner`` accepts (like :func:`attrs.validators.optional`)."""
    return _NoneOr(inner)


@attrs.frozen
class _AllOf:
    validators: tuple[Validator, ...]

    def __call__(self, instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        for validator in self.validators:
            validator(instance, attribute, value)


def all_of(*validators: Validator) -> Validator:
    """A value every one of ``validators`` accepts, checked in order (like
    :func:`attrs.validators.and_`)."""
    return _AllOf(validators)


def choices_of(validator: Any) -> tuple[str, ...] | None:
    """The choices a validator made here accepts (:func:`member_of`, also inside :func:`none_or`
    or :func:`all_of`); ``None`` when it is not a choice.

    >>> choices_of(none_or(member_of(("bf16", "fp16")))), choices_of(integer_ge(1))
    (('bf16', 'fp16'), None)
    """
    if isinstance(validator, _MemberOf):
        return validator.choices
    if isinstance(validator, _NoneOr):
        return choices_of(validator.inner)
    if isinstance(validator, _AllOf):
        found = (choices_of(v) for v in validator.validators)
        return next((c for c in found if c is not None), None)
    return None


def to_float_or_none(value: Any) -> float | None:
    """Converter: ``None`` stays ``None``, anything else becomes a float.

    >>> to_float_or_none("0.5"), to_float_or_none(None)
    (0.5, None)
    """
    return None if value is None else float(value)


def to_masking(value: Any) -> MaskingConfig:
    """Converter: a :class:`~biocoreset.data.masking.MaskingConfig` or a table of its fields.

    >>> to_masking({"probability": 0.2}).probability
    0.2
    """
    if isinstance(value, MaskingConfig):
        return value
    if isinstance(value, Mapping):
        return MaskingConfig(**value)
    raise ConfigError(f"masking must be a MaskingConfig or a table of its fields, got {value!r}.")


def subset_spec(instance: object, attribute: Any, value: Any) -> None:
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


def to_patterns(value: Any) -> tuple[str, ...] | None:
    """Converter: ``None``, or a tuple of glob patterns (one string is one pattern).

    >>> to_patterns("blocks.*")
    ('blocks.*',)
    """
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def to_str_or_none(value: Any) -> str | None:
    """Converter: ``None`` for ``None`` or ``""``, else ``str(value)``.

    >>> to_str_or_none(""), to_str_or_none("x")
    (None, 'x')
    """
    return None if value is None or value == "" else str(value)

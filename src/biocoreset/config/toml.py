"""Strict TOML tables for attrs configs: the accepted keys and their types are derived from the
classes' fields, so a config class and its file format cannot drift apart.

:func:`schema_of` turns an ``attrs`` class into a schema (key → :class:`KeyType`, or a nested schema
for a field that is itself an ``attrs`` class); :func:`check_table` rejects unknown keys (with a
did-you-mean and the list of valid keys, or a note where a key has moved) and wrong types, naming the
key (``score.batch_size``); :func:`build` makes the instance, prefixing a validator's message with
its table. Values are then checked by the classes' own converters and validators.

Example:
    >>> @attrs.frozen(kw_only=True)
    ... class Demo:
    ...     size: int = 1
    ...     names: tuple[str, ...] = ()
    >>> schema = schema_of(Demo)
    >>> schema["size"].text, schema["names"].text
    ('an integer', 'a list of strings')
    >>> check_table({"demo": {"szie": 2}}, {"demo": schema})
    Traceback (most recent call last):
    ...
    biocoreset.errors.ConfigError: unknown key 'demo.szie'. Did you mean 'size'? Valid keys of [demo]: names, size.
"""

from __future__ import annotations

import collections.abc as cabc
import json
import os
import sys
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from biocoreset.errors import ConfigError, did_you_mean

__all__ = ["KeyType", "Schema", "build", "check_table", "read_toml", "schema_of"]


@attrs.frozen
class KeyType:
    """What one key accepts: a check and how to say it (``"an integer"``).

    Attributes:
        check: Whether a parsed TOML value has the type.
        text: The type in words, for messages and docs.
    """

    check: Callable[[Any], bool]
    text: str


Schema = dict[str, Any]
"""Key → :class:`KeyType`, or → a nested :data:`Schema` for a sub-table."""

_NUMBER = KeyType(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number")
_SIMPLE = {
    bool: KeyType(lambda v: isinstance(v, bool), "true or false"),
    int: KeyType(lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    float: _NUMBER,
    str: KeyType(lambda v: isinstance(v, str), "a string"),
}
_PLURAL = {"an integer": "integers", "a number": "numbers", "a string": "strings"}
_COUNTS = {2: "two", 3: "three", 4: "four"}


def _list_of(item: KeyType, count: int | None = None) -> KeyType:
    noun = _PLURAL.get(item.text, "values")
    size = f"{_COUNTS.get(count, count)} " if count is not None else ""
    return KeyType(
        lambda v: (
            isinstance(v, list)
            and (count is None or len(v) == count)
            and all(item.check(x) for x in v)
        ),
        f"a list of {size}{noun}",
    )


def _union(members: list[Any]) -> KeyType | Schema:
    specs = [_key_type(m) for m in members]
    if len(specs) == 1:
        return specs[0]
    flat = [s for s in specs if isinstance(s, KeyType)]
    if _NUMBER in flat:  # an integer is a number
        flat = [s for s in flat if s.text != "an integer"]
    texts = list(dict.fromkeys(s.text for s in flat))
    text = texts[0] if len(texts) == 1 else ", ".join(texts[:-1]) + " or " + texts[-1]
    return KeyType(lambda v: any(s.check(v) for s in flat), text)


def _key_type(tp: Any) -> KeyType | Schema:
    if tp is Any:
        return KeyType(lambda v: True, "any value")
    if isinstance(tp, type) and attrs.has(tp):
        return schema_of(tp)
    if tp in _SIMPLE:
        return _SIMPLE[tp]
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return _union([a for a in args if a is not type(None)])
    if origin is tuple and args and args[-1] is not Ellipsis:
        return _list_of(_as_key_type(_union(list(set(args)))), len(args))
    if origin in (tuple, list, cabc.Sequence):
        return _list_of(_as_key_type(_key_type(args[0] if args else Any)))
    if origin in (dict, cabc.Mapping):
        value = args[1] if len(args) == 2 else Any
        if typing.get_origin(value) in (dict, cabc.Mapping):
            return KeyType(
                lambda v: isinstance(v, dict) and all(isinstance(x, dict) for x in v.values()),
                "a table of tables",
            )
        return KeyType(lambda v: isinstance(v, dict), "a table")
    raise TypeError(f"no TOML type for {tp!r}")  # pragma: no cover - a new field type


def _as_key_type(spec: KeyType | Schema) -> KeyType:
    if isinstance(spec, KeyType):
        return spec
    return KeyType(lambda v: isinstance(v, dict), "a table")  # pragma: no cover


def schema_of(cls: type, *, exclude: tuple[str, ...] = ()) -> Schema:
    """The keys of ``cls``'s fields (minus ``exclude``) with the TOML type each accepts.

    ``None`` in a type is left out (a key is omitted to get ``None``); a field that is an ``attrs``
    class becomes a sub-table.
    """
    hints = typing.get_type_hints(cls)
    return {
        f.name: _key_type(hints[f.name]) for f in attrs.fields(cls) if f.name not in set(exclude)
    }


def _type_name(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def check_table(
    table: Mapping[str, Any],
    schema: Schema,
    where: str = "",
    source: str = "",
    *,
    moved: Mapping[str, str] | None = None,
) -> None:
    """Reject unknown keys and wrong types, naming the key (``score.batch_size``).

    Args:
        table: The parsed TOML.
        schema: Its schema.
        where: Dotted prefix of ``table`` (``"score."``).
        source: The file, for messages.
        moved: Dotted key → a note saying where it went (shown instead of a did-you-mean).

    Raises:
        ConfigError: The first problem found.
    """
    at = f" in {source}" if source else ""
    for key, value in table.items():
        name = f"{where}{key}"
        if key not in schema:
            if moved and name in moved:
                raise ConfigError(f"{name!r}{at} is no longer a key: {moved[name]}")
            raise ConfigError(
                f"unknown key {name!r}{at}.{did_you_mean(key, schema)} Valid keys"
                f"{' of [' + where.rstrip('.') + ']' if where else ''}: {', '.join(sorted(schema))}."
            )
        expected = schema[key]
        if isinstance(expected, dict):
            if not isinstance(value, dict):
                raise ConfigError(
                    f"{name} must be a table ([{name}]), got {value!r} ({_type_name(value)}){at}."
                )
            check_table(value, expected, f"{name}.", source, moved=moved)
        elif not expected.check(value):
            raise ConfigError(
                f"{name} must be {expected.text}, got {value!r} ({_type_name(value)}){at}."
            )


def read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse a configuration file: TOML (:mod:`tomllib`, or ``tomli`` on Python 3.10), or JSON
    when the name ends in ``.json`` (the same tables). The one reader of every config file.

    Raises:
        ConfigError: A missing file, or invalid TOML or JSON.
    """
    if str(path).lower().endswith(".json"):
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"config file {str(path)!r} does not exist.") from None
        except ValueError as exc:
            raise ConfigError(f"{str(path)!r} is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{str(path)!r} must hold a JSON object (a table), got {data!r}.")
        return data
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{str(path)!r} is not valid TOML: {exc}") from exc


def build(cls: type, base: Any, values: Mapping[str, Any], where: str) -> Any:
    """``cls(**values)``, or ``attrs.evolve(base, **values)``; a validator's error is prefixed with
    ``[where]``.

    Raises:
        ConfigError: A value the class rejects.
    """
    try:
        return attrs.evolve(base, **values) if base is not None else cls(**values)
    except (ConfigError, TypeError, ValueError) as exc:
        raise ConfigError(f"[{where}] {exc}") from None

"""The options a component factory accepts: declared, checked and described.

A factory's options are found, in this order:

1. ``factory.__biocoreset_options__``, a tuple of *sources* (or a callable returning one) whose
   options are added to the named parameters of the factory itself (an adapter factory taking
   ``**options`` for its adapter class declares ``(AdapterClass,)``); use :func:`declare_options`;
2. an attrs class: its ``__init__`` fields (by their alias);
3. any other callable: the keyword parameters of its signature.

A factory that still takes ``**kwargs`` after that declares nothing: its options are not checked
(the factory checks them itself). A source is an attrs class, an attrs instance (its values are
the defaults), a callable, or a mapping of option name to default.

Help texts come from the Google-style ``Args:``/``Attributes:`` sections of the docstrings.

Example:
    >>> def factory(*, beta: float = 0.05, strata: int = 50):
    ...     '''Toy factory.
    ...
    ...     Args:
    ...         beta: Cut rate.
    ...         strata: Number of strata.
    ...     '''
    >>> [(o.name, o.default, o.help) for o in declared_options(factory)]
    [('beta', '0.05', 'Cut rate.'), ('strata', '50', 'Number of strata.')]
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs

from biocoreset.errors import ConfigError, did_you_mean

__all__ = [
    "OPTIONS_ATTR",
    "Option",
    "check_option_names",
    "check_options",
    "declare_options",
    "declared_options",
    "named_options",
]

OPTIONS_ATTR = "__biocoreset_options__"
"""Attribute of a factory holding the extra sources of its options (see :func:`declare_options`)."""

REQUIRED = "(required)"

_SECTIONS = ("Args:", "Arguments:", "Attributes:", "Parameters:", "Keyword Args:", "Options:")


@attrs.frozen(kw_only=True)
class Option:
    """One option of a component factory.

    Attributes:
        name: Keyword users pass.
        type: Annotation as written (``""`` when absent).
        default: ``repr`` of the default, or ``"(required)"``.
        help: First sentence of its docstring entry (``""`` when undocumented).
    """

    name: str
    type: str = ""
    default: str = REQUIRED
    help: str = ""


def declare_options(*sources: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a factory taking ``**options`` with the sources that define those options.

    >>> class Thing:
    ...     def __init__(self, model, *, size: int = 1): ...
    >>> @declare_options(Thing)
    ... def make_thing(model=None, **options):
    ...     return Thing(model, **options)
    >>> [o.name for o in declared_options(make_thing)]
    ['model', 'size']
    """

    def mark(factory: Callable[..., Any]) -> Callable[..., Any]:
        setattr(factory, OPTIONS_ATTR, tuple(sources))
        return factory

    return mark


def _type_text(annotation: Any) -> str:
    if annotation in (inspect.Parameter.empty, None):
        return ""
    if isinstance(annotation, str):
        return annotation
    return getattr(annotation, "__name__", None) or repr(annotation).removeprefix("typing.")


def _plain(text: str) -> str:
    """Docstring markup to plain text: roles to their target's last part, no double backquotes."""
    text = re.sub(
        r":[\w:]+:`~?([^`<]*?)(?:\s*<[^>]*>)?`", lambda m: m.group(1).rsplit(".")[-1], text
    )
    return text.replace("``", "")


def _first_sentence(text: str) -> str:
    text = " ".join(text.split())
    match = re.match(r"(.+?(?<!e\.g)(?<!i\.e)(?<!etc)[.!?])(\s|$)", text)
    return _plain(match.group(1) if match else text)


def docstring_args(obj: Any) -> dict[str, str]:
    """``{name: first sentence}`` from the ``Args:``/``Attributes:`` sections of ``obj``'s docstring.

    >>> def f(a):
    ...     '''Do.
    ...
    ...     Args:
    ...         a: The first. More text
    ...             on two lines.
    ...     '''
    >>> docstring_args(f)
    {'a': 'The first.'}
    """
    doc = (inspect.getdoc(obj) or "") if obj is not None else ""
    out: dict[str, str] = {}
    lines = doc.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() not in _SECTIONS:
            i += 1
            continue
        base = len(lines[i]) - len(lines[i].lstrip())
        i += 1
        current: str | None = None
        entry_indent = 0
        while i < len(lines):
            line = lines[i]
            if line.strip() and len(line) - len(line.lstrip()) <= base:
                break
            entry = re.match(r"\s*\**([A-Za-z_]\w*)\s*(\([^)]*\))?\s*:\s*(.*)$", line)
            indent = len(line) - len(line.lstrip())
            if entry and (current is None or indent <= entry_indent):
                current, entry_indent = entry.group(1), indent
                out.setdefault(current, entry.group(3))
            elif current is not None and line.strip() and out.get(current) is not None:
                out[current] = f"{out[current]} {line.strip()}"
            i += 1
    return {k: _first_sentence(v) for k, v in out.items()}


def _from_attrs(cls: type, instance: Any = None) -> list[Option]:
    helps = docstring_args(cls)
    out = []
    for field in attrs.fields(cls):
        if not field.init:
            continue
        name = field.alias or field.name
        if instance is not None:
            default = repr(getattr(instance, field.name))
        elif field.default is attrs.NOTHING:
            default = REQUIRED
        elif isinstance(field.default, attrs.Factory):  # type: ignore[arg-type]
            made = field.default.factory
            default = f"{getattr(made, '__name__', 'factory')}()"
        else:
            default = repr(field.default)
        out.append(
            Option(
                name=name,
                type=_type_text(field.type),
                default=default,
                help=helps.get(name) or helps.get(field.name, ""),
            )
        )
    return out


def _from_signature(func: Callable[..., Any]) -> tuple[list[Option], bool]:
    """Options from ``func``'s keyword parameters, and whether it takes ``**kwargs``."""
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):  # a builtin without a signature: declares nothing
        return [], True
    helps = docstring_args(func)
    if inspect.isclass(func):  # the class, its __init__ and its bases document the arguments
        for klass in func.__mro__[::-1]:
            helps = {
                **helps,
                **docstring_args(klass.__dict__.get("__init__")),
                **docstring_args(klass),
            }
        helps = {**helps, **docstring_args(func)}
    out, open_ = [], False
    for p in sig.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            open_ = True
            continue
        if p.kind in (p.VAR_POSITIONAL, p.POSITIONAL_ONLY):
            continue
        default = REQUIRED if p.default is p.empty else repr(p.default)
        out.append(
            Option(
                name=p.name,
                type=_type_text(p.annotation),
                default=default,
                help=helps.get(p.name, ""),
            )
        )
    return out, open_


def _source_options(source: Any) -> tuple[list[Option], bool]:
    if isinstance(source, Mapping):
        return [Option(name=str(k), default=repr(v)) for k, v in source.items()], False
    if inspect.isclass(source) and attrs.has(source):
        return _from_attrs(source), False
    if attrs.has(type(source)):  # an instance: its values are the defaults
        return _from_attrs(type(source), source), False
    return _from_signature(source)


def named_options(source: Any) -> list[Option]:
    """The options ``source`` names (an attrs class's fields, a callable's keyword parameters),
    whether or not it also takes ``**kwargs``.

    >>> [o.name for o in named_options(lambda *, size=1, **more: None)]
    ['size']
    """
    return _source_options(source)[0]


def declared_options(factory: Any) -> tuple[Option, ...] | None:
    """The options ``factory`` accepts, or ``None`` when it accepts any keyword (``**kwargs``).

    >>> import attrs
    >>> @attrs.frozen(kw_only=True)
    ... class Sel:
    ...     beta: float = 0.05
    >>> [o.name for o in declared_options(Sel)]
    ['beta']
    >>> declared_options(lambda **kw: None) is None
    True
    """
    extra = getattr(factory, OPTIONS_ATTR, None)
    if callable(extra):  # computed per factory, e.g. a classmethod of a base class
        extra = extra()
    own, open_ = _source_options(factory)
    if extra is not None:
        merged: dict[str, Option] = {o.name: o for o in own}
        for source in extra:
            opts, source_open = _source_options(source)
            if source_open and not opts:
                return None
            for o in opts:
                old = merged.get(o.name)
                if old is None or (not old.help and o.help):
                    merged[o.name] = o if old is None else attrs.evolve(old, help=o.help)
        return tuple(merged.values())
    if open_:
        return None
    return tuple(own)


def check_options(
    factory: Any, options: Iterable[str], *, kind: str, name: str, plugin: str = ""
) -> None:
    """Raise :class:`~biocoreset.errors.ConfigError` for any option ``factory`` does not declare.

    The message names the component, each bad option with the closest valid one, and lists the
    valid options.

    >>> import attrs
    >>> @attrs.frozen(kw_only=True)
    ... class Sel:
    ...     beta: float = 0.05
    >>> check_options(Sel, ["beeta"], kind="selector", name="sel")
    Traceback (most recent call last):
    ...
    biocoreset.errors.ConfigError: unknown option 'beeta' for selector 'sel'. Did you mean 'beta'? Valid options: beta (see `biocoreset plugins --options sel`).
    """
    declared = declared_options(factory)
    if declared is None:
        return
    check_option_names([o.name for o in declared], options, kind=kind, name=name, plugin=plugin)


def check_option_names(
    valid: Sequence[str], options: Iterable[str], *, kind: str, name: str, plugin: str = ""
) -> None:
    """Raise :class:`~biocoreset.errors.ConfigError` for any of ``options`` not in ``valid`` (the
    message of :func:`check_options`).

    >>> check_option_names(["size"], ["size"], kind="adapter", name="rna-fm")
    """
    valid = list(valid)
    bad = [o for o in options if o not in valid]
    if not bad:
        return
    where = f" (plugin {plugin})" if plugin and not plugin.startswith("biocoreset.") else ""
    if len(bad) == 1:
        head = f"unknown option {bad[0]!r} for {kind} {name!r}{where}.{did_you_mean(bad[0], valid)}"
    else:
        parts = []
        for b in bad:
            hint = did_you_mean(b, valid).strip().removeprefix("Did you mean ").rstrip("?")
            parts.append(f"{b!r} (did you mean {hint}?)" if hint else repr(b))
        head = f"unknown options {', '.join(parts)} for {kind} {name!r}{where}."
    listed = ", ".join(valid) if valid else "(none: it takes no options)"
    raise ConfigError(
        f"{head} Valid options: {listed} (see `biocoreset plugins --options {name}`)."
    )

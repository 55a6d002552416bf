"""Plugin machinery: hook specifications, the plugin manager and the component registry."""

from __future__ import annotations

from typing import Any

from biocoreset.plugins.hookspecs import Register, hookimpl, hookspec
from biocoreset.plugins.manager import get_registry, load_registry, make_plugin_manager, reset
from biocoreset.plugins.options import Option, declare_options
from biocoreset.plugins.registry import Component, Registry

__all__ = [
    "Component",
    "Option",
    "Register",
    "Registry",
    "check_options",
    "create",
    "declare_options",
    "describe_options",
    "format_options",
    "get_registry",
    "hookimpl",
    "hookspec",
    "load_registry",
    "make_plugin_manager",
    "reset",
]


def create(kind: str, name: str, /, **options: Any) -> Any:
    """Build the component ``name`` of ``kind`` with ``options``.

    Unknown options are refused before the component is built (a
    :class:`~biocoreset.errors.ConfigError` with the valid options and the closest match).

    >>> create("selector", "topk").name
    'topk'
    >>> create("selector", "cci", beeta=0.1)
    Traceback (most recent call last):
    ...
    biocoreset.errors.ConfigError: unknown option 'beeta' for selector 'cci'. Did you mean 'beta'? Valid options: beta, strata, cut, edges, ties, rng (see `biocoreset plugins --options cci`).
    """
    return get_registry().get(kind, name).create(**options)


def check_options(kind: str, name: str, options: Any) -> None:
    """Refuse ``options`` (names, or a mapping) that the component ``name`` of ``kind`` does not
    declare, without building it: for validating a configuration before any compute.

    >>> check_options("selector", "cci", {"beta": 0.1})
    """
    from biocoreset.plugins.options import check_options as _check

    comp = get_registry().get(kind, name)
    _check(comp.load(), list(options), kind=kind, name=name, plugin=comp.plugin)


def describe_options(kind: str | None, name: str) -> list[Option]:
    """The options of component ``name`` (of ``kind``; ``None``: whichever kind has that name).

    ``None`` kind is enough unless two kinds share the name. An empty list means the component
    takes no options; a factory taking any keyword (``**kwargs``) gives one entry ``**kwargs``.

    >>> [(o.name, o.default) for o in describe_options("selector", "topk")]
    [('largest', 'None'), ('ties', "'stable'")]
    """
    comp = get_registry().find(name, kind)
    declared = comp.options()
    if declared is None:
        return [
            Option(name="**kwargs", default="", help="any keyword (the factory checks its own)")
        ]
    return list(declared)


def format_options(kind: str | None, name: str) -> str:
    """:func:`describe_options` as the text ``biocoreset plugins --options NAME`` prints.

    >>> print(format_options("selector", "random"))
    selector 'random' (biocoreset.selectors.random:RandomSelector) takes no options.
    """
    comp = get_registry().find(name, kind)
    target = comp.target if isinstance(comp.target, str) else _qualname(comp.target)
    options = describe_options(comp.kind, comp.name)
    head = f"{comp.kind} {comp.name!r} ({target})"
    if not options:
        return f"{head} takes no options."
    rows = [(o.name, o.type, o.default, o.help) for o in options]
    widths = [max(len(r[i]) for r in [("option", "type", "default", ""), *rows]) for i in range(3)]
    lines = [f"{head} options:"]
    for r in [("option", "type", "default", "help"), *rows]:
        lines.append("  " + "  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3])
    return "\n".join(line.rstrip() for line in lines)


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"

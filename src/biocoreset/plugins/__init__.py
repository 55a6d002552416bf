"""Plugin machinery: hook specifications, the plugin manager and the component registry."""

from biocoreset.plugins.hookspecs import hookimpl, hookspec
from biocoreset.plugins.manager import get_registry, make_plugin_manager, reset
from biocoreset.plugins.registry import Component, Registry

__all__ = [
    "Component",
    "Registry",
    "get_registry",
    "hookimpl",
    "hookspec",
    "make_plugin_manager",
    "reset",
]


def create(kind: str, name: str, /, **options: object) -> object:
    """Build the component ``name`` of ``kind`` with ``options``.

    >>> create("selector", "topk").name
    'topk'
    """
    return get_registry().get(kind, name).factory(**options)


__all__.append("create")

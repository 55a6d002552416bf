"""The component registry filled by plugin hooks."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import attrs

from biocoreset.errors import PluginError, UnknownComponentError, did_you_mean

__all__ = ["Component", "Registry"]

_NAME_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


@attrs.frozen(kw_only=True)
class Component:
    """One registered component.

    Attributes:
        kind: ``"adapter"``, ``"curvature"``, ``"scorer"``, ``"selector"`` or ``"task"``.
        name: Kebab-case name users type.
        factory: Callable building the component from keyword options.
        plugin: Name of the plugin that registered it.
        source: Where the plugin comes from (``"built-in"`` or ``"entry point <dist> <version>"``).
        description: One-line description.
    """

    kind: str
    name: str
    factory: Callable[..., Any]
    plugin: str
    source: str
    description: str = ""


class Registry:
    """Components by kind and name."""

    def __init__(self) -> None:
        self._components: dict[str, dict[str, Component]] = {}

    def add(self, component: Component) -> None:
        """Add a component; a duplicate ``(kind, name)`` is a :class:`PluginError`."""
        if not _NAME_RE.match(component.name):
            raise PluginError(
                f"plugin {component.plugin!r} registered {component.kind} name {component.name!r}: "
                "names must be kebab-case (lower-case letters, digits and single hyphens)."
            )
        table = self._components.setdefault(component.kind, {})
        old = table.get(component.name)
        if old is not None:
            raise PluginError(
                f"{component.kind} {component.name!r} is registered twice: by plugin {old.plugin!r} "
                f"({old.source}) and by {component.plugin!r} ({component.source}). To replace the "
                f"first, block it with BIOCORESET_DISABLE_PLUGINS={old.plugin}."
            )
        table[component.name] = component

    def names(self, kind: str) -> list[str]:
        """Sorted component names of ``kind``."""
        return sorted(self._components.get(kind, {}))

    def components(self, kind: str | None = None) -> list[Component]:
        """All components (of ``kind``), sorted by kind then name."""
        kinds = [kind] if kind else sorted(self._components)
        return [self._components[k][n] for k in kinds for n in sorted(self._components.get(k, {}))]

    def get(self, kind: str, name: str) -> Component:
        """Look up a component; unknown names list the choices and suggest the closest."""
        table = self._components.get(kind, {})
        if name in table:
            return table[name]
        choices = sorted(table)
        raise UnknownComponentError(
            f"unknown {kind} {name!r}.{did_you_mean(name, choices)} "
            f"Choices: {', '.join(choices) if choices else '(none registered)'}. "
            "Run `biocoreset plugins` to see what is installed."
        )

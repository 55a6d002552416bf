"""The component registry filled by plugin hooks.

A component is registered with a factory, or lazily with a ``"module:attr"`` string naming it: the
module is imported on first use (:meth:`Component.load`), so listing what is installed imports no
model code. Every build goes through :attr:`Component.factory` (or :meth:`Component.create`), which
checks the options against what the factory declares (:mod:`biocoreset.plugins.options`) before
calling it.
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Callable
from typing import Any

import attrs

from biocoreset.errors import PluginError, UnknownComponentError, did_you_mean
from biocoreset.plugins.options import Option, check_options, declared_options
from biocoreset.protocols import AdapterBase, adapter_class

__all__ = ["Component", "Registry", "resolve_target"]

_NAME_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_TARGET_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def resolve_target(target: str) -> Any:
    """Import ``"package.module:attr"`` and return the attribute.

    >>> resolve_target("biocoreset.selectors.topk:TopKSelector").name
    'topk'

    Raises:
        PluginError: The module or the attribute does not exist.
    """
    modname, _, attr = target.partition(":")
    try:
        obj: Any = importlib.import_module(modname)
    except ModuleNotFoundError as exc:
        if exc.name is not None and modname.startswith(exc.name):  # the module itself is missing
            raise PluginError(f"cannot import {modname!r} for {target!r}: {exc}") from exc
        raise
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise PluginError(
                f"module {modname!r} has no attribute {attr!r} ({target!r})."
            ) from None
    return obj


@attrs.frozen(kw_only=True)
class Component:
    """One registered component.

    Attributes:
        kind: ``"adapter"``, ``"curvature"``, ``"scorer"``, ``"selector"``, ``"task"`` or
            ``"family"``.
        name: Kebab-case name users type.
        target: The factory, or a ``"module:attr"`` string naming it (imported on first use).
        plugin: Name of the plugin that registered it.
        source: Where the plugin comes from (``"built-in"`` or ``"entry point (<dist> <version>)"``).
        description: One-line description.
    """

    kind: str
    name: str
    target: Callable[..., Any] | str
    plugin: str
    source: str
    description: str = ""
    _cache: dict[str, Any] = attrs.field(factory=dict, init=False, eq=False, repr=False)

    @property
    def lazy(self) -> bool:
        """Whether the factory is still a ``"module:attr"`` string that has not been imported."""
        return isinstance(self.target, str) and "registered" not in self._cache

    def registered(self) -> Any:
        """What the plugin registered (importing its module on first use).

        Raises:
            PluginError: A lazy target cannot be imported, or is not callable.
        """
        if "registered" not in self._cache:
            obj = resolve_target(self.target) if isinstance(self.target, str) else self.target
            if self.kind != "family" and not callable(obj):
                raise PluginError(
                    f"plugin {self.plugin!r} registered {self.kind} {self.name!r} with a factory "
                    f"that is not callable: {obj!r}"
                )
            self._cache["registered"] = obj
        return self._cache["registered"]

    def load(self) -> Any:
        """The raw factory (importing its module on first use): what the plugin registered, or
        for an adapter class (a subclass of :class:`~biocoreset.protocols.AdapterBase`) what its
        ``factory()`` classmethod returns.

        Raises:
            PluginError: A lazy target cannot be imported, or is not callable.
        """
        if "raw" not in self._cache:
            obj = self.registered()
            if isinstance(obj, type) and issubclass(obj, AdapterBase):
                obj = obj.factory()
            self._cache["raw"] = obj
        return self._cache["raw"]

    def adapter_class(self) -> type[AdapterBase]:
        """The class declaring this adapter's class capabilities (``from_path``,
        ``model_sizes``): the registered class, or for a registered factory function the
        defaults around :attr:`factory` (see :func:`~biocoreset.protocols.adapter_class`).

        >>> from biocoreset.plugins import get_registry
        >>> get_registry().get("adapter", "rna-fm").adapter_class().model_sizes()["tiny"]["layers"]
        2
        """
        return adapter_class(self.registered(), self.factory)

    @property
    def factory(self) -> Callable[..., Any]:
        """The factory, checking options before it is called.

        Calling it with an option the factory does not declare raises
        :class:`~biocoreset.errors.ConfigError` naming the component, the option, the valid
        options and the closest match. The wrapper keeps the factory's name and docstring
        (``__wrapped__`` is the raw factory).
        """
        if "checked" not in self._cache:
            raw = self.load()

            def checked(*args: Any, **options: Any) -> Any:
                check_options(raw, options, kind=self.kind, name=self.name, plugin=self.plugin)
                return raw(*args, **options)

            # name, docstring and __wrapped__ of the factory (not a class's attributes)
            functools.update_wrapper(checked, raw, updated=())

            self._cache["checked"] = checked
        return self._cache["checked"]

    def create(self, **options: Any) -> Any:
        """Build the component with ``options`` (checked first).

        >>> from biocoreset.plugins import get_registry
        >>> get_registry().get("selector", "cci").create(beta=0.1).beta
        0.1
        """
        return self.factory(**options)

    def options(self) -> tuple[Option, ...] | None:
        """The options the factory declares (``None``: it accepts any keyword)."""
        return declared_options(self.load())


def clash_message(old: Component, new: Component) -> str:
    """The error for ``new`` taking a name ``old`` already holds.

    Hooks run in pluggy's order, newest plugin first, so ``new`` normally comes from the older
    plugin (e.g. the built-in a third-party plugin means to replace): the first fix offered is to
    block it.
    """
    what = "model family" if new.kind == "family" else new.kind
    return (
        f"{what} {new.name!r} is registered twice: first by plugin {old.plugin!r} ({old.source}), "
        f"then by plugin {new.plugin!r} ({new.source}). To use {old.plugin!r}'s, block the plugin "
        f"that registered it second: BIOCORESET_DISABLE_PLUGINS={new.plugin}. To keep "
        f"{new.plugin!r}'s, block the other: BIOCORESET_DISABLE_PLUGINS={old.plugin}."
    )


class Registry:
    """Components by kind and name, and the model families in detection order.

    Attributes:
        disabled: Blocked plugin name → the ``(kind, name)`` pairs it would have registered (empty
            when unknown, e.g. a blocked entry point); used to explain an unknown name.
        disabled_by: How the plugins were blocked (e.g. ``"BIOCORESET_DISABLE_PLUGINS=..."``).
    """

    def __init__(self) -> None:
        self._components: dict[str, dict[str, Component]] = {}
        self._families: list[tuple[Component, str | None]] = []
        self.disabled: dict[str, list[tuple[str, str]]] = {}
        self.disabled_by = ""

    def add(self, component: Component) -> None:
        """Add a component; a duplicate ``(kind, name)`` is a :class:`PluginError`."""
        self._check_name(component)
        table = self._components.setdefault(component.kind, {})
        old = table.get(component.name)
        if old is not None:
            raise PluginError(clash_message(old, component))
        table[component.name] = component

    def add_family(self, component: Component, *, before: str | None = "generic") -> None:
        """Add a model family (``component.kind == "family"``), tried before the family ``before``
        (``None``: after every family added so far with ``before=None``)."""
        self._check_name(component)
        for old, _ in self._families:
            if old.name == component.name:
                raise PluginError(clash_message(old, component))
        self._families.append((component, before))

    @staticmethod
    def _check_name(component: Component) -> None:
        if not _NAME_RE.match(component.name):
            raise PluginError(
                f"plugin {component.plugin!r} registered {component.kind} name {component.name!r}: "
                "names must be kebab-case (lower-case letters, digits and single hyphens)."
            )

    def names(self, kind: str) -> list[str]:
        """Sorted component names of ``kind``."""
        if kind == "family":
            return sorted(c.name for c, _ in self._families)
        return sorted(self._components.get(kind, {}))

    def components(self, kind: str | None = None) -> list[Component]:
        """All components (of ``kind``), sorted by kind then name; families are not included."""
        kinds = [kind] if kind else sorted(self._components)
        return [self._components[k][n] for k in kinds for n in sorted(self._components.get(k, {}))]

    def family_components(self) -> list[Component]:
        """The model families, in detection order (see :meth:`families`)."""
        ordered = [c for c, before in self._families if before is None]
        pending = [(c, b) for c, b in self._families if b is not None]
        while pending:
            names = [c.name for c in ordered]
            progress = [(c, b) for c, b in pending if b in names]
            if not progress:
                c, b = pending[0]
                raise PluginError(
                    f"plugin {c.plugin!r} registered model family {c.name!r} before {b!r}, which is "
                    f"not a registered family. Families: {', '.join(names) or '(none)'}."
                )
            for c, b in progress:
                names = [x.name for x in ordered]
                ordered.insert(names.index(b), c)
            pending = [p for p in pending if p not in progress]
        return ordered

    def families(self) -> list[Any]:
        """The model families (:class:`~biocoreset.adapters.hf_families.ModelFamily`) in detection
        order: the built-ins in their order, each plugin family just before its ``before`` family
        (plugins registered later first)."""
        out = []
        for c in self.family_components():
            family = c.load()
            if getattr(family, "name", c.name) != c.name:
                raise PluginError(
                    f"plugin {c.plugin!r} registered model family {c.name!r} with an object named "
                    f"{getattr(family, 'name', None)!r}; the names must agree."
                )
            out.append(family)
        return out

    def get(self, kind: str, name: str) -> Component:
        """Look up a component; unknown names list the choices and suggest the closest, and say so
        when the plugin that provides the name is disabled."""
        table = self._components.get(kind, {})
        if name in table:
            return table[name]
        choices = sorted(table)
        for plugin, provided in self.disabled.items():
            if (kind, name) in provided:
                raise UnknownComponentError(
                    f"{kind} {name!r} is provided by plugin {plugin!r}, which is disabled "
                    f"({self.disabled_by or 'blocked'}). Remove {plugin!r} from "
                    f"BIOCORESET_DISABLE_PLUGINS to use it. Available: {', '.join(choices)}."
                )
        unknown_blocked = sorted(p for p, provided in self.disabled.items() if not provided)
        extra = (
            f" Disabled plugins that might provide it: {', '.join(unknown_blocked)}."
            if unknown_blocked
            else ""
        )
        raise UnknownComponentError(
            f"unknown {kind} {name!r}.{did_you_mean(name, choices)} "
            f"Choices: {', '.join(choices) if choices else '(none registered)'}.{extra} "
            "Run `biocoreset plugins` to see what is installed."
        )

    def find(self, name: str, kind: str | None = None) -> Component:
        """The component called ``name`` (of ``kind``, or of whichever kind has it).

        Raises:
            UnknownComponentError: No such component, or ``kind`` is needed to choose.
        """
        if kind is not None:
            return self.get(kind, name)
        hits = [c for c in self.components() if c.name == name]
        if len(hits) == 1:
            return hits[0]
        if hits:
            raise UnknownComponentError(
                f"{name!r} names a component of several kinds ({', '.join(c.kind for c in hits)}); "
                "give the kind (e.g. --kind selector)."
            )
        everything = sorted({c.name for c in self.components()})
        raise UnknownComponentError(
            f"no component is called {name!r}.{did_you_mean(name, everything)} "
            "Run `biocoreset plugins` to see what is installed."
        )

"""Loading plugins: built-ins first, then the ``biocoreset`` entry points.

Order (as in tox 4): every built-in plugin is registered under the name of the module implementing
it (:mod:`biocoreset.plugins.builtins`: nothing is imported; components are ``"module:attr"``
strings loaded on first use), then third-party plugins are loaded from the ``biocoreset``
entry-point group, then :meth:`pluggy.PluginManager.check_pending` rejects hook implementations
whose names match no hook (a misspelt ``biocoreset_register_selector`` fails loudly instead of
being ignored). Finally each implementation of every registration hook is called, in pluggy's order
(the plugin registered last first), with a ``register`` callable bound to the plugin that owns the
implementation (pluggy's ``HookImpl.plugin_name``), so the registry records which plugin
registered what.

Plugins named in the environment variable ``BIOCORESET_DISABLE_PLUGINS`` (comma-separated plugin
names, e.g. ``biocoreset.selectors.cci`` or an entry-point name) are blocked before loading. A
name that matches no plugin is warned about (with the plugin to name instead when it is a
component name).
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from typing import Any

import pluggy

from biocoreset.errors import BioCoresetWarning, PluginError, did_you_mean
from biocoreset.plugins import hookspecs
from biocoreset.plugins.builtins import BUILTINS, BuiltinPlugin
from biocoreset.plugins.registry import Component, Registry

__all__ = [
    "BUILTIN_PLUGINS",
    "DISABLE_ENV",
    "ENTRY_POINT_GROUP",
    "get_registry",
    "load_registry",
    "make_plugin_manager",
    "reset",
]

ENTRY_POINT_GROUP = "biocoreset"
DISABLE_ENV = "BIOCORESET_DISABLE_PLUGINS"

BUILTIN_PLUGINS: tuple[str, ...] = tuple(BUILTINS)
"""Names of the built-in plugins (the modules implementing their components), registered in this
order before any entry point."""

_lock = threading.Lock()
_registry: Registry | None = None


class _PluginManager(pluggy.PluginManager):
    """A pluggy manager that remembers which names were blocked and how."""

    blocked_by: dict[str, str]


def _env_disabled() -> list[str]:
    return [n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()]


def make_plugin_manager(
    *, disable: Iterable[str] = (), entry_points: bool = True, builtins: Iterable[str] | None = None
) -> pluggy.PluginManager:
    """Build a plugin manager with the built-ins and (optionally) entry-point plugins loaded.

    Args:
        disable: Plugin names to block, in addition to ``BIOCORESET_DISABLE_PLUGINS``.
        entry_points: Whether to load third-party plugins from the ``biocoreset`` group.
        builtins: Built-in plugin names to register (default :data:`BUILTIN_PLUGINS`); names that
            are not built-ins are skipped.

    Raises:
        PluginError: A plugin failed to import, or implements a hook that does not exist.
    """
    pm = _PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    env = _env_disabled()
    pm.blocked_by = {name: f"{DISABLE_ENV}={os.environ.get(DISABLE_ENV, '')}" for name in env}
    for name in disable:
        pm.blocked_by.setdefault(name, f"make_plugin_manager(disable=[{name!r}])")
    for name in pm.blocked_by:
        pm.set_blocked(name)
    for name in BUILTIN_PLUGINS if builtins is None else builtins:
        if name in BUILTINS and not pm.is_blocked(name):
            pm.register(BuiltinPlugin(name), name=name)
    if entry_points:
        try:
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        except Exception as exc:  # a broken third-party plugin: say which
            raise PluginError(
                f"a plugin in the {ENTRY_POINT_GROUP!r} entry-point group failed to load: {exc!r}. "
                f"Uninstall it or block it with {DISABLE_ENV}=<entry point name>."
            ) from exc
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        hooks = sorted([*hookspecs.KINDS.values(), hookspecs.FAMILY_HOOK])
        raise PluginError(f"{exc}. Valid hooks: {', '.join(hooks)}.") from exc
    return pm


def _sources(pm: pluggy.PluginManager) -> dict[str, str]:
    sources = {}
    for plugin, dist in pm.list_plugin_distinfo():
        name = pm.get_name(plugin)
        if name is not None:
            sources[name] = f"entry point ({dist.project_name} {dist.version})"
    return sources


def _call_each(caller: Any, make_register: Callable[[str], Callable[..., None]]) -> None:
    """Call every implementation of one registration hook, in pluggy's call order (the reverse of
    :meth:`~pluggy.HookCaller.get_hookimpls`, which already sorts ``tryfirst``/``trylast``), each
    with a ``register`` bound to the name of the plugin that owns it (``impl.plugin_name``).
    Hook wrappers are not called: they wrap no result here."""
    for impl in reversed(caller.get_hookimpls()):
        if impl.hookwrapper or impl.wrapper:
            continue
        register = make_register(str(impl.plugin_name))
        impl.function(**{arg: register for arg in impl.argnames})


def _source_of(plugin: str, sources: dict[str, str]) -> str:
    if plugin in sources:
        return sources[plugin]
    return "built-in" if plugin in BUILTINS else "plugin"


def _check_factory(kind: str, name: str, factory: Any, plugin: str) -> None:
    if isinstance(factory, str):
        if ":" not in factory:
            raise PluginError(
                f"plugin {plugin!r} registered {kind} {name!r} with the string {factory!r}; a lazy "
                "factory is written 'package.module:attr'."
            )
    elif not callable(factory) and kind != "family":
        raise PluginError(
            f"plugin {plugin!r} registered {kind} {name!r} with a factory that is not callable: "
            f"{factory!r}"
        )


def load_registry(pm: pluggy.PluginManager) -> Registry:
    """Call every registration hook of ``pm`` through ``pm.hook`` and return the filled registry.

    Also records the blocked plugins (to explain an unknown name) and warns about blocked names
    that match no plugin.
    """
    registry = Registry()
    sources = _sources(pm)
    for kind, hookname in hookspecs.KINDS.items():

        def component_register(plugin: str, kind: str = kind) -> Callable[..., None]:
            def register(name: str, factory: Any, *, description: str = "") -> None:
                _check_factory(kind, name, factory, plugin)
                registry.add(
                    Component(
                        kind=kind,
                        name=name,
                        target=factory,
                        plugin=plugin,
                        source=_source_of(plugin, sources),
                        description=description,
                    )
                )

            return register

        _call_each(getattr(pm.hook, hookname), component_register)

    def family_register(plugin: str) -> Callable[..., None]:
        def register_family(
            name: str, family: Any, *, description: str = "", before: str | None = "generic"
        ) -> None:
            _check_factory("family", name, family, plugin)
            component = Component(
                kind="family",
                name=name,
                target=family,
                plugin=plugin,
                source=_source_of(plugin, sources),
                description=description,
            )
            registry.add_family(component, before=before)

        return register_family

    _call_each(getattr(pm.hook, hookspecs.FAMILY_HOOK), family_register)
    _record_blocked(pm, registry)
    return registry


def _record_blocked(pm: pluggy.PluginManager, registry: Registry) -> None:
    blocked_by: dict[str, str] = getattr(pm, "blocked_by", {})
    blocked = [name for name, plugin in pm.list_name_plugin() if plugin is None]
    eps = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)} if blocked else set()
    how = sorted({blocked_by.get(name, "blocked") for name in blocked})
    registry.disabled_by = "; ".join(how)
    for name in blocked:
        if name in BUILTINS:
            registry.disabled[name] = [
                (kind, entry[0]) for kind, entries in BUILTINS[name].items() for entry in entries
            ]
        elif name in eps:
            registry.disabled[name] = []
        else:
            _warn_unknown_block(name, registry, sorted(set(BUILTINS) | eps))


def _warn_unknown_block(name: str, registry: Registry, plugins: list[str]) -> None:
    providers = [
        (kind, plugin)
        for plugin, entries in BUILTINS.items()
        for kind, items in entries.items()
        for item in items
        if item[0] == name
    ]
    providers += [(c.kind, c.plugin) for c in registry.components() if c.name == name]
    if providers:
        which = "; ".join(f"{kind} {name!r} comes from plugin {p!r}" for kind, p in providers)
        hint = f" {which}: set {DISABLE_ENV}={providers[0][1]} to disable it."
    else:
        hint = did_you_mean(name, plugins) or f" Plugins: {', '.join(plugins)}."
    warnings.warn(
        f"{DISABLE_ENV} names {name!r}, which is not a plugin, so it disables nothing. It takes "
        f"plugin names (see `biocoreset plugins`), not component names.{hint}",
        BioCoresetWarning,
        stacklevel=4,
    )


def get_registry() -> Registry:
    """The process-wide registry (built on first use; :func:`reset` forgets it)."""
    global _registry
    with _lock:
        if _registry is None:
            _registry = load_registry(make_plugin_manager())
        return _registry


def reset() -> None:
    """Forget the cached registry, e.g. after installing a plugin or changing the environment."""
    global _registry
    with _lock:
        _registry = None

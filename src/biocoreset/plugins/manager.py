"""Loading plugins: built-ins first, then the ``biocoreset`` entry points.

Order (as in tox 4): every built-in plugin module is registered under its module name, then
third-party plugins are loaded from the ``biocoreset`` entry-point group, then
:meth:`pluggy.PluginManager.check_pending` rejects hook implementations whose names match no hook
(a misspelt ``biocoreset_register_selector`` fails loudly instead of being ignored). Finally each
plugin's hooks are called with a ``register`` callable that records which plugin registered what.

Plugins named in the environment variable ``BIOCORESET_DISABLE_PLUGINS`` (comma-separated plugin
names, e.g. ``biocoreset.selectors.cci`` or an entry-point name) are blocked before loading.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Callable, Iterable
from typing import Any

import pluggy

from biocoreset.errors import PluginError
from biocoreset.plugins import hookspecs
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

BUILTIN_PLUGINS: tuple[str, ...] = (
    "biocoreset.adapters.hf",
    "biocoreset.adapters.rnafm",
    "biocoreset.adapters.esmc",
    "biocoreset.curvature.identity",
    "biocoreset.curvature.diagonal",
    "biocoreset.curvature.kfac",
    "biocoreset.scorers.self_influence",
    "biocoreset.scorers.loss",
    "biocoreset.scorers.grad_norm",
    "biocoreset.selectors.topk",
    "biocoreset.selectors.cci",
    "biocoreset.selectors.random",
    "biocoreset.bench.tasks",
)
"""Module names of the built-in plugins, registered in this order before any entry point."""

_lock = threading.Lock()
_registry: Registry | None = None


def _disabled(extra: Iterable[str] = ()) -> set[str]:
    names = {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}
    return names | set(extra)


def make_plugin_manager(
    *, disable: Iterable[str] = (), entry_points: bool = True, builtins: Iterable[str] | None = None
) -> pluggy.PluginManager:
    """Build a plugin manager with the built-ins and (optionally) entry-point plugins loaded.

    Args:
        disable: Plugin names to block, in addition to ``BIOCORESET_DISABLE_PLUGINS``.
        entry_points: Whether to load third-party plugins from the ``biocoreset`` group.
        builtins: Built-in module names to register (default :data:`BUILTIN_PLUGINS`); modules
            that do not exist are skipped.

    Raises:
        PluginError: A plugin failed to import, or implements a hook that does not exist.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    blocked = _disabled(disable)
    for name in blocked:
        pm.set_blocked(name)
    for modname in BUILTIN_PLUGINS if builtins is None else builtins:
        if pm.is_blocked(modname):
            continue
        try:
            module = importlib.import_module(modname)
        except ModuleNotFoundError as exc:
            if exc.name == modname:  # built-in not shipped in this build
                continue
            raise
        pm.register(module, name=modname)
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
        raise PluginError(
            f"{exc}. Valid hooks: {', '.join(sorted(hookspecs.KINDS.values()))}."
        ) from exc
    return pm


def _sources(pm: pluggy.PluginManager) -> dict[str, str]:
    sources = {}
    for plugin, dist in pm.list_plugin_distinfo():
        name = pm.get_name(plugin)
        if name is not None:
            sources[name] = f"entry point ({dist.project_name} {dist.version})"
    return sources


def load_registry(pm: pluggy.PluginManager) -> Registry:
    """Call every registration hook of ``pm`` and return the filled registry."""
    registry = Registry()
    sources = _sources(pm)
    for kind, hookname in hookspecs.KINDS.items():
        caller = getattr(pm.hook, hookname)
        for impl in reversed(caller.get_hookimpls()):  # registration order
            plugin = impl.plugin_name
            source = sources.get(
                plugin, "built-in" if plugin.startswith("biocoreset.") else "plugin"
            )

            def register(
                name: str,
                factory: Callable[..., Any],
                *,
                description: str = "",
                _kind: str = kind,
                _plugin: str = plugin,
                _source: str = source,
            ) -> None:
                if not callable(factory):
                    raise PluginError(
                        f"plugin {_plugin!r} registered {_kind} {name!r} with a factory that is not "
                        f"callable: {factory!r}"
                    )
                registry.add(
                    Component(
                        kind=_kind,
                        name=name,
                        factory=factory,
                        plugin=_plugin,
                        source=_source,
                        description=description,
                    )
                )

            impl.function(register=register)
    return registry


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

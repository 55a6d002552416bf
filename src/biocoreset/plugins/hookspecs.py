"""The hooks a biocoreset plugin can implement.

A plugin is any module or object with functions decorated by :data:`biocoreset.hookimpl`. It is
found through the ``biocoreset`` entry-point group::

    [project.entry-points.biocoreset]
    my_plugin = "my_package.plugin"

Every hook receives one argument, ``register``, a callable
``register(name, factory, *, description="")``. ``name`` is the kebab-case component name users
type (``"my-selector"``); ``factory(**options)`` builds the component. Registering a name that is
already taken is an error naming both plugins: to replace a built-in, block it with
``BIOCORESET_DISABLE_PLUGINS`` and register your own under the same name.

Hooks are grouped by the phase of a run in which their components act.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

PROJECT = "biocoreset"

hookspec = pluggy.HookspecMarker(PROJECT)
"""Decorator marking the hook specifications below (for biocoreset itself, not for plugins)."""
hookimpl = pluggy.HookimplMarker(PROJECT)
"""Decorator marking a plugin's hook implementations; also exported as ``biocoreset.hookimpl``."""

Register = Callable[..., None]

# -- model: what is scored -----------------------------------------------------------------------


@hookspec
def biocoreset_register_adapters(register: Register) -> None:
    """Register :class:`~biocoreset.protocols.ModelAdapter` factories.

    The factory is called as ``factory(model=None, **options)`` and returns an adapter.

    Example:
        >>> from biocoreset import hookimpl
        >>> @hookimpl
        ... def biocoreset_register_adapters(register):
        ...     register("my-model", lambda **kw: ..., description="my model")
    """


# -- curvature: fitted on D_sub ------------------------------------------------------------------


@hookspec
def biocoreset_register_curvatures(register: Register) -> None:
    """Register :class:`~biocoreset.protocols.CurvatureEstimator` factories.

    The factory is called as ``factory(damping=..., damping_relative=..., **options)``.
    """


# -- scoring: one number per sequence ------------------------------------------------------------


@hookspec
def biocoreset_register_scorers(register: Register) -> None:
    """Register :class:`~biocoreset.protocols.Scorer` factories, called as ``factory(**options)``."""


# -- selection: scores to a coreset --------------------------------------------------------------


@hookspec
def biocoreset_register_selectors(register: Register) -> None:
    """Register :class:`~biocoreset.protocols.Selector` factories, called as ``factory(**options)``."""


# -- evaluation: downstream benchmark tasks ------------------------------------------------------


@hookspec
def biocoreset_register_tasks(register: Register) -> None:
    """Register downstream benchmark task factories (see :mod:`biocoreset.bench`)."""


KINDS: dict[str, str] = {
    "adapter": "biocoreset_register_adapters",
    "curvature": "biocoreset_register_curvatures",
    "scorer": "biocoreset_register_scorers",
    "selector": "biocoreset_register_selectors",
    "task": "biocoreset_register_tasks",
}
"""Component kind → the hook that registers components of that kind."""

__all__ = ["KINDS", "PROJECT", "Register", "hookimpl", "hookspec", *KINDS.values()]

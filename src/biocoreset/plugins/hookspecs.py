"""The hooks a biocoreset plugin can implement.

A plugin is any module or object with functions decorated by :data:`biocoreset.hookimpl`. It is
found through the ``biocoreset`` entry-point group::

    [project.entry-points.biocoreset]
    my_plugin = "my_package.plugin"

Every hook receives one argument, ``register``, a :class:`Register`:
``register(name, factory, *, description="")``. ``name`` is the kebab-case component name users
type (``"my-selector"``); ``factory(**options)`` builds the component, and may be given as a
``"package.module:attr"`` string so that the module is imported only when the component is first
used. Options a factory does not declare are refused before it is called (see
:mod:`biocoreset.plugins.options`).

Hooks are called through pluggy (``pm.hook``), in pluggy's order: the plugin registered last is
called first, so entry-point plugins run before the built-ins. Registering a name that is already
taken is an error naming both plugins; it suggests blocking the plugin that registered the name
second (for a plugin clashing with a built-in: the built-in). To replace a built-in, block it with
``BIOCORESET_DISABLE_PLUGINS`` and register your own under the same name.

Hooks are grouped by the phase of a run in which their components act.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import pluggy

PROJECT = "biocoreset"

hookspec = pluggy.HookspecMarker(PROJECT)
"""Decorator marking the hook specifications below (for biocoreset itself, not for plugins)."""
hookimpl = pluggy.HookimplMarker(PROJECT)
"""Decorator marking a plugin's hook implementations; also exported as ``biocoreset.hookimpl``."""

Factory = Callable[..., Any] | str
"""A component factory, or a ``"package.module:attr"`` string naming one (imported on first use)."""


class Register(Protocol):
    """The ``register`` callable every ``biocoreset_register_<kind>s`` hook receives."""

    def __call__(self, name: str, factory: Factory, *, description: str = "") -> None:
        """Register ``factory`` under the kebab-case ``name``.

        Args:
            name: Component name users type (``"my-selector"``).
            factory: Callable building the component from keyword options, or
                ``"package.module:attr"`` naming it (imported on first use).
            description: One line shown by ``biocoreset plugins``.
        """


class RegisterFamily(Protocol):
    """The ``register`` callable :func:`biocoreset_register_families` receives."""

    def __call__(
        self, name: str, family: Any, *, description: str = "", before: str | None = "generic"
    ) -> None:
        """Register a model family of the ``hf`` adapter.

        Args:
            name: Family name (kebab-case), reported as ``adapter.family``.
            family: A :class:`~biocoreset.adapters.hf_families.ModelFamily`, or a
                ``"package.module:attr"`` string naming one.
            description: One line for ``biocoreset plugins``.
            before: Name of the family this one is tried before (default ``"generic"``, the
                catch-all); ``None`` appends it to the built-in order.
        """


# -- model: what is scored -----------------------------------------------------------------------


@hookspec
def biocoreset_register_adapters(register: Register) -> None:
    """Register :class:`~biocoreset.protocols.ModelAdapter` factories.

    The factory is called as ``factory(model=None, **options)`` and returns an adapter. Declare
    the options of a factory taking ``**options`` with
    :func:`~biocoreset.plugins.options.declare_options`.

    Example:
        >>> from biocoreset import hookimpl
        >>> @hookimpl
        ... def biocoreset_register_adapters(register):
        ...     register("my-model", "my_package.adapter:make_adapter", description="my model")
    """


@hookspec
def biocoreset_register_families(register: RegisterFamily) -> None:
    """Register model families the generic ``hf`` adapter recognises
    (:class:`~biocoreset.adapters.hf_families.ModelFamily`), with ``register(name, family, *,
    description="", before="generic")``.

    Example:
        >>> from biocoreset import hookimpl
        >>> @hookimpl
        ... def biocoreset_register_families(register):
        ...     register("caduceus", "my_package.families:CADUCEUS", description="Caduceus DNA")
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

FAMILY_HOOK = "biocoreset_register_families"
"""The hook registering model families (not a component kind: families are not built by name)."""

__all__ = [
    "FAMILY_HOOK",
    "KINDS",
    "PROJECT",
    "Factory",
    "Register",
    "RegisterFamily",
    "hookimpl",
    "hookspec",
    FAMILY_HOOK,
    *KINDS.values(),
]

"""Named conformance checks: a :class:`Check` is one small check of one component, named
``"<component>-<check>"`` so that each failure is its own pytest id (see
:mod:`biocoreset.testing.parametrize`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import attrs

__all__ = ["Check", "component_name", "named"]


@attrs.frozen
class Check:
    """One named conformance check of one component; call it to run it.

    Attributes:
        name: ``"<component>-<check>"`` (the pytest id).
        run: Runs the check; raises :class:`AssertionError` saying what failed.
    """

    name: str
    run: Callable[[], None] = attrs.field(repr=False)

    def __call__(self) -> None:
        self.run()


def component_name(component: Any) -> str:
    """A short name of a component or factory, for check ids (``"TopKSelector"``)."""
    return str(getattr(component, "__qualname__", None) or type(component).__qualname__)


def named(component: Any, steps: Iterable[tuple[str, Callable[[], None]]]) -> Iterator[Check]:
    """Wrap ``(check name, callable)`` pairs as :class:`Check` objects named after ``component``."""
    prefix = component_name(component)
    for name, run in steps:
        yield Check(f"{prefix}-{name}", run)

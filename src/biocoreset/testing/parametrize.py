"""Named conformance checks (as scikit-learn's ``parametrize_with_checks``): each check of a
component is a small :class:`Check` with its own name, so that each failure is its own pytest id.

The generators :func:`~biocoreset.testing.adapter_checks`, :func:`~biocoreset.testing.curvature_checks`,
:func:`~biocoreset.testing.scorer_checks` and :func:`~biocoreset.testing.selector_checks` yield
them; :func:`parametrize_with_checks` turns components into a ``pytest.mark.parametrize`` over all
their checks (the kind of each component is read from the protocol it implements)::

    from biocoreset.testing import parametrize_with_checks

    @parametrize_with_checks([MySelector(), MyCurvature])
    def test_conformance(check):
        check()

Example:
    >>> from biocoreset.selectors.topk import TopKSelector
    >>> from biocoreset.testing import selector_checks
    >>> [c.name for c in selector_checks(TopKSelector())]
    ['TopKSelector-protocol', 'TopKSelector-budget_indices', 'TopKSelector-seed_reproducible']
    >>> for check in selector_checks(TopKSelector()):
    ...     check()
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from biocoreset.protocols import CurvatureEstimator, ModelAdapter, Scorer, Selector
from biocoreset.testing.checks import adapter_checks, scorer_checks, selector_checks
from biocoreset.testing.curvature import curvature_checks
from biocoreset.testing.named import Check

__all__ = ["checks_for", "parametrize_with_checks"]


def checks_for(component: Any) -> list[Check]:
    """The checks of ``component`` (an instance, or a factory built without options), by the
    protocol it implements: adapter, curvature, scorer or selector.

    Raises:
        TypeError: ``component`` implements none of the four protocols.
    """
    made = component
    if isinstance(component, type) or not any(
        isinstance(component, p) for p in (ModelAdapter, CurvatureEstimator, Scorer, Selector)
    ):
        made = component() if callable(component) else component
    kinds: list[tuple[type, Callable[..., Iterator[Check]]]] = [
        (ModelAdapter, adapter_checks),
        (CurvatureEstimator, curvature_checks),
        (Scorer, scorer_checks),
        (Selector, selector_checks),
    ]
    for protocol, generate in kinds:
        if isinstance(made, protocol):
            return list(generate(component))
    raise TypeError(
        f"{component!r} is not an adapter, curvature, scorer or selector (it implements none of "
        "their protocols); pass the component or its factory."
    )


def parametrize_with_checks(components: Iterable[Any]) -> Any:
    """A ``pytest.mark.parametrize("check", ...)`` over every check of every component, one
    pytest id per check (``"TopKSelector-budget_indices"``).

    Args:
        components: Adapters, curvatures, scorers and selectors (instances, or factories called
            without options).

    Returns:
        The pytest mark; the decorated test takes one argument, ``check``, and calls it.
    """
    import pytest

    checks = [check for component in components for check in checks_for(component)]
    return pytest.mark.parametrize("check", checks, ids=[c.name for c in checks])

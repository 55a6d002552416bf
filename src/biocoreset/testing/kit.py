"""What the conformance checks share: the relative error and its tolerance, the kit's records,
a component from its factory, and checks named by their function.

A conformance check is a top-level function named for what it checks (``budget_indices``,
``gradients_match_brute_force``...): import it and call it on a component to run that one
check. :func:`checks_of` turns a list of them into named
:class:`~biocoreset.testing.named.Check` objects, ``"<component>-<function name>"``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch

from biocoreset.plugins.options import declared_options
from biocoreset.protocols import ModelAdapter
from biocoreset.testing.models import random_rna
from biocoreset.testing.named import Check, component_name

__all__ = ["checks_of", "close", "instance", "kit_records", "tolerance"]

F64 = torch.float64


def tolerance(adapter: ModelAdapter, rtol: float | None) -> float:
    """``rtol``, or from the model's dtype: ``1e-6`` for a float64 model, else ``1e-3``."""
    if rtol is not None:
        return rtol
    wide = all(p.dtype == F64 for p in adapter.model.parameters())
    return 1e-6 if wide else 1e-3


def close(a: torch.Tensor, b: torch.Tensor) -> float:
    """Relative error ``‖a − b‖ / max(‖b‖, tiny)``."""
    a, b = a.to(F64).cpu(), b.to(F64).cpu()
    return float((a - b).norm() / b.norm().clamp_min(1e-12))


def kit_records(n: int, seed: int) -> list[tuple[str, str]]:
    """``n`` random RNA records of 4–14 letters (ids ``r0``, ``r1``...)."""
    return random_rna(n, seed=seed, min_len=4, max_len=14, prefix="r")


def instance(component: Any, protocol: type) -> Any:
    """``component`` itself, or what its factory builds with no options (its options must be
    declared: a factory taking ``**kwargs`` cannot be checked for typos)."""
    if not isinstance(component, type) and isinstance(component, protocol):
        return component
    assert callable(component), f"{component!r} is neither a {protocol.__name__} nor a factory"
    assert declared_options(component) is not None, (
        f"factory {component!r} takes **kwargs: declare its options (an attrs class, keyword "
        "parameters, or biocoreset.plugins.declare_options) so that typos are refused"
    )
    return component()


def checks_of(
    component: Any, checks: Iterable[Callable[..., None]], *args: Any, **options: Any
) -> Iterator[Check]:
    """One :class:`~biocoreset.testing.named.Check` per check function, named
    ``"<component>-<function name>"``, calling it with ``args`` and ``options``."""
    prefix = component_name(component)
    for check in checks:
        yield Check(f"{prefix}-{check.__name__}", functools.partial(check, *args, **options))

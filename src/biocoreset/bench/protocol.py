"""The :class:`BenchmarkTask` protocol and the metric descriptions tables are built from.

A task plugin registers a factory with the ``biocoreset_register_tasks`` hook::

    from biocoreset import hookimpl

    @hookimpl
    def biocoreset_register_tasks(register):
        register("my-task", MyTask, description="what it measures")

``factory(**options)`` returns an object with the attributes and methods below. The runner calls
``run(backbone, seed=s)`` for every seed and backbone and aggregates the returned metrics.

Example:
    >>> from biocoreset.bench.tasks import RNATypeTask
    >>> from biocoreset.bench.data import Example
    >>> ex = [Example(id=str(i), sequence="ACGU" * (i + 1), label="a" if i % 2 else "b") for i in range(6)]
    >>> isinstance(RNATypeTask(train=ex, test=ex), BenchmarkTask)
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import attrs

__all__ = ["BenchmarkTask", "MetricSpec"]


@attrs.frozen
class MetricSpec:
    """How one metric is named and shown.

    Attributes:
        key: Key in the dict :meth:`BenchmarkTask.run` returns (``"acc"``).
        label: Column label (``"ACC(%)"``, ``"MSE ↓"``).
        percent: Shown multiplied by 100.
        higher_is_better: Direction used to mark the best rows.
    """

    key: str
    label: str
    percent: bool = True
    higher_is_better: bool = True


@runtime_checkable
class BenchmarkTask(Protocol):
    """A downstream task: data, head, training recipe and metrics.

    Attributes:
        name: Registered kebab-case name (``"rna-type"``).
        title: Short column-group title as in the paper's tables (``"TypeCls"``).
        group: Table the task belongs to (``"rna-function"``, ``"rna-structure"``, ``"protein"``...).
        metrics: The metrics :meth:`run` returns, in display order.
    """

    name: str
    title: str
    group: str
    metrics: Sequence[MetricSpec]

    def run(self, backbone: Any, *, seed: int) -> dict[str, float]:
        """Train on the task with ``seed`` on top of ``backbone`` (a
        :class:`~biocoreset.bench.backbone.Backbone`) and return ``{metric key: value}`` on the test split."""
        ...

    def test_sequences(self) -> list[str]:
        """Every sequence of the test split (used to filter pretraining corpora, see
        :mod:`biocoreset.bench.dedup`)."""
        ...

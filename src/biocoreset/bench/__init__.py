"""Downstream benchmarks: tasks (built-in plugins), heads, metrics, loaders and the runner.

The names below are imported on first use, so the ``biocoreset`` command can add its ``bench``
subcommand without importing torch.

>>> from biocoreset.bench import run_bench, Backbone, BenchmarkTask
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY = {
    "Backbone": "biocoreset.bench.backbone",
    "load_backbone": "biocoreset.bench.backbone",
    "Example": "biocoreset.bench.data",
    "Split": "biocoreset.bench.data",
    "BenchmarkTask": "biocoreset.bench.protocol",
    "MetricSpec": "biocoreset.bench.protocol",
    "BenchTable": "biocoreset.bench.runner",
    "run_bench": "biocoreset.bench.runner",
}

__all__ = [
    "Backbone",
    "BenchTable",
    "BenchmarkTask",
    "Example",
    "MetricSpec",
    "Split",
    "load_backbone",
    "run_bench",
]

if TYPE_CHECKING:
    from biocoreset.bench.backbone import Backbone, load_backbone
    from biocoreset.bench.data import Example, Split
    from biocoreset.bench.protocol import BenchmarkTask, MetricSpec
    from biocoreset.bench.runner import BenchTable, run_bench


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'biocoreset.bench' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value

"""Downstream benchmarks: tasks (built-in plugins), heads, metrics, loaders and the runner.

>>> from biocoreset.bench import run_bench, Backbone, BenchmarkTask
"""

from biocoreset.bench.backbone import Backbone, load_backbone
from biocoreset.bench.data import Example, Split
from biocoreset.bench.protocol import BenchmarkTask, MetricSpec
from biocoreset.bench.runner import BenchTable, run_bench

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

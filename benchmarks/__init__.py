"""The benchmark scripts, each run from the repository root as ``python -m benchmarks.NAME``.

Shared helpers are in :mod:`benchmarks._common`; figures and commands are in ``docs/benchmarks.md``
and the pages it links.
"""

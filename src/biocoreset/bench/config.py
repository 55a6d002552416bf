"""Benchmark configuration files (TOML or JSON), read strictly.

Layout (paths are relative to the file)::

    seeds = [0, 1, 2]          # optional (default 0, 1, 2)
    device = "auto"            # optional
    batch_size = 32            # optional: sequences per forward pass for frozen features

    [[checkpoint]]
    name = "CCI"               # row label
    path = "runs/cci"          # pretrain output, transformers folder or .pt state dict
    data_size = "0.2M"         # optional
    adapter = "rna-fm"         # optional (default: from the model manifest, else "hf")
    adapter_options = {}       # optional
    init = "random"            # optional: re-initialise the architecture (the paper's "Raw 0M" row)

    [[task]]
    name = "rna-type"          # registered task name (`biocoreset plugins --kind task`)
    title = "TypeCls"          # optional column title
    train = "data/nRC_train.fasta"
    test = "data/nRC_test.fasta"
    epochs = 30                # any task option

Unknown keys are errors that list the valid ones.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import attrs

from biocoreset.bench.backbone import Backbone, load_backbone
from biocoreset.errors import ConfigError

__all__ = ["BenchConfig", "load_bench_config", "make_backbone"]

_TOP = {"seeds", "device", "batch_size", "checkpoint", "task"}
_CHECKPOINT = {"name", "path", "data_size", "adapter", "adapter_options", "init"}
_PATH_KEYS = ("train", "test", "valid")


@attrs.frozen(kw_only=True)
class BenchConfig:
    """A parsed benchmark configuration.

    Attributes:
        seeds: Seeds of every task run.
        device: Device of every backbone.
        batch_size: Sequences per forward pass for frozen features.
        checkpoints: Checkpoint tables (paths resolved).
        tasks: Task tables (paths resolved), each with a ``name``.
    """

    seeds: tuple[int, ...] = (0, 1, 2)
    device: str = "auto"
    batch_size: int = 32
    checkpoints: tuple[dict[str, Any], ...] = ()
    tasks: tuple[dict[str, Any], ...] = ()


def _loads(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text)
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            import tomli as tomllib  # type: ignore[no-redef]
        return tomllib.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{str(path)!r} is not valid TOML/JSON: {exc}") from exc


def _resolve(value: Any, base: Path) -> Any:
    if isinstance(value, str):
        p = Path(value).expanduser()
        return str(p if p.is_absolute() else base / p)
    if isinstance(value, list):
        return [_resolve(v, base) for v in value]
    return value


def load_bench_config(path: str | os.PathLike[str]) -> BenchConfig:
    """Read a benchmark configuration (see the module docstring).

    Raises:
        ConfigError: Unknown keys, a checkpoint without ``name``/``path`` or a task without ``name``.
    """
    p = Path(path)
    data = _loads(p)
    base = p.resolve().parent
    unknown = sorted(set(data) - _TOP)
    if unknown:
        raise ConfigError(
            f"{str(p)!r}: unknown key(s) {unknown}; valid: {', '.join(sorted(_TOP))}."
        )
    checkpoints = []
    for i, ck in enumerate(data.get("checkpoint", []), 1):
        bad = sorted(set(ck) - _CHECKPOINT)
        if bad:
            raise ConfigError(
                f"{str(p)!r} checkpoint {i}: unknown key(s) {bad}; valid: {', '.join(sorted(_CHECKPOINT))}."
            )
        if "name" not in ck or "path" not in ck:
            raise ConfigError(f"{str(p)!r} checkpoint {i}: needs 'name' and 'path'.")
        if ck.get("init") not in (None, "random"):
            raise ConfigError(
                f"{str(p)!r} checkpoint {i}: init must be 'random' or absent, got {ck['init']!r}."
            )
        checkpoints.append({**ck, "path": _resolve(ck["path"], base)})
    tasks = []
    for i, t in enumerate(data.get("task", []), 1):
        if "name" not in t:
            raise ConfigError(
                f"{str(p)!r} task {i}: needs a 'name' (see `biocoreset plugins --kind task`)."
            )
        tasks.append({k: (_resolve(v, base) if k in _PATH_KEYS else v) for k, v in t.items()})
    seeds = data.get("seeds", [0, 1, 2])
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, int) and s >= 0 for s in seeds)
    ):
        raise ConfigError(
            f"{str(p)!r}: seeds must be a non-empty list of integers >= 0, got {seeds!r}."
        )
    return BenchConfig(
        seeds=tuple(seeds),
        device=str(data.get("device", "auto")),
        batch_size=int(data.get("batch_size", 32)),
        checkpoints=tuple(checkpoints),
        tasks=tuple(tasks),
    )


def make_backbone(spec: dict[str, Any], *, device: str = "auto", batch_size: int = 32) -> Backbone:
    """A :class:`Backbone` from a checkpoint table (``init = "random"``: re-initialised, seed 0)."""
    path, adapter, options = spec["path"], spec.get("adapter"), spec.get("adapter_options")

    def load() -> Any:
        built = load_backbone(path, adapter=adapter, adapter_options=options)
        if spec.get("init") == "random":
            from biocoreset.train.reinit import reinitialise

            reinitialise(built.model, 0)
        return built

    return Backbone(
        name=str(spec["name"]),
        load=load,
        data_size=str(spec.get("data_size", "")),
        device=device,
        batch_size=batch_size,
    )

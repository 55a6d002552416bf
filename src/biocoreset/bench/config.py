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

import os
from pathlib import Path
from typing import Any

import attrs

from biocoreset.bench.backbone import Backbone, load_backbone
from biocoreset.config.fields import integer_ge, member_of, none_or
from biocoreset.config.toml import build, check_table, read_toml, schema_of
from biocoreset.errors import ConfigError

__all__ = ["BenchConfig", "CheckpointSpec", "load_bench_config", "make_backbone"]

_PATH_KEYS = ("train", "test", "valid")


def _seeds(instance: object, attribute: Any, value: Any) -> None:
    if not value or not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value
    ):
        raise ConfigError(f"seeds must be a non-empty list of integers >= 0, got {list(value)!r}.")


@attrs.frozen(kw_only=True)
class CheckpointSpec:
    """One ``[[checkpoint]]`` table (its fields are the table's keys).

    Attributes:
        name: Row label.
        path: Pretrain output, transformers folder or ``.pt`` state dict.
        data_size: Pretraining data size shown in the table.
        adapter: Adapter name (``None``: from the model manifest, else ``"hf"``).
        adapter_options: Adapter options.
        init: ``"random"`` re-initialises the architecture (the paper's "Raw 0M" row).
    """

    name: str
    path: str
    data_size: str = ""
    adapter: str | None = None
    adapter_options: dict[str, Any] | None = None
    init: str | None = attrs.field(default=None, validator=none_or(member_of(("random",))))


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

    seeds: tuple[int, ...] = attrs.field(default=(0, 1, 2), converter=tuple, validator=_seeds)
    device: str = "auto"
    batch_size: int = attrs.field(default=32, validator=integer_ge(1))
    checkpoints: tuple[dict[str, Any], ...] = ()
    tasks: tuple[dict[str, Any], ...] = ()


_TOP = {
    **schema_of(BenchConfig, exclude=("checkpoints", "tasks")),
    "checkpoint": schema_of(BenchConfig)["checkpoints"],
    "task": schema_of(BenchConfig)["tasks"],
}
_CHECKPOINT = schema_of(CheckpointSpec)


def _resolve(value: Any, base: Path) -> Any:
    if isinstance(value, str):
        p = Path(value).expanduser()
        return str(p if p.is_absolute() else base / p)
    if isinstance(value, list):
        return [_resolve(v, base) for v in value]
    return value


def load_bench_config(path: str | os.PathLike[str]) -> BenchConfig:
    """Read a benchmark configuration (see the module docstring).

    The keys and their types come from :class:`BenchConfig` and :class:`CheckpointSpec`
    (:func:`~biocoreset.config.toml.check_table`); the file is read by
    :func:`~biocoreset.config.toml.read_toml`.

    Raises:
        ConfigError: Unknown keys or wrong types, a checkpoint without ``name``/``path`` or a task
            without ``name``.
    """
    p = Path(path)
    source = repr(str(p))
    data = read_toml(p)
    base = p.resolve().parent
    check_table(data, _TOP, source=source)
    checkpoints = []
    for i, ck in enumerate(data.get("checkpoint", []), 1):
        check_table(ck, _CHECKPOINT, f"checkpoint[{i}].", source)
        if "name" not in ck or "path" not in ck:
            raise ConfigError(f"{source} checkpoint {i}: needs 'name' and 'path'.")
        build(CheckpointSpec, None, ck, f"checkpoint {i}")
        checkpoints.append({**ck, "path": _resolve(ck["path"], base)})
    tasks = []
    for i, t in enumerate(data.get("task", []), 1):
        if "name" not in t:
            raise ConfigError(
                f"{source} task {i}: needs a 'name' (see `biocoreset plugins --kind task`)."
            )
        tasks.append({k: (_resolve(v, base) if k in _PATH_KEYS else v) for k, v in t.items()})
    top = {k: data[k] for k in ("seeds", "device", "batch_size") if k in data}
    try:
        return BenchConfig(**top, checkpoints=tuple(checkpoints), tasks=tuple(tasks))
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


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

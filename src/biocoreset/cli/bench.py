"""``biocoreset bench``: run downstream tasks on checkpoints; write Markdown and CSV tables.

Example::

    biocoreset bench bench.toml -o results/ --checkpoint CCI=runs/cci --checkpoint Random=runs/random
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from biocoreset.cli.common import add_command, add_force, progress
from biocoreset.errors import ConfigError

__all__ = ["add_bench_parser"]


def _checkpoint_arg(text: str) -> dict[str, Any]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(
            f"--checkpoint takes NAME=PATH (e.g. CCI=runs/cci), got {text!r}"
        )
    return {"name": name, "path": path}


_IO = (
    "config",
    "benchmark config (TOML or JSON; see docs/pretrain-bench.md)",
    "folder for results.md, results.csv, summary.csv",
)
_HELP = "run downstream tasks on checkpoints; write Markdown + CSV tables"
_ABOUT = (
    "Run the tasks of a benchmark config (TOML/JSON) on each checkpoint with seeds 0, 1, 2 "
    "and write results.md (tables like the paper's), results.csv and summary.csv."
)


def add_bench_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``bench`` subcommand on an :mod:`argparse` subparsers object (handler ``func``)."""
    p = add_command(subparsers, "bench", _cmd_bench, help=_HELP, description=_ABOUT, io=_IO)
    p.add_argument(
        "--checkpoint",
        action="append",
        type=_checkpoint_arg,
        default=[],
        metavar="NAME=PATH",
        help="add a checkpoint row (repeatable): any model folder or file --model accepts",
    )
    p.add_argument(
        "--data-size",
        action="append",
        default=[],
        metavar="NAME=SIZE",
        help="data size label of a checkpoint row (e.g. CCI=0.2M)",
    )
    p.add_argument(
        "--task",
        action="append",
        default=[],
        metavar="NAME",
        help="run only these tasks (repeatable)",
    )
    p.add_argument("--seeds", type=int, nargs="+", help="seeds (default: the config's, else 0 1 2)")
    p.add_argument("--device", help="'auto', 'cpu', 'cuda:0', ...")
    add_force(p, "overwrite existing result files")
    return p


def _cmd_bench(args: argparse.Namespace) -> int:
    from biocoreset.bench.config import load_bench_config, make_backbone
    from biocoreset.bench.runner import run_bench

    cfg = load_bench_config(args.config)
    sizes = dict(s.partition("=")[::2] for s in args.data_size)
    specs = [*cfg.checkpoints, *args.checkpoint]
    for spec in specs:
        if spec["name"] in sizes:
            spec["data_size"] = sizes[spec["name"]]
    if not specs:
        raise ConfigError(
            "no checkpoint: add [[checkpoint]] tables to the config or pass --checkpoint NAME=PATH."
        )
    tasks = [t for t in cfg.tasks if not args.task or t["name"] in args.task]
    if not tasks:
        wanted = f" matching {args.task}" if args.task else ""
        raise ConfigError(f"no task{wanted} in {args.config!r}; add [[task]] tables with a 'name'.")
    device = args.device or cfg.device
    backbones = [make_backbone(s, device=device, batch_size=cfg.batch_size) for s in specs]
    table = run_bench(
        tasks,
        backbones,
        seeds=tuple(args.seeds or cfg.seeds),
        output_dir=args.output,
        force=args.force,
        progress=progress(args),
    )
    sys.stdout.write(table.to_markdown())
    print(f"\n{len(table)} values -> {args.output}/results.md, results.csv, summary.csv")
    return 0

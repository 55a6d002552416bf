"""``biocoreset run`` (every step from one TOML file) and ``biocoreset demo``."""

from __future__ import annotations

import argparse
from typing import Any

from biocoreset.cli.common import add_command, add_force, progress

__all__ = ["add_demo_parser", "add_run_parser"]

_RUN = "fine-tune, score and select as one TOML file says (resumable)"
_DEMO = "the whole method on a generated RNA corpus with a tiny model (~1 min)"


def add_run_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``run`` on an :mod:`argparse` subparsers object (handler ``func``)."""
    p = add_command(subparsers, "run", _cmd_run, help=_RUN)
    p.add_argument("config", help="TOML file (see docs/pipeline.md for every key)")
    add_force(p, "discard the run folder's existing results")
    return p


def add_demo_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``demo`` on an :mod:`argparse` subparsers object (handler ``func``)."""
    p = add_command(subparsers, "demo", _cmd_demo, help=_DEMO)
    p.add_argument("-o", "--output", default="biocoreset-demo", help="output folder")
    add_force(p, "overwrite an existing output folder")
    return p


def _cmd_run(args: argparse.Namespace) -> int:
    from biocoreset.run.file import load_run_config
    from biocoreset.run.pipeline import run_pipeline
    from biocoreset.runtime.distributed import current

    cfg = load_run_config(args.config)
    state = run_pipeline(cfg, force=args.force, progress=progress(args))
    if current().is_main:
        for step, info in state["steps"].items():
            line = info.get("summary") or ", ".join(
                f"{k}={v}" for k, v in info.items() if k not in ("done", "validation")
            )
            print(f"{step}: {line}")
        print(f"-> {cfg.output}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from biocoreset.run.demo import run_demo

    run_demo(args.output, force=args.force, progress=progress(args))
    return 0

"""``biocoreset run`` (every step from one TOML file) and ``biocoreset demo``."""

from __future__ import annotations

import argparse
from typing import Any

from biocoreset.cli.common import add_progress_option, progress

__all__ = ["add_demo_parser", "add_run_parser"]


def add_run_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``run`` on an :mod:`argparse` subparsers object (handler ``func``)."""
    p = subparsers.add_parser(
        "run", help="fine-tune, score and select as one TOML file says (resumable)"
    )
    p.add_argument("config", help="TOML file (see docs/pipeline.md for every key)")
    p.add_argument("--force", action="store_true", help="discard the run folder's existing results")
    add_progress_option(p)
    p.set_defaults(func=_cmd_run)
    return p


def add_demo_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``demo`` on an :mod:`argparse` subparsers object (handler ``func``)."""
    p = subparsers.add_parser(
        "demo", help="the whole method on a generated RNA corpus with a tiny model (~1 min)"
    )
    p.add_argument("-o", "--output", default="biocoreset-demo", help="output folder")
    p.add_argument("--force", action="store_true", help="overwrite an existing output folder")
    add_progress_option(p)
    p.set_defaults(func=_cmd_demo)
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

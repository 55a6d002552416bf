"""``biocoreset plugins``: what is installed and where it comes from."""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["add_plugins_parser"]


def add_plugins_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``plugins`` on an :mod:`argparse` subparsers object (handler ``func``)."""
    p = subparsers.add_parser("plugins", help="list installed components and where they come from")
    p.add_argument(
        "--kind",
        choices=["adapter", "curvature", "scorer", "selector", "task"],
        help="only this kind",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--options",
        metavar="NAME",
        help="list the options of component NAME (and an adapter's named model sizes)",
    )
    p.set_defaults(func=_cmd_plugins)
    return p


def _sizes_table(name: str) -> list[str]:
    from biocoreset.modelio import model_sizes

    try:
        sizes = model_sizes(name)
    except ImportError as exc:  # e.g. esmc without the esm package
        return [f"named sizes: unavailable ({exc})"]
    if not sizes:
        return []
    lines = ["", "named sizes (size=NAME; random weights, or the shapes of a saved model):"]
    lines.append(f"  {'name':<10} {'layers':>6} {'hidden':>6} {'heads':>5} {'parameters':>13}")
    for size, info in sizes.items():
        lines.append(
            f"  {size:<10} {info['layers']:>6} {info['hidden']:>6} {info['heads']:>5} "
            f"{info['params']:>13,}"
        )
    lines.append("  time per training step on CPU: see docs/adapters.md (named sizes)")
    return lines


def _cmd_plugins(args: argparse.Namespace) -> int:
    from biocoreset.plugins import format_options, get_registry

    if args.options:
        print(format_options(args.kind, args.options))
        if args.kind in (None, "adapter") and args.options in get_registry().names("adapter"):
            for line in _sizes_table(args.options):
                print(line)
        return 0
    comps = get_registry().components(args.kind)
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "kind": c.kind,
                        "name": c.name,
                        "plugin": c.plugin,
                        "source": c.source,
                        "description": c.description,
                    }
                    for c in comps
                ],
                indent=2,
            )
        )
        return 0
    width = max((len(c.name) for c in comps), default=4)
    kind = None
    for c in comps:
        if c.kind != kind:
            kind = c.kind
            print(f"{kind}s:")
        print(f"  {c.name:<{width}}  {c.description}  [{c.plugin}; {c.source}]")
    return 0

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
    p.set_defaults(func=_cmd_plugins)
    return p


def _cmd_plugins(args: argparse.Namespace) -> int:
    from biocoreset.plugins import get_registry

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

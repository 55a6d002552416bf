"""``biocoreset diagnose``: is the selection signal or noise? A report on scores and coresets."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from biocoreset.cli.common import (
    add_command,
    add_data_options,
    add_force,
    open_source,
)

__all__ = ["add_diagnose_parser"]


_HELP = "report: score vs length and loss, stability, coreset composition, warnings"
_ABOUT = (
    "Write report.md, report.json and plots about a score file and, optionally, "
    "coresets selected from it: how much of the score is length, how stable it is across mask "
    "draws, and what each coreset covers against random sets of the same size."
)
_IO = (
    "scores",
    "score file written by `biocoreset score`",
    "folder for report.md, report.json, PNGs",
)


def add_diagnose_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``diagnose`` on an :mod:`argparse` subparsers object (handler ``func``)."""
    p = add_command(subparsers, "diagnose", _cmd_diagnose, help=_HELP, description=_ABOUT, io=_IO)
    p.add_argument(
        "--sequences",
        help="the corpus, for the full header lines that --label-regex reads (default: the ids)",
    )
    labels = p.add_mutually_exclusive_group()
    labels.add_argument("--labels", help="TSV of id<TAB>label (e.g. RNA type, family)")
    labels.add_argument(
        "--label-regex",
        help="pattern whose first group (or whole match) in each header is the label, e.g. "
        "'^(RF\\d+)' for Rfam families",
    )
    p.add_argument(
        "--coreset",
        action="append",
        default=[],
        help="a coreset folder from `biocoreset select` (or an id file); repeat for several",
    )
    p.add_argument(
        "--finetune",
        help="the fine-tune record (finetune.json or its folder; default: finetune/ beside the "
        "scores when they are in a run folder)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the random baseline sets")
    add_data_options(p)
    add_force(p, "overwrite an existing report")
    return p


def _cmd_diagnose(args: argparse.Namespace) -> int:
    from biocoreset.diagnose import diagnose
    from biocoreset.store.atomic import check_not_cwd, check_not_input

    inputs = [args.scores, args.labels, args.sequences, args.finetune, *(args.coreset or [])]
    check_not_input(inputs, [args.output], command="diagnose")  # the folder is replaced whole
    if Path(args.output).is_dir():
        check_not_cwd(args.output)
    headers = None
    if args.sequences and args.label_regex:
        headers = {rid: header for rid, _, header in open_source(args).iter_with_headers()}
    report = diagnose(
        args.scores,
        labels=args.labels,
        label_regex=args.label_regex,
        headers=headers,
        coresets=args.coreset,
        finetune=args.finetune,
        seed=args.seed,
    )
    written = report.write(args.output, force=args.force)
    s = report.summary
    print(
        f"diagnosed {s['num_sequences']:,} scores -> {args.output}/ ({', '.join(sorted(written))})"
    )
    print(
        f"length: Spearman ρ(score, length) = {s['length']['spearman']:.2f}; "
        f"loss: ρ(score, loss) = {s['loss']['spearman']:.2f}"
    )
    for name, row in s["coresets"].items():
        c = row["coreset"]
        cov = f", {c['covered']} of {c['labels']} labels" if "covered" in c else ""
        print(
            f"coreset {name}: {c['size']:,} sequences, median length {c['median_length']:.0f}{cov}"
        )
    for warning in report.warnings:
        print(f"warning: {warning}")
    return 0

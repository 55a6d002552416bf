"""``biocoreset select``: a coreset FASTA, id list and a plot of the selection."""

from __future__ import annotations

import argparse
from typing import Any

from biocoreset.cli.common import (
    add_command,
    add_common,
    add_data_options,
    add_flags,
    json_object,
    open_source,
    parse_budget,
    progress,
)

__all__ = ["add_select_parser"]


_IO = (
    "scores",
    "score file written by `biocoreset score`",
    "folder for coreset.fasta, coreset_ids.txt, selection.png",
)
_HELP = "select a coreset: FASTA, id list and a plot of the selection"


def add_select_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``select`` on an :mod:`argparse` subparsers object (handler ``func``)."""
    p = add_command(subparsers, "select", _cmd_select, help=_HELP, io=_IO)
    p.add_argument(
        "--method", default="cci", help="selector: cci (default), topk, random or a plugin's"
    )
    p.add_argument(
        "--budget", type=parse_budget, required=True, help="count (int) or fraction (float)"
    )
    add_flags(
        p,
        ("--seed", int, "seed of random choices (default: the preset's, 0)"),
        ("--beta", float, "CCI hard cutoff rate (default 0.05)"),
        ("--strata", int, "CCI number of strata (default 50)"),
    )
    p.add_argument("--options", type=json_object, help="JSON object of selector options")
    p.add_argument(
        "--debias",
        choices=["length"],
        help="topk/cci: select on the length-conditional score (each score compared with those of "
        "similar length); default: the paper's selection on the raw score",
    )
    p.add_argument(
        "--sequences", help="the corpus, for coreset.fasta (default: the file named in the scores)"
    )
    p.add_argument(
        "--allow-changed-corpus",
        action="store_true",
        help="write coreset.fasta from --sequences even if it differs from the corpus that was "
        "scored (by default the first differing record is named and nothing is written)",
    )
    add_data_options(p)
    add_common(p)
    return p


def _cmd_select(args: argparse.Namespace) -> int:
    from biocoreset.config.presets import get_preset
    from biocoreset.selection.folder import select_to_folder

    preset = get_preset(args.preset)
    options = {**preset.options_for(args.method), **(args.options or {})}
    if args.beta is not None:
        options["beta"] = args.beta
    if args.strata is not None:
        options["strata"] = args.strata
    seed = args.seed if args.seed is not None else preset.select.seed
    sequences = open_source(args) if args.sequences else None
    summary = select_to_folder(
        args.scores,
        args.output,
        method=args.method,
        budget=args.budget,
        seed=seed,
        options=options,
        sequences=sequences,
        force=args.force,
        progress=progress(args),
        allow_changed_corpus=args.allow_changed_corpus,
        debias=args.debias,
    )
    print(
        f"selected {summary['budget']} of {summary['num_scores']} sequences with {summary['method']!r} "
        f"-> {args.output}/ ({', '.join(sorted(summary['files']))})"
    )
    if "cci" in summary:
        c = summary["cci"]
        print(
            f"CCI: removed the {c['cut']} most influential; {len(c['taken'])} strata, "
            f"{sum(1 for t in c['taken'] if t)} contributing"
        )
    for line in summary.get("composition", []):
        print(line)
    if "debias" in summary:
        d = summary["debias"]
        print(
            f"debias=length: Spearman with length {d['spearman_length']:+.2f} before, "
            f"{d['spearman_length_after']:+.2f} after ({d['bins']} length bins)"
        )
    if "note" in summary:
        print(summary["note"])
    return 0

"""``biocoreset cluster``: MMseqs2 clusters of a corpus, for the ``cluster`` selector."""

from __future__ import annotations

import argparse
import json
from typing import Any

from biocoreset.cli.common import add_command, add_force, add_input_options, open_source

__all__ = ["add_cluster_parser"]

_HELP = "cluster a corpus with MMseqs2 (easy-cluster) into a cluster TSV for --method cluster"
_ABOUT = (
    "Run `mmseqs easy-cluster` on the corpus and write its cluster TSV (representative<TAB>member "
    "per sequence), which `biocoreset select --method cluster` reads. Needs MMseqs2: the Debian "
    "package mmseqs2 or bioconda's mmseqs2."
)


def add_cluster_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``cluster`` on an :mod:`argparse` subparsers object (handler ``func``)."""
    p = add_command(
        subparsers,
        "cluster",
        _cmd_cluster,
        help=_HELP,
        description=_ABOUT,
        io=(
            "sequences",
            "corpus (FASTA, FASTQ, CSV, TSV, Parquet or an OAS unit; plain or gzip)",
            "cluster TSV to write",
        ),
    )
    p.add_argument(
        "--min-seq-id", type=float, default=0.9, help="minimum identity to the representative (0.9)"
    )
    p.add_argument(
        "--coverage", type=float, default=0.8, help="minimum aligned fraction, MMseqs2's -c (0.8)"
    )
    p.add_argument(
        "--cov-mode", type=int, default=0, help="MMseqs2's --cov-mode (0: of both sequences)"
    )
    p.add_argument("--threads", type=int, default=1, help="MMseqs2 threads (default 1)")
    p.add_argument("--info", help="also write the summary (counts, settings, version) as JSON")
    add_input_options(p.add_argument_group("input"))
    add_force(p, "overwrite the outputs")
    return p


def _cmd_cluster(args: argparse.Namespace) -> int:
    from biocoreset.data.clusters import cluster_to_file
    from biocoreset.store.atomic import atomic_path

    info = cluster_to_file(
        open_source(args),
        args.output,
        min_seq_id=args.min_seq_id,
        coverage=args.coverage,
        cov_mode=args.cov_mode,
        threads=args.threads,
        force=args.force,
    )
    if args.info:
        with atomic_path(args.info, force=True) as tmp:
            tmp.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    print(
        f"{info['clusters']} clusters of {info['sequences']} sequences (largest {info['largest']}, "
        f"{info['singletons']} singletons) at identity {info['settings']['min_seq_id']}, coverage "
        f"{info['settings']['coverage']}; MMseqs2 {info['mmseqs_version']}, "
        f"{info['seconds']:.1f} s -> {args.output}"
    )
    return 0

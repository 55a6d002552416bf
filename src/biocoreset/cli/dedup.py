"""``biocoreset dedup``: remove benchmark test sequences from a pretraining corpus."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from typing import Any

from biocoreset.bench.dedup import IDENTITY_METHODS, MOLECULES
from biocoreset.cli.common import add_command, add_force, add_input_options, progress
from biocoreset.errors import ConfigError

__all__ = ["add_dedup_parser"]


_HELP = "remove benchmark test sequences from a pretraining corpus"
_ABOUT = (
    "Write the corpus without every sequence that also occurs in the given test splits "
    "(exact match after normalising case and T->U; optionally by identity) and report the counts."
)


def add_dedup_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``dedup`` subcommand on an :mod:`argparse` subparsers object (handler ``func``)."""
    p = add_command(subparsers, "dedup", _cmd_dedup, help=_HELP, description=_ABOUT)
    p.add_argument(
        "corpus", help="corpus: FASTA, FASTQ, CSV/TSV, OAS unit (plain or .gz) or Parquet"
    )
    p.add_argument(
        "-t",
        "--test",
        action="append",
        default=[],
        metavar="FILE",
        help="test split file (FASTA/CSV/TSV/JSONL with a sequence column, or an OAS unit); "
        "repeatable",
    )
    p.add_argument(
        "--bench-config",
        help="also filter against the test split of every task in this bench config",
    )
    p.add_argument("-o", "--output", required=True, help="filtered FASTA to write")
    p.add_argument(
        "--identity", type=float, help="also remove sequences at least this identical (e.g. 0.9)"
    )
    p.add_argument("--molecule", choices=MOLECULES, default="rna", help="rna (T->U) or protein")
    p.add_argument(
        "--method",
        choices=IDENTITY_METHODS,
        default="kmer",
        help="identity method: kmer (Mash estimate, fast), difflib (exact, slow) or mmseqs "
        "(MMseqs2 alignment identity with --coverage; needs --identity and the mmseqs binary)",
    )
    p.add_argument(
        "--coverage",
        type=float,
        default=0.8,
        help="mmseqs: minimum aligned fraction of both sequences (default 0.8; see --cov-mode)",
    )
    p.add_argument("--cov-mode", type=int, default=0, help="mmseqs: MMseqs2's --cov-mode (0)")
    p.add_argument("--threads", type=int, default=1, help="mmseqs: threads (default 1)")
    p.add_argument(
        "-k", type=int, help="k-mer length for the identity search (default 8 RNA, 4 protein)"
    )
    p.add_argument("--removed-ids", help="write the removed ids here, one per line")
    add_input_options(p.add_argument_group("corpus input"))
    add_force(p, "overwrite outputs")
    return p


def _bench_test_sequences(config: str) -> Iterable[str]:
    from biocoreset.bench.config import load_bench_config
    from biocoreset.bench.runner import build_tasks

    for task in build_tasks(load_bench_config(config).tasks):
        yield from task.test_sequences()


def _cmd_dedup(args: argparse.Namespace) -> int:
    from biocoreset.bench.dedup import dedup_corpus, read_test_file
    from biocoreset.store.atomic import atomic_path

    if not args.test and not args.bench_config:
        raise ConfigError("give at least one --test FILE or --bench-config FILE.")
    sequences: list[str] = []
    for path in args.test:
        sequences.extend(read_test_file(path))
    if args.bench_config:
        sequences.extend(_bench_test_sequences(args.bench_config))
    from biocoreset.data.sources import open_sequences

    corpus = open_sequences(
        args.corpus,
        format=args.format,
        id_column=args.id_column,
        sequence_column=args.sequence_column,
    )
    report = dedup_corpus(
        corpus,
        sequences,
        args.output,
        identity_threshold=args.identity,
        method=args.method,
        molecule=args.molecule,
        k=args.k,
        coverage=args.coverage,
        cov_mode=args.cov_mode,
        threads=args.threads,
        force=args.force,
        progress=progress(args),
    )
    if args.removed_ids:
        with atomic_path(args.removed_ids, force=args.force) as tmp:
            tmp.write_text("".join(f"{i}\n" for i in report.removed_ids), encoding="utf-8")
    print(report.summary() + f" -> {args.output}")
    return 0

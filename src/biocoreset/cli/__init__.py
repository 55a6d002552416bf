"""The ``biocoreset`` command: one module per subcommand, wired together by :func:`build_parser`.

Subcommands:

* ``finetune`` — post-hoc fine-tuning on ``D_sub`` (paper A.5) with the before/after diagnostic;
* ``score`` — score every sequence (streamed, sharded, resumable: rerun the same command after a
  crash);
* ``select`` — coreset FASTA, id list and a plot of the score distribution with the selection;
* ``diagnose`` — is the selection signal or noise: score vs length and loss, stability across mask
  draws, coreset composition against random sets, warnings that name their fix;
* ``run`` — every step from one TOML file;
* ``plugins`` — what is installed and from where;
* ``demo`` — the whole method on a generated corpus and a tiny model;
* ``pretrain`` — masked-LM pretraining from scratch on a coreset;
* ``bench`` — downstream benchmarks; ``dedup`` — remove benchmark test sequences from a corpus;
* ``cluster`` — MMseqs2 clusters of a corpus, for the ``cluster`` selector.

Every command that takes a model accepts what the previous one wrote (``--model FOLDER``), and
every long command takes ``--progress {auto,bar,log,none}`` (:mod:`biocoreset.runtime.progress`). Every
command also runs under ``torchrun --nproc_per_node N`` (``torchrun ... -m biocoreset.cli``). Run
``biocoreset <command> --help`` for options.

>>> build_parser().parse_args(["select", "s.parquet", "-o", "out", "--budget", "0.1"]).budget
0.1
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from collections.abc import Iterator, Sequence

from biocoreset.cli.bench import add_bench_parser
from biocoreset.cli.cluster import add_cluster_parser
from biocoreset.cli.common import progress_mode
from biocoreset.cli.dedup import add_dedup_parser
from biocoreset.cli.diagnose import add_diagnose_parser
from biocoreset.cli.finetune import add_finetune_parser
from biocoreset.cli.plugins import add_plugins_parser
from biocoreset.cli.pretrain import add_pretrain_parser
from biocoreset.cli.run import add_demo_parser, add_run_parser
from biocoreset.cli.score import add_score_parser
from biocoreset.cli.select import add_select_parser
from biocoreset.errors import BioCoresetError, BioCoresetWarning

__all__ = ["build_parser", "main", "warnings_once"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``biocoreset`` command (also used to generate the CLI docs)."""
    from biocoreset import __version__

    parser = argparse.ArgumentParser(
        prog="biocoreset",
        description="Influence-guided coreset selection for pretraining biological foundation models.",
    )
    parser.add_argument("--version", action="version", version=f"biocoreset {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in (
        add_plugins_parser,
        add_finetune_parser,
        add_score_parser,
        add_select_parser,
        add_diagnose_parser,
        add_run_parser,
        add_demo_parser,
        add_pretrain_parser,
        add_bench_parser,
        add_dedup_parser,
        add_cluster_parser,
    ):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``biocoreset`` console script."""
    from biocoreset.runtime.progress import progress_settings

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with progress_settings(progress_mode(args)), warnings_once(args.command):
            return int(args.func(args) or 0)
    except (BioCoresetError, FileNotFoundError) as exc:
        print(f"biocoreset {args.command}: error: {cli_wording(str(exc))}", file=sys.stderr)
        return 2
    except OSError as exc:  # the file system refused something (full disk, permissions, ...)
        where = f" ({exc.filename!r})" if exc.filename else ""
        print(
            f"biocoreset {args.command}: error: {exc.strerror or exc}{where}; check the path and "
            "free space, then rerun.",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print(
            f"biocoreset {args.command}: interrupted; rerun the same command to resume.",
            file=sys.stderr,
        )
        return 130
    finally:
        _leave_process_group()


def cli_wording(message: str) -> str:
    """An error message in the command line's words: ``force=True (--force)`` becomes
    ``--force``, ``resume=True`` becomes a rerun.

    >>> cli_wording("pass force=True (--force) to overwrite it.")
    'pass --force to overwrite it.'
    """
    for api, cli in (
        ("force=True (--force)", "--force"),
        ("or force=True", "or --force"),
        ("resume it (resume=True)", "resume it (rerun without --no-resume)"),
    ):
        message = message.replace(api, cli)
    return " ".join(message.split())  # one line


@contextlib.contextmanager
def warnings_once(command: str) -> Iterator[None]:
    """Print each :class:`~biocoreset.errors.BioCoresetWarning` once, as ``biocoreset COMMAND:
    warning: ...`` on stderr, while the block runs (other warnings go their usual way).

    >>> import io, contextlib as c
    >>> err = io.StringIO()
    >>> with c.redirect_stderr(err), warnings_once("score"):
    ...     for _ in range(2):
    ...         warnings.warn("D_sub is small", BioCoresetWarning)
    >>> err.getvalue()
    'biocoreset score: warning: D_sub is small\\n'
    """
    seen: set[str] = set()
    with warnings.catch_warnings():
        warnings.simplefilter("always", BioCoresetWarning)
        usual = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if not issubclass(category, BioCoresetWarning):
                usual(message, category, filename, lineno, file, line)
            elif str(message) not in seen:
                seen.add(str(message))
                print(f"biocoreset {command}: warning: {message}", file=sys.stderr)

        warnings.showwarning = show
        yield


def _leave_process_group() -> None:
    """Under torchrun, leave the process group a command joined (a clean exit for every rank)."""
    torch = sys.modules.get("torch")  # a command that never imported torch joined no group
    if (
        torch is not None
        and torch.distributed.is_available()
        and torch.distributed.is_initialized()
    ):
        torch.distributed.destroy_process_group()

"""Option groups and argument types shared by the ``biocoreset`` subcommands.

>>> parse_budget("0.1"), parse_budget("200")
(0.1, 200)
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from biocoreset.runtime.progress import PROGRESS_MODES

__all__ = [
    "add_common",
    "add_data_options",
    "add_model_options",
    "add_progress_option",
    "json_object",
    "load_adapter",
    "open_source",
    "overrides",
    "parse_budget",
    "progress",
    "progress_mode",
]


def parse_budget(text: str) -> int | float:
    """A count (``1000``) or a fraction (``0.1``)."""
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be a count (e.g. 1000) or a fraction (e.g. 0.1), got {text!r}"
            ) from None


def json_object(text: str) -> dict[str, Any]:
    """A JSON object (``'{"key": 1}'``)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"must be a JSON object like '{{\"key\": 1}}', got {text!r}"
        )
    return value


def add_progress_option(p: argparse.ArgumentParser) -> None:
    """``--progress {auto,bar,log,none}`` and its short form ``--no-progress``."""
    p.add_argument(
        "--progress",
        choices=PROGRESS_MODES,
        default=None,
        help="auto (default): bars on a terminal, else a line every 30 s on stderr with done/total, "
        "rate and ETA; bar; log; none",
    )
    p.add_argument("--no-progress", action="store_true", help="same as --progress none")


def progress_mode(args: argparse.Namespace) -> str | None:
    """The ``--progress`` mode of a parsed command line (``None``: not given)."""
    if getattr(args, "no_progress", False):
        return "none"
    return getattr(args, "progress", None)


def progress(args: argparse.Namespace) -> bool | None:
    """The ``progress`` argument for library calls: ``False`` for ``none``, else ``None`` (the
    process-wide mode, which :func:`biocoreset.cli.main` sets from ``--progress``)."""
    return False if progress_mode(args) == "none" else None


def open_source(args: argparse.Namespace) -> Any:
    """The sequence source named by ``args.sequences`` and the input options."""
    from biocoreset.data.sources import open_sequences

    return open_sequences(
        args.sequences,
        format=args.format,
        id_column=args.id_column,
        sequence_column=args.sequence_column,
    )


def load_adapter(args: argparse.Namespace, preset_options: dict[str, Any] | None = None) -> Any:
    """The adapter named by the model options (:func:`biocoreset.modelio.load_model`)."""
    from biocoreset.modelio import load_model

    options = {**(preset_options or {}), **(args.adapter_options or {})}
    return load_model(
        args.model,
        adapter=args.adapter,
        options=options,
        weights=getattr(args, "weights", None),
        device=args.device,
    )


def overrides(args: argparse.Namespace, names: Sequence[str]) -> dict[str, Any]:
    """The options among ``names`` given on the command line."""
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def add_data_options(p: argparse.ArgumentParser) -> None:
    """Input format, table columns and the invalid-letter policy."""
    g = p.add_argument_group("input")
    g.add_argument(
        "--format",
        default="auto",
        choices=["auto", "fasta", "fastq", "csv", "tsv"],
        help="input format (default: from the file name, else the content)",
    )
    g.add_argument("--id-column", default="id", help="id column of a CSV/TSV file (default: id)")
    g.add_argument(
        "--sequence-column", default="sequence", help="sequence column of a CSV/TSV file"
    )
    g.add_argument(
        "--invalid",
        choices=["error", "replace", "skip"],
        help="letters outside the model's alphabet: stop (default), replace, or skip the record",
    )
    g.add_argument(
        "--replacement", help="replacement letter for --invalid replace (default N or X)"
    )


def add_model_options(p: argparse.ArgumentParser, *, device: bool = True) -> None:
    """``--model``, ``--adapter``, ``--adapter-options``, ``--weights`` (and ``--device``)."""
    g = p.add_argument_group("model")
    g.add_argument(
        "--model",
        help="model folder or file: a pretrain or finetune output folder, a transformers folder, a "
        ".pt/.pth/.safetensors state dict, an official RNA-FM or ESM-C checkpoint",
    )
    g.add_argument(
        "--adapter",
        help="adapter name (see `biocoreset plugins`; default: the saved folder's, else guessed "
        "from the files, else hf)",
    )
    g.add_argument(
        "--adapter-options",
        type=json_object,
        help='JSON object of adapter options, e.g. \'{"size": "small"}\'',
    )
    g.add_argument("--weights", help="state dict loaded over the model (e.g. ft/model.pt)")
    if device:
        g.add_argument(
            "--device", default="auto", help="auto (cuda:<local rank> if available), cpu, cuda..."
        )


def add_common(p: argparse.ArgumentParser) -> None:
    """``--preset``, ``--force`` and the progress options."""
    p.add_argument(
        "--preset",
        default="default",
        choices=["default", "paper-compat"],
        help="base settings (see docs/pipeline.md); explicit options override them",
    )
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    add_progress_option(p)

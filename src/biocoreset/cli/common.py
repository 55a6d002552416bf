"""Option groups and argument types shared by the ``biocoreset`` subcommands.

The options of a config class (:class:`~biocoreset.config.ScoreConfig`,
:class:`~biocoreset.config.FinetuneConfig`) are declared once, as its fields: every field with a
``help`` in its metadata is a flag (:func:`add_config_flags`) whose type follows the field's type,
whose choices are its validator's and whose help ends with its default; :func:`config_values`
reads back the ones given.

>>> parse_budget("0.1"), parse_budget("200")
(0.1, 200)
"""

from __future__ import annotations

import argparse
import json
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from biocoreset.config import ScoreConfig
from biocoreset.config.fields import choices_of
from biocoreset.config.presets import PRESETS
from biocoreset.runtime.progress import PROGRESS_MODES

__all__ = [
    "LETTERS",
    "SEQUENCE_FILE",
    "add_adapter_options",
    "add_command",
    "add_common",
    "add_config_flags",
    "add_data_options",
    "add_flags",
    "add_force",
    "add_input_options",
    "add_input_output",
    "add_model_options",
    "add_progress_option",
    "add_sequence_command",
    "config_values",
    "json_object",
    "load_adapter",
    "open_source",
    "overrides",
    "parse_budget",
    "progress",
    "progress_mode",
]


SEQUENCE_FILE = "sequence file: FASTA, FASTQ, CSV or TSV (plain or .gz)"
"""The help of a command's sequence file argument."""

LETTERS = ("invalid", "replacement")
"""The config fields of the invalid-letter policy, whose flags sit in the ``input`` group."""


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


def add_command(
    subparsers: Any,
    name: str,
    func: Callable[[argparse.Namespace], int],
    *,
    help: str,
    description: str | None = None,
    io: tuple[str, str, str] | None = None,
) -> argparse.ArgumentParser:
    """A subcommand ``name`` whose handler is ``func`` (``args.func``); ``io``: its positional
    input and the required ``-o/--output`` (``(name, help, output help)``)."""
    p: argparse.ArgumentParser = subparsers.add_parser(name, help=help, description=description)
    p.set_defaults(func=func)
    if io is not None:
        add_input_output(p, *io)
    return p


def add_sequence_command(
    subparsers: Any,
    name: str,
    func: Callable[[argparse.Namespace], int],
    help: str,
    output: str,
    config: type,
) -> argparse.ArgumentParser:
    """A subcommand over a sequence file with a model: the sequence file, ``-o/--output``, the
    model options and the input options (the invalid-letter flags of ``config``)."""
    p = add_command(subparsers, name, func, help=help, io=("sequences", SEQUENCE_FILE, output))
    add_model_options(p)
    add_data_options(p, config)
    return p


def add_input_output(p: argparse.ArgumentParser, name: str, what: str, output: str) -> None:
    """The positional input ``name`` and the required ``-o/--output``."""
    p.add_argument(name, help=what)
    p.add_argument("-o", "--output", required=True, help=output)


def add_force(p: argparse.ArgumentParser, help: str) -> None:
    """``--force`` (what it overwrites: ``help``) and the progress options."""
    p.add_argument("--force", action="store_true", help=help)
    add_progress_option(p)


def add_flags(g: Any, *flags: tuple[str, Callable[[str], Any] | None, str | None]) -> None:
    """Plain options ``(flag, type, help)`` on a parser or an argument group."""
    for flag, kind, text in flags:
        g.add_argument(flag, type=kind, help=text)


def _flag_type(hint: Any) -> dict[str, Any]:
    """The :meth:`argparse.ArgumentParser.add_argument` keywords for a field of type ``hint``."""
    if hint is bool:
        return {"action": "store_true", "default": None}  # None: not given, the preset's value
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    members = [a for a in (typing.get_args(hint) if union else (hint,)) if a is not type(None)]
    if int in members and float in members:
        return {"type": parse_budget}  # a count or a fraction
    if any(typing.get_origin(m) is tuple for m in members):
        return {"nargs": "+"}
    if members in ([int], [float]):
        return {"type": members[0]}
    return {}  # a string, parsed by the field's converter


def add_config_flags(
    g: Any, config: type, *, only: Sequence[str] | None = None, exclude: Sequence[str] = ()
) -> None:
    """A flag ``--<name>`` for each field of the attrs class ``config`` with a ``help`` in its
    metadata (or the fields ``only``; minus ``exclude``), in field order.

    The flag's type follows the field's (``int``, ``float``, a count or fraction for
    ``int | float``, several values for a tuple, ``store_true`` for a bool: the flag turns it on),
    its choices are the field validator's (:func:`~biocoreset.config.fields.choices_of`) and its
    help ends with the field's default. Every flag's own default is ``None`` (not given), so a
    preset's value stands.
    """
    hints = typing.get_type_hints(config)
    for field in attrs.fields(config):
        if "help" not in field.metadata or field.name in exclude:
            continue
        if only is not None and field.name not in only:
            continue
        text = field.metadata["help"].replace("%", "%%")  # argparse formats help with %
        if field.default is not None and not isinstance(field.default, bool):
            text += f" (default: {field.default})"
        kind = _flag_type(hints[field.name])
        choices = choices_of(field.validator)
        if choices is not None:
            kind["choices"] = list(choices)
        g.add_argument(f"--{field.name.replace('_', '-')}", **kind, help=text)


def config_values(args: argparse.Namespace, config: type) -> dict[str, Any]:
    """The options of ``config`` given on the command line (its flags from
    :func:`add_config_flags` that are not ``None``)."""
    return {
        f.name: getattr(args, f.name)
        for f in attrs.fields(config)
        if "help" in f.metadata and getattr(args, f.name, None) is not None
    }


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


def add_input_options(g: Any) -> None:
    """``--format``, ``--id-column`` and ``--sequence-column`` (how a sequence file is read)."""
    from biocoreset.data.readers import FORMATS, ROW_IDS

    g.add_argument(
        "--format",
        default="auto",
        choices=list(FORMATS),
        help="input format (default: from the file name, else the content; an OAS data unit is "
        "told by its metadata line)",
    )
    g.add_argument(
        "--id-column",
        help="id column of a table or Parquet file (default: id; OAS units: sequence_id where "
        f"present, else row ids); {ROW_IDS} ids rows by number as <file stem>:<row>",
    )
    g.add_argument(
        "--sequence-column",
        help="sequence column of a table or Parquet file (default: sequence; OAS units: "
        "sequence_alignment_aa, or _heavy/_light for paired units)",
    )


def add_data_options(p: argparse.ArgumentParser, config: type = ScoreConfig) -> None:
    """Input format, table columns and the invalid-letter policy (the :data:`LETTERS` flags of
    ``config``)."""
    g = p.add_argument_group("input")
    add_input_options(g)
    add_config_flags(g, config, only=LETTERS)


def add_adapter_options(g: Any) -> None:
    """``--adapter-options``, a JSON object."""
    g.add_argument(
        "--adapter-options",
        type=json_object,
        help='JSON object of adapter options, e.g. \'{"size": "small"}\'',
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
    add_adapter_options(g)
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
        choices=list(PRESETS),
        help="base settings: default (the paper's score), stable (LM head, 3 mask draws: a "
        "stabler ranking at about the same cost; docs/trust.md) or paper-compat (the released "
        "code); explicit options override them",
    )
    add_force(p, "overwrite existing outputs")

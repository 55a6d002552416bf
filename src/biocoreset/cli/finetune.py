"""``biocoreset finetune``: fine-tune on a random subset ``D_sub`` (paper A.5) before scoring."""

from __future__ import annotations

import argparse
from typing import Any

from biocoreset.cli.common import (
    LETTERS,
    add_common,
    add_config_flags,
    add_sequence_command,
    config_values,
    load_adapter,
    open_source,
    progress,
)
from biocoreset.config import FinetuneConfig

__all__ = ["add_finetune_parser"]

_OUTPUT = "folder for the fine-tuned model (model.pt, its manifest) and finetune.json"
_HELP = "fine-tune on a random subset D_sub (paper A.5) before scoring"


def add_finetune_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``finetune`` on an :mod:`argparse` subparsers object (handler ``func``): the flags
    are :class:`~biocoreset.config.FinetuneConfig`'s (see
    :func:`~biocoreset.cli.common.add_config_flags`)."""
    p = add_sequence_command(subparsers, "finetune", _cmd_finetune, _HELP, _OUTPUT, FinetuneConfig)
    g = p.add_argument_group("fine-tuning (defaults: the paper's)")
    add_config_flags(g, FinetuneConfig, exclude=LETTERS)
    add_common(p)
    return p


def _cmd_finetune(args: argparse.Namespace) -> int:
    import attrs

    from biocoreset.config.presets import get_preset
    from biocoreset.runtime.distributed import current
    from biocoreset.train.finetune import check_finetune_output, finetune, save_finetuned

    preset = get_preset(args.preset)
    inputs = [args.sequences, args.model, args.weights]
    check_finetune_output(args.output, force=args.force, inputs=inputs)  # before any work
    cfg = attrs.evolve(
        preset.finetune, progress=progress(args), **config_values(args, FinetuneConfig)
    )
    adp = load_adapter(args, preset.adapter_options)
    result = finetune(adp, open_source(args), config=cfg)
    save_finetuned(args.output, adp, result, force=args.force, inputs=inputs)
    if current().is_main:
        print(result.summary())
        print(f"-> {args.output}/ (score with it: biocoreset score ... --model {args.output})")
    return 0

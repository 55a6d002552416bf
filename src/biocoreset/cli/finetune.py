"""``biocoreset finetune``: fine-tune on a random subset ``D_sub`` (paper A.5) before scoring."""

from __future__ import annotations

import argparse
from typing import Any

from biocoreset.cli.common import (
    add_common,
    add_flags,
    add_sequence_command,
    add_subset_options,
    load_adapter,
    open_source,
    overrides,
    progress,
)

__all__ = ["add_finetune_parser"]

_OPTIONS = (
    "subset",
    "subset_seed",
    "epochs",
    "lr",
    "weight_decay",
    "warmup_steps",
    "schedule",
    "batch_size",
    "seed",
    "max_steps",
    "max_grad_norm",
    "diagnostic_samples",
    "invalid",
    "replacement",
)


_OUTPUT = "folder for the fine-tuned model (model.pt, its manifest) and finetune.json"
_HELP = "fine-tune on a random subset D_sub (paper A.5) before scoring"


def add_finetune_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``finetune`` on an :mod:`argparse` subparsers object (handler ``func``)."""
    p = add_sequence_command(subparsers, "finetune", _cmd_finetune, _HELP, _OUTPUT)
    g = p.add_argument_group("fine-tuning (defaults: the paper's)")
    add_subset_options(g)
    add_flags(
        g,
        ("--epochs", int, "passes over D_sub (1)"),
        ("--lr", float, "AdamW learning rate (1e-5)"),
        ("--weight-decay", float, "AdamW weight decay (0.01)"),
        ("--warmup-steps", int, "linear warm-up steps (50)"),
    )
    g.add_argument(
        "--schedule", choices=["linear", "constant"], help="after warm-up (linear decay)"
    )
    add_flags(
        g,
        ("--batch-size", int, "sequences per step over all ranks (16)"),
        ("--seed", int, "seed of shuffling and masking (0)"),
        ("--max-steps", int, "stop after this many steps"),
        ("--max-grad-norm", float, "clip the gradient norm (default: no clipping)"),
        ("--diagnostic-samples", int, "D_sub sequences for the before/after diagnostic (512)"),
    )
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
    cfg = attrs.evolve(preset.finetune, progress=progress(args), **overrides(args, _OPTIONS))
    adp = load_adapter(args, preset.adapter_options)
    result = finetune(adp, open_source(args), config=cfg)
    save_finetuned(args.output, adp, result, force=args.force, inputs=inputs)
    if current().is_main:
        print(result.summary())
        print(f"-> {args.output}/ (score with it: biocoreset score ... --model {args.output})")
    return 0

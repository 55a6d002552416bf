"""``biocoreset finetune``: fine-tune on a random subset ``D_sub`` (paper A.5) before scoring."""

from __future__ import annotations

import argparse
from typing import Any

from biocoreset.cli.common import (
    add_common,
    add_data_options,
    add_model_options,
    load_adapter,
    open_source,
    overrides,
    parse_budget,
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


def add_finetune_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``finetune`` on an :mod:`argparse` subparsers object (handler ``func``)."""
    p = subparsers.add_parser(
        "finetune", help="fine-tune on a random subset D_sub (paper A.5) before scoring"
    )
    p.add_argument("sequences", help="sequence file: FASTA, FASTQ, CSV or TSV (plain or .gz)")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help="folder for the fine-tuned model (model.pt, its manifest) and finetune.json",
    )
    add_model_options(p)
    add_data_options(p)
    g = p.add_argument_group("fine-tuning (defaults: the paper's)")
    g.add_argument(
        "--subset",
        type=parse_budget,
        help="D_sub size (int) or fraction (float); default 1%% (>= 256)",
    )
    g.add_argument("--subset-seed", type=int, help="seed of the D_sub draw (default: --seed)")
    g.add_argument("--epochs", type=int, help="passes over D_sub (1)")
    g.add_argument("--lr", type=float, help="AdamW learning rate (1e-5)")
    g.add_argument("--weight-decay", type=float, help="AdamW weight decay (0.01)")
    g.add_argument("--warmup-steps", type=int, help="linear warm-up steps (50)")
    g.add_argument(
        "--schedule", choices=["linear", "constant"], help="after warm-up (linear decay)"
    )
    g.add_argument("--batch-size", type=int, help="sequences per step over all ranks (16)")
    g.add_argument("--seed", type=int, help="seed of shuffling and masking (0)")
    g.add_argument("--max-steps", type=int, help="stop after this many steps")
    g.add_argument(
        "--max-grad-norm", type=float, help="clip the gradient norm (default: no clipping)"
    )
    g.add_argument(
        "--diagnostic-samples",
        type=int,
        help="D_sub sequences for the before/after diagnostic (512)",
    )
    add_common(p)
    p.set_defaults(func=_cmd_finetune)
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

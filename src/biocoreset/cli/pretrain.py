"""``biocoreset pretrain``: masked-LM pretraining from scratch on a coreset (resumable, DDP)."""

from __future__ import annotations

import argparse
from typing import Any

from biocoreset.cli.common import (
    add_adapter_options,
    add_command,
    add_flags,
    add_force,
    progress,
)

__all__ = ["add_pretrain_parser"]

_OPTIONS = (
    "lr",
    "weight_decay",
    "warmup_steps",
    "schedule",
    "epochs",
    "batch_size",
    "max_steps",
    "reference_size",
    "seed",
    "checkpoint_every",
    "precision",
    "device",
)


_IO = (
    "corpus",
    "corpus FASTA (plain or .gz)",
    "run folder (checkpoints, final model, loss curve)",
)
_HELP = "masked-LM pretraining from scratch on a coreset"
_CORESET = "id list (one id per line, e.g. from `biocoreset select`); default: whole corpus"
_ADAPTER = (
    "adapter whose architecture is trained (default: the --model folder's, else hf; "
    "see `biocoreset plugins`)"
)
_MODEL = (
    "where the architecture comes from: a transformers folder (config), a saved model "
    "folder or a checkpoint; omit it to build from --adapter-options (e.g. a named size)"
)
_ABOUT = (
    "Pretrain the adapter's architecture from scratch on a coreset (paper recipe by "
    "default). Rerun the same command to resume after a crash; run it under torchrun for DDP. "
    "The trained model lands in OUTPUT/final; every command loads it with --model OUTPUT."
)


def add_pretrain_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``pretrain`` on an :mod:`argparse` subparsers object (handler ``func``)."""
    from biocoreset.train.pretrain_config import PRECISIONS
    from biocoreset.train.schedules import SCHEDULES

    p = add_command(subparsers, "pretrain", _cmd_pretrain, help=_HELP, description=_ABOUT, io=_IO)
    add_flags(
        p,
        ("--coreset", None, _CORESET),
        ("--adapter", None, _ADAPTER),
        ("--model", None, _MODEL),
    )
    add_adapter_options(p)
    p.add_argument("--config", help="TOML/JSON file of pretrain options (flags below override it)")
    add_flags(
        p,
        ("--lr", float, None),
        ("--weight-decay", float, None),
        ("--warmup-steps", int, None),
    )
    p.add_argument("--schedule", choices=sorted(SCHEDULES))
    add_flags(
        p,
        ("--epochs", int, None),
        ("--batch-size", int, "global batch size (over all ranks)"),
        ("--max-steps", int, "equal compute: exactly this many optimizer steps"),
        (
            "--reference-size",
            int,
            "equal compute: the steps `epochs` epochs over this many sequences would take",
        ),
        ("--seed", int, None),
        ("--checkpoint-every", int, None),
    )
    p.add_argument("--precision", choices=PRECISIONS)
    p.add_argument("--device", help="'auto', 'cpu', 'cuda:0', ...")
    p.add_argument("--no-reinit", action="store_true", help="continue from the model's weights")
    p.add_argument("--no-resume", action="store_true", help="refuse to continue an unfinished run")
    add_force(p, "delete the output folder first")
    return p


def _cmd_pretrain(args: argparse.Namespace) -> int:
    from biocoreset.modelio import load_model, model_spec
    from biocoreset.runtime.distributed import current, init_distributed
    from biocoreset.train.pretrain import pretrain
    from biocoreset.train.pretrain_config import PretrainConfig, load_pretrain_config

    init_distributed()  # joins the process group when launched by torchrun (WORLD_SIZE > 1)
    values = {n: getattr(args, n) for n in _OPTIONS}
    if args.no_reinit:
        values["reinit"] = False
    values["progress"] = progress(args)
    if args.config:
        cfg = load_pretrain_config(args.config, **values)
    else:
        cfg = PretrainConfig(**{k: v for k, v in values.items() if v is not None})
    options = dict(args.adapter_options or {})
    options.setdefault("masking", cfg.masking)
    adapter = load_model(
        args.model, adapter=args.adapter, options=options, device=None, random_init=cfg.reinit
    )
    spec = model_spec(adapter)
    result = pretrain(
        adapter,
        args.corpus,
        args.output,
        coreset=args.coreset,
        config=cfg,
        resume=not args.no_resume,
        force=args.force,
        adapter_spec={**spec, "model": args.model},
    )
    if current().is_main:
        print(
            f"pretrained {result.steps} steps ({result.epochs} epochs) on {result.num_sequences} "
            f"sequences, final loss {result.final_loss:.4f} -> {result.final_dir}"
        )
    return 0

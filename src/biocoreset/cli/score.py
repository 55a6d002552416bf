"""``biocoreset score``: score every sequence (streamed, sharded, resumable)."""

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

__all__ = ["add_score_parser"]

_OPTIONS = (
    "curvature",
    "scorer",
    "subset",
    "subset_seed",
    "damping",
    "batch_size",
    "max_tokens",
    "seed",
    "engine",
    "fit_on",
    "shard_size",
    "invalid",
    "replacement",
)


def add_score_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``score`` on an :mod:`argparse` subparsers object (handler ``func``)."""
    p = subparsers.add_parser(
        "score", help="score every sequence (streamed; rerun the same command to resume)"
    )
    p.add_argument("sequences", help="sequence file: FASTA, FASTQ, CSV or TSV (plain or .gz)")
    p.add_argument("-o", "--output", required=True, help="score file to write (Parquet)")
    add_model_options(p)
    add_data_options(p)
    g = p.add_argument_group("scoring")
    g.add_argument("--curvature", help="diagonal (default), identity, kfac, ekfac or a plugin's")
    g.add_argument("--scorer", help="self-influence (default), loss, grad-norm or a plugin's")
    g.add_argument(
        "--subset",
        type=parse_budget,
        help="D_sub size (int) or fraction (float); default 1%% (>= 256)",
    )
    g.add_argument("--subset-seed", type=int, help="seed of the D_sub draw (default: --seed)")
    g.add_argument(
        "--fit-on",
        choices=["subset", "all"],
        help="fit the curvature on D_sub (default) or all rows",
    )
    g.add_argument(
        "--damping",
        help="damping λ: a number (absolute, e.g. 1e-3) or R*mean (R × the mean curvature entry); "
        "default 0.1*mean",
    )
    g.add_argument("--damping-relative", help=argparse.SUPPRESS)  # merged into --damping
    g.add_argument("--batch-size", type=int, help="sequences per batch (16)")
    g.add_argument("--max-tokens", type=int, help="most padded residues per batch (no limit)")
    g.add_argument("--seed", type=int, help="seed of D_sub and masking (0)")
    g.add_argument(
        "--parameters", nargs="+", help="glob patterns of scored parameter names or groups"
    )
    g.add_argument("--engine", choices=["auto", "hooks", "loop"], help="per-sample gradient engine")
    g.add_argument(
        "--negate", action="store_true", help="store -I(z) (the released code's convention)"
    )
    g.add_argument("--shard-size", type=int, help="rows per shard (a multiple of the batch size)")
    add_common(p)
    p.set_defaults(func=_cmd_score)
    return p


def _cmd_score(args: argparse.Namespace) -> int:
    import attrs

    from biocoreset.api import score_to_file
    from biocoreset.errors import ConfigError
    from biocoreset.presets import get_preset
    from biocoreset.runtime.distributed import current
    from biocoreset.store.shards import ScoreStore

    preset = get_preset(args.preset)
    if args.damping_relative is not None:
        raise ConfigError(
            f"--damping-relative was merged into --damping: use --damping '{args.damping_relative}*mean'."
        )
    ScoreStore(args.output).check_output(force=args.force)  # before loading the model
    values = overrides(args, _OPTIONS)
    if args.parameters:
        values["parameters"] = tuple(args.parameters)
    if args.negate:
        values["negate"] = True
    cfg = attrs.evolve(preset.score, progress=progress(args), **values)
    adp = load_adapter(args, preset.adapter_options)
    meta = score_to_file(adp, open_source(args), args.output, config=cfg, force=args.force)
    if current().is_main:
        resumed = (
            f", resumed {meta['resumed_shards']} finished shard(s)"
            if meta.get("resumed_shards")
            else ""
        )
        damping = meta.get("damping")
        lam = f"λ = {damping:.4g}" if isinstance(damping, float) else f"λ = {damping}"
        print(f"scored {meta['num_sequences']} sequences -> {args.output} ({lam}{resumed})")
        print(f"validation: {_report_line(meta.get('validation', {}))}")
    return 0


def _report_line(rep: dict[str, Any]) -> str:
    from collections import Counter

    from biocoreset.data.validation import ValidationReport

    if not rep:
        return "n/a"
    return ValidationReport(
        **{**rep, "invalid_letters": Counter(rep.get("invalid_letters", {}))}
    ).summary()

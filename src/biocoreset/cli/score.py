"""``biocoreset score``: score every sequence (streamed, sharded, resumable)."""

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
from biocoreset.config import ScoreConfig

__all__ = ["add_score_parser"]
_OUTPUT = "score file to write (Parquet)"
_HELP = "score every sequence (streamed; rerun the same command to resume)"


def add_score_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``score`` on an :mod:`argparse` subparsers object (handler ``func``): the flags
    are :class:`~biocoreset.config.ScoreConfig`'s (see :func:`~biocoreset.cli.common.add_config_flags`)."""
    p = add_sequence_command(subparsers, "score", _cmd_score, _HELP, _OUTPUT, ScoreConfig)
    g = p.add_argument_group("scoring")
    add_config_flags(g, ScoreConfig, exclude=LETTERS)
    g.add_argument("--damping-relative", help=argparse.SUPPRESS)  # merged into --damping
    add_common(p)
    return p


def _cmd_score(args: argparse.Namespace) -> int:
    import attrs

    from biocoreset.api import score_to_file
    from biocoreset.config.presets import get_preset
    from biocoreset.errors import ConfigError
    from biocoreset.runtime.distributed import current
    from biocoreset.store.atomic import check_not_input
    from biocoreset.store.shards import ScoreStore

    preset = get_preset(args.preset)
    if args.damping_relative is not None:
        raise ConfigError(
            f"--damping-relative was merged into --damping: use --damping '{args.damping_relative}*mean'."
        )
    inputs = [args.sequences, args.model, args.weights]
    parts = f"{args.output}.parts"
    check_not_input(inputs, [args.output, parts], command="score")  # before touching anything
    ScoreStore(args.output).check_output(force=args.force)  # before loading the model
    values = config_values(args, ScoreConfig)
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
        print(_length_line(args.output, bool(meta.get("negated"))))
        if meta.get("stability"):
            for line in stability_lines(meta["stability"]):
                print(line)
    return 0


def _length_line(path: str, negated: bool) -> str:
    """One line: Spearman ρ of I(z) with sequence length (read from the score file)."""
    import pyarrow.parquet as pq

    from biocoreset.stats import spearman

    table = pq.read_table(path, columns=["score", "length"])
    s = table.column("score").to_numpy()
    rho = spearman(-s if negated else s, table.column("length").to_numpy())
    hint = "  (strong: consider select --debias length)" if abs(rho) >= 0.5 else ""
    return f"length: Spearman(I(z), length) = {rho:+.3f}{hint}"


def _draws(value: Any) -> str:
    """A number of mask draws as the whole number that reaches the target (``n/a`` if unknown)."""
    import math

    return "n/a" if value is None or not math.isfinite(float(value)) else str(math.ceil(value))


def stability_lines(stab: dict[str, Any]) -> list[str]:
    """The stability line (and a warning line when the projected reliability is below 0.9).

    >>> stability_lines({"draws": 8, "split_half": 0.9, "projected": 0.947,
    ...     "split_half_length_regressed": 0.5, "projected_length_regressed": 0.667,
    ...     "draws_for_target": 4.0})[0]
    "stability (K=8): split-half ρ 0.900, projected to K 0.947 (an estimate of two runs' ρ that ran up to 0.1 high in the measurements); length regressed out: 0.500, projected 0.667"
    >>> stability_lines({"draws": 3, "projected": 0.65, "draws_for_target": 14.542})[1].split("; ")[1]
    'about 15 mask draws would reach 0.9 (--mask-draws), or select with --debias length'
    """
    from biocoreset.scoring.draws import RELIABILITY_WARNING

    def f(key: str) -> str:
        v = stab.get(key)
        return "n/a" if v is None else f"{float(v):.3f}"

    lines = [
        f"stability (K={stab.get('draws')}): split-half ρ {f('split_half')}, projected to K "
        f"{f('projected')} (an estimate of two runs' ρ that ran up to 0.1 high in the "
        f"measurements); length regressed out: {f('split_half_length_regressed')}, projected "
        f"{f('projected_length_regressed')}"
    ]
    projected = stab.get("projected")
    if projected is None or not float(projected) >= RELIABILITY_WARNING:
        lines.append(
            f"warning: projected reliability {f('projected')} < {RELIABILITY_WARNING} (an estimate "
            "that ran up to 0.1 high in the measurements, docs/trust.md): two runs with different "
            f"seeds would choose differently; about {_draws(stab.get('draws_for_target'))} mask "
            f"draws would reach {RELIABILITY_WARNING} "
            "(--mask-draws), or select with --debias length"
        )
    return lines


def _report_line(rep: dict[str, Any]) -> str:
    from collections import Counter

    from biocoreset.data.validation import ValidationReport

    if not rep:
        return "n/a"
    return ValidationReport(
        **{**rep, "invalid_letters": Counter(rep.get("invalid_letters", {}))}
    ).summary()

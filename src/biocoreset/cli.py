"""The ``biocoreset`` command.

Subcommands:

* ``finetune`` — post-hoc fine-tuning on ``D_sub`` (paper A.5) with the before/after diagnostic;
* ``score`` — score every sequence (streamed, sharded, resumable: rerun the same command after a
  crash);
* ``select`` — coreset FASTA, id list and a plot of the score distribution with the selection;
* ``run`` — every step from one TOML file;
* ``plugins`` — what is installed and from where;
* ``demo`` — the whole method on a generated corpus and a tiny model;
* ``pretrain`` / ``bench`` — when those modules are installed.

Every command also runs under ``torchrun --nproc_per_node N`` (one merged result). Run
``biocoreset <command> --help`` for options.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from biocoreset.errors import BioCoresetError, ConfigError

__all__ = ["build_parser", "main"]


def _cmd_plugins(args: argparse.Namespace) -> int:
    from biocoreset.plugins import get_registry

    comps = get_registry().components(args.kind)
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "kind": c.kind,
                        "name": c.name,
                        "plugin": c.plugin,
                        "source": c.source,
                        "description": c.description,
                    }
                    for c in comps
                ],
                indent=2,
            )
        )
        return 0
    width = max((len(c.name) for c in comps), default=4)
    kind = None
    for c in comps:
        if c.kind != kind:
            kind = c.kind
            print(f"{kind}s:")
        print(f"  {c.name:<{width}}  {c.description}  [{c.plugin}; {c.source}]")
    return 0


def _parse_budget(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be a count (e.g. 1000) or a fraction (e.g. 0.1), got {text!r}"
            ) from None


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"must be a JSON object like '{{\"key\": 1}}', got {text!r}"
        )
    return value


def _progress(args: argparse.Namespace) -> bool | None:
    return False if args.no_progress else None


def _source(args: argparse.Namespace) -> Any:
    from biocoreset.data.sources import open_sequences

    return open_sequences(
        args.sequences,
        format=args.format,
        id_column=args.id_column,
        sequence_column=args.sequence_column,
    )


def _adapter(args: argparse.Namespace, preset_options: dict[str, Any]) -> Any:
    from biocoreset.pipeline import load_adapter

    options = {**preset_options, **(args.adapter_options or {})}
    return load_adapter(
        args.adapter,
        args.model,
        options,
        weights=getattr(args, "weights", None),
        device=args.device,
    )


def _overrides(args: argparse.Namespace, names: Sequence[str]) -> dict[str, Any]:
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def _cmd_finetune(args: argparse.Namespace) -> int:
    import attrs

    from biocoreset.presets import get_preset
    from biocoreset.store.atomic import check_output
    from biocoreset.train.distributed import current
    from biocoreset.train.finetune import finetune, save_finetuned

    preset = get_preset(args.preset)
    for name in ("model.pt", "finetune.json"):
        check_output(Path(args.output) / name, force=args.force)
    values = _overrides(
        args,
        [
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
        ],
    )
    cfg = attrs.evolve(preset.finetune, progress=_progress(args), **values)
    adp = _adapter(args, preset.adapter_options)
    result = finetune(adp, _source(args), config=cfg)
    save_finetuned(args.output, adp, result, force=args.force)
    if current().is_main:
        print(result.summary())
        print(
            f"-> {args.output}/model.pt (use it with: biocoreset score ... --weights {args.output}/model.pt)"
        )
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    import attrs

    from biocoreset.api import score_to_file
    from biocoreset.presets import get_preset
    from biocoreset.store.shards import ScoreStore
    from biocoreset.train.distributed import current

    preset = get_preset(args.preset)
    if args.damping_relative is not None:
        raise ConfigError(
            f"--damping-relative was merged into --damping: use --damping '{args.damping_relative}*mean'."
        )
    ScoreStore(args.output).check_output(force=args.force)  # before loading the model
    values = _overrides(
        args,
        [
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
        ],
    )
    if args.parameters:
        values["parameters"] = tuple(args.parameters)
    if args.negate:
        values["negate"] = True
    cfg = attrs.evolve(preset.score, progress=_progress(args), **values)
    adp = _adapter(args, preset.adapter_options)
    meta = score_to_file(adp, _source(args), args.output, config=cfg, force=args.force)
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


def _cmd_select(args: argparse.Namespace) -> int:
    from biocoreset.pipeline import select_to_folder
    from biocoreset.presets import get_preset

    preset = get_preset(args.preset)
    options = {**preset.options_for(args.method), **(args.options or {})}
    if args.beta is not None:
        options["beta"] = args.beta
    if args.strata is not None:
        options["strata"] = args.strata
    seed = args.seed if args.seed is not None else preset.select.seed
    sequences = _source(args) if args.sequences else None
    summary = select_to_folder(
        args.scores,
        args.output,
        method=args.method,
        budget=args.budget,
        seed=seed,
        options=options,
        sequences=sequences,
        force=args.force,
        progress=_progress(args),
    )
    print(
        f"selected {summary['budget']} of {summary['num_scores']} sequences with {summary['method']!r} "
        f"-> {args.output}/ ({', '.join(sorted(summary['files']))})"
    )
    if "cci" in summary:
        c = summary["cci"]
        print(
            f"CCI: removed the {c['cut']} most influential; {len(c['taken'])} strata, "
            f"{sum(1 for t in c['taken'] if t)} contributing"
        )
    if "note" in summary:
        print(summary["note"])
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from biocoreset.pipeline import run_pipeline
    from biocoreset.runfile import load_run_config
    from biocoreset.train.distributed import current

    cfg = load_run_config(args.config)
    state = run_pipeline(cfg, force=args.force, progress=_progress(args))
    if current().is_main:
        for step, info in state["steps"].items():
            line = info.get("summary") or ", ".join(
                f"{k}={v}" for k, v in info.items() if k not in ("done", "validation")
            )
            print(f"{step}: {line}")
        print(f"-> {cfg.output}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from biocoreset.demo import run_demo

    run_demo(args.output, force=args.force, progress=_progress(args))
    return 0


def _add_data_options(p: argparse.ArgumentParser) -> None:
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


def _add_model_options(p: argparse.ArgumentParser, weights: bool = True) -> None:
    g = p.add_argument_group("model")
    g.add_argument(
        "--adapter", default="hf", help="adapter name (see `biocoreset plugins`; default hf)"
    )
    g.add_argument(
        "--model", help="model path (transformers folder for hf, checkpoint file otherwise)"
    )
    g.add_argument("--adapter-options", type=_json_object, help="JSON object of adapter options")
    if weights:
        g.add_argument(
            "--weights", help="state dict loaded over the model (e.g. finetune/model.pt)"
        )
    g.add_argument(
        "--device", default="auto", help="auto (cuda:<local rank> if available), cpu, cuda..."
    )


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--preset",
        default="default",
        choices=["default", "paper-compat"],
        help="base settings (see docs/pipeline.md); explicit options override them",
    )
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


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

    p = sub.add_parser("plugins", help="list installed components and where they come from")
    p.add_argument(
        "--kind",
        choices=["adapter", "curvature", "scorer", "selector", "task"],
        help="only this kind",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_plugins)

    p = sub.add_parser(
        "finetune", help="fine-tune on a random subset D_sub (paper A.5) before scoring"
    )
    p.add_argument("sequences", help="sequence file: FASTA, FASTQ, CSV or TSV (plain or .gz)")
    p.add_argument("-o", "--output", required=True, help="folder for model.pt and finetune.json")
    _add_model_options(p, weights=False)
    _add_data_options(p)
    g = p.add_argument_group("fine-tuning (defaults: the paper's)")
    g.add_argument(
        "--subset",
        type=_parse_budget,
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
    _add_common(p)
    p.set_defaults(func=_cmd_finetune)

    p = sub.add_parser(
        "score", help="score every sequence (streamed; rerun the same command to resume)"
    )
    p.add_argument("sequences", help="sequence file: FASTA, FASTQ, CSV or TSV (plain or .gz)")
    p.add_argument("-o", "--output", required=True, help="score file to write (Parquet)")
    _add_model_options(p)
    _add_data_options(p)
    g = p.add_argument_group("scoring")
    g.add_argument("--curvature", help="diagonal (default), identity, kfac, ekfac or a plugin's")
    g.add_argument("--scorer", help="self-influence (default), loss, grad-norm or a plugin's")
    g.add_argument(
        "--subset",
        type=_parse_budget,
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
    _add_common(p)
    p.set_defaults(func=_cmd_score)

    p = sub.add_parser(
        "select", help="select a coreset: FASTA, id list and a plot of the selection"
    )
    p.add_argument("scores", help="score file written by `biocoreset score`")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help="folder for coreset.fasta, coreset_ids.txt, selection.png",
    )
    p.add_argument(
        "--method", default="cci", help="selector: cci (default), topk, random or a plugin's"
    )
    p.add_argument(
        "--budget", type=_parse_budget, required=True, help="count (int) or fraction (float)"
    )
    p.add_argument("--seed", type=int, help="seed of random choices (default: the preset's, 0)")
    p.add_argument("--beta", type=float, help="CCI hard cutoff rate (default 0.05)")
    p.add_argument("--strata", type=int, help="CCI number of strata (default 50)")
    p.add_argument("--options", type=_json_object, help="JSON object of selector options")
    p.add_argument(
        "--sequences", help="the corpus, for coreset.fasta (default: the file named in the scores)"
    )
    _add_data_options(p)
    _add_common(p)
    p.set_defaults(func=_cmd_select)

    p = sub.add_parser("run", help="fine-tune, score and select as one TOML file says (resumable)")
    p.add_argument("config", help="TOML file (see docs/pipeline.md for every key)")
    p.add_argument("--force", action="store_true", help="discard the run folder's existing results")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser(
        "demo", help="the whole method on a generated RNA corpus with a tiny model (~1 min)"
    )
    p.add_argument("-o", "--output", default="biocoreset-demo", help="output folder")
    p.add_argument("--force", action="store_true", help="overwrite an existing output folder")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=_cmd_demo)

    _add_optional_commands(sub)
    return parser


def _add_optional_commands(sub: Any) -> None:
    """Subcommands that live beside their implementation: pretrain, bench, dedup."""
    from biocoreset.bench.cli import add_bench_parser
    from biocoreset.data.dedup import add_dedup_parser
    from biocoreset.train.pretrain import add_pretrain_parser

    add_pretrain_parser(sub)
    add_bench_parser(sub)
    add_dedup_parser(sub)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``biocoreset`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (BioCoresetError, FileNotFoundError) as exc:
        print(f"biocoreset {args.command}: error: {exc}", file=sys.stderr)
        return 2
    finally:
        _leave_process_group()


def _leave_process_group() -> None:
    """Under torchrun, leave the process group a command joined (a clean exit for every rank)."""
    torch = sys.modules.get("torch")  # a command that never imported torch joined no group
    if (
        torch is not None
        and torch.distributed.is_available()
        and torch.distributed.is_initialized()
    ):
        torch.distributed.destroy_process_group()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

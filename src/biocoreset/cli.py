"""The ``biocoreset`` command.

Subcommands: ``plugins`` (what is installed and from where), ``score``, ``select``, ``demo``.
Run ``biocoreset <command> --help`` for options.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from biocoreset.errors import BioCoresetError

__all__ = ["build_parser", "main"]


def _cmd_plugins(args: argparse.Namespace) -> int:
    from biocoreset.plugins import get_registry

    comps = get_registry().components(args.kind)
    if args.json:
        print(json.dumps([
            {"kind": c.kind, "name": c.name, "plugin": c.plugin, "source": c.source, "description": c.description}
            for c in comps
        ], indent=2))
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
                f"budget must be a count (e.g. 1000) or a fraction (e.g. 0.1), got {text!r}"
            ) from None


def _cmd_select(args: argparse.Namespace) -> int:
    from biocoreset import load_scores, select
    from biocoreset.store.atomic import atomic_path

    result = load_scores(args.scores)
    options = json.loads(args.options) if args.options else {}
    if args.beta is not None:
        options["beta"] = args.beta
    if args.strata is not None:
        options["strata"] = args.strata
    sel = select(result, args.method, budget=args.budget, seed=args.seed, **options)
    with atomic_path(args.output, force=args.force) as tmp:
        tmp.write_text("".join(f"{i}\n" for i in sel.ids or []), encoding="utf-8")
    print(f"selected {sel.budget} of {len(result)} sequences with {sel.method!r} -> {args.output}")
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    from biocoreset import score
    from biocoreset.store.atomic import check_output

    check_output(args.output, force=args.force)
    adapter_options = json.loads(args.adapter_options) if args.adapter_options else {}
    model = _load_model(args.adapter, args.model, adapter_options)
    result = score(
        model,
        args.sequences,
        curvature=args.curvature,
        scorer=args.scorer,
        subset=_parse_budget(args.subset) if args.subset else None,
        damping=args.damping,
        batch_size=args.batch_size,
        seed=args.seed,
        parameters=args.parameters,
        progress=not args.no_progress,
    )
    result.save(args.output, force=args.force)
    print(f"scored {len(result)} sequences -> {args.output} (λ = {result.metadata.get('damping')})")
    return 0


def _load_model(adapter: str, path: str | None, options: dict) -> object:
    """Build an adapter for the CLI: ``hf`` loads a local transformers model folder."""
    from biocoreset.plugins import get_registry

    if adapter == "hf":
        if not path:
            raise BioCoresetError("--model PATH (a local transformers model folder) is required for --adapter hf")
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        model = AutoModelForMaskedLM.from_pretrained(path, local_files_only=True)
        tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
        return get_registry().get("adapter", "hf").factory(model=model, tokenizer=tok, **options)
    factory = get_registry().get("adapter", adapter).factory
    if path:
        options = {**options, "checkpoint": path}
    return factory(**options)


def _cmd_demo(args: argparse.Namespace) -> int:
    from biocoreset.demo import run_demo

    run_demo(args.output, force=args.force, progress=not args.no_progress)
    return 0


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
    p.add_argument("--kind", choices=["adapter", "curvature", "scorer", "selector", "task"], help="only this kind")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_plugins)

    p = sub.add_parser("score", help="score every sequence of a FASTA file")
    p.add_argument("sequences", help="FASTA file (plain or .gz)")
    p.add_argument("-o", "--output", required=True, help="score file to write (Parquet)")
    p.add_argument("--adapter", default="hf", help="adapter name (see `biocoreset plugins`)")
    p.add_argument("--model", help="model path (checkpoint file or transformers folder)")
    p.add_argument("--adapter-options", help="JSON object of adapter options")
    p.add_argument("--curvature", default="diagonal")
    p.add_argument("--scorer", default="self-influence")
    p.add_argument("--subset", help="D_sub size (int) or fraction (float); default 1%% (>= 256)")
    p.add_argument("--damping", type=float, help="absolute damping λ (default 0.1 × mean curvature)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--parameters", nargs="+", help="glob patterns of scored parameter names or groups")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=_cmd_score)

    p = sub.add_parser("select", help="select a coreset from a score file")
    p.add_argument("scores", help="score file written by `biocoreset score`")
    p.add_argument("-o", "--output", required=True, help="id list to write (one id per line)")
    p.add_argument("--method", default="cci", help="selector: cci, topk, random or a plugin's")
    p.add_argument("--budget", type=_parse_budget, required=True, help="count (int) or fraction (float)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--beta", type=float, help="CCI hard cutoff rate (default 0.05)")
    p.add_argument("--strata", type=int, help="CCI number of strata (default 50)")
    p.add_argument("--options", help="JSON object of selector options")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.set_defaults(func=_cmd_select)

    p = sub.add_parser("demo", help="score and select a generated RNA corpus with a tiny model")
    p.add_argument("-o", "--output", default="biocoreset-demo", help="output folder")
    p.add_argument("--force", action="store_true", help="overwrite an existing output folder")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``biocoreset`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BioCoresetError as exc:
        print(f"biocoreset {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"biocoreset {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


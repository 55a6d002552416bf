"""GPU check: scoring throughput of RNA-FM (99.5M) and ESM-C 300M on one CUDA GPU, bf16 autocast.

For each model, built at its real size with random weights (the cost does not depend on the
weights' values), on the same length-sorted batches of random sequences whose lengths follow a real
corpus (default: the shared Rfam 14.2 seed FASTA; ``--lengths-from`` another FASTA; a synthetic
log-normal fit of it when the file is absent), it measures side by side, batch by batch:

* ``plain``   a plain forward + backward (``loss.sum().backward()``) under bf16 autocast — the
              floor: per-sample scores cannot be cheaper;
* ``score``   biocoreset's self-influence scores with the diagonal Fisher (hook engine,
              ``autocast="bf16"``), fitted beforehand on two batches;
* ``engine``  the hook engine's forward + backward alone (no per-sample products): what the
              products and their reductions cost is ``score`` minus this;

and reports throughput ratios, model FLOP utilisation, peak memory and the hours that scoring 23M
RNAcentral-like sequences would take; what each figure means and how the run is guarded (time
boxes, halving the batch after an out-of-memory error, a report after every model) is in
``docs/benchmarks-gpu.md``. Run from the repository root::

    python -m benchmarks.gpu_check                  # CUDA, <= 8 min; writes docs/benchmarks-gpu.md
    python -m benchmarks.gpu_check --models rna-fm --seconds 30 --max-tokens 16384
    python -m benchmarks.gpu_check --dry-run --output /tmp/gpu-check.md   # CPU, tiny models

``--dry-run`` runs the same code on the CPU with tiny models and a few small batches (a test runs
it); its figures are not performance figures, and it never writes over ``docs/``.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from benchmarks._common import (
    ROOT,
    Timer,
    attention_of,
    build_adapter,
    device_info,
    fmt,
    free_memory,
    fwd_bwd,
    length_sorted_batches,
    length_source,
    offline,
    oom_halving,
    peak_memory_each,
    sample_lengths,
    side_by_side,
    write_report,
)
from benchmarks.gpu_check_report import render, summarise

offline()
DOCS_OUTPUT = ROOT / "docs" / "benchmarks-gpu.md"
CORPUS_SIZE = 23_000_000
MODELS: dict[str, dict[str, Any]] = {
    "rna-fm": {
        **{"label": "RNA-FM", "letters": "ACGU", "max_residues": 1022, "adapter": "rna-fm"},
        **{"options": {"size": "rna-fm"}, "tiny": {"size": "tiny"}},
    },
    "esmc-300m": {
        **{"label": "ESM-C 300M", "dry_label": "ESM-C", "letters": "ACDEFGHIKLMNPQRSTVWY"},
        **{"max_residues": 2046, "adapter": "esmc", "options": {"name": "esmc_300m"}},
        **{"tiny": {"name": "tiny"}, "random_init": True},
    },
}

DRY = {"sequences": 32, "max_tokens": 1024, "max_batch": 16, "seconds": 1.0, "max_rounds": 2}
GPU = {"sequences": 4096, "max_tokens": 32768, "max_batch": 512, "seconds": 60.0, "max_rounds": 0}


def log(msg: str) -> None:
    print(f"[gpu_check {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# -- models --------------------------------------------------------------------------------------


def make_adapter(name: str, dry: bool) -> Any:
    """The model, random weights, in the library's adapter (tiny in a dry run)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {sorted(MODELS)}")
    spec = MODELS[name]
    options = {**spec["options"], **(spec["tiny"] if dry else {})}
    if spec.get("random_init"):
        options["random_init"] = True
    return build_adapter(spec["adapter"], seed=0, **options)


# -- measurement ---------------------------------------------------------------------------------


def measure_model(
    name: str,
    args: argparse.Namespace,
    device: Any,
    lengths: list[int],
    max_tokens: int,
    out: dict[str, Any],
) -> dict[str, Any]:
    """Build, fit, then time plain / score / engine batch by batch until ``args.seconds`` pass.

    Fills ``out`` as it goes (so a failure keeps what was measured) and returns it."""
    import torch

    from biocoreset.curvature.diagonal import DiagonalFisher
    from biocoreset.grads.engine import HookEngine
    from biocoreset.grads.factors import mixed_products, workspace_bytes_for
    from biocoreset.scorers.self_influence import SelfInfluenceScorer

    spec = MODELS[name]
    label = spec.get("dry_label", spec["label"]) + " (tiny)" if args.dry_run else spec["label"]
    out |= {"model": name, "label": label, "max_tokens": max_tokens}
    t0 = time.perf_counter()
    adapter = make_adapter(name, args.dry_run)
    model = adapter.model.to(device)
    params = sum(p.numel() for p in model.parameters())
    out |= {"parameters": params, "attention": attention_of(model)}
    log(f"{name}: {params / 1e6:.1f}M parameters on {device} ({time.perf_counter() - t0:.1f}s)")
    max_residues = min(spec["max_residues"], adapter.max_length)
    records = length_sorted_batches(
        lengths, spec["letters"], max_residues, max_tokens, args.max_batch, args.seed
    )
    batches = [adapter.collate(b, seed=0).to(device) for b in records]
    real = [int(b.attention_mask.sum()) for b in batches]
    padded = [int(b.attention_mask.numel()) for b in batches]
    out["prepared_batches"] = len(batches)
    log(
        f"{name}: {len(batches)} batches, {sum(real):,} tokens, real fraction {sum(real) / sum(padded):.3f}"
    )

    autocast = "bf16"
    engine = HookEngine(adapter, adapter.scored_parameters(), autocast=autocast)
    out["engine"] = engine.describe()
    plain = fwd_bwd(adapter, device, torch.bfloat16)
    curvature = DiagonalFisher(damping_relative=0.1)
    scorer = SelfInfluenceScorer()

    def score(batch: Any) -> None:
        scorer.score_batch(adapter, batch, engine, curvature)

    def engine_only(batch: Any) -> None:
        engine.run(batch, lambda factors: None)

    timer = Timer(device)
    # warm-up (kernels, allocator) on the first batch, then the fit on two batches
    timer(lambda: plain(batches[0]))
    curvature.fit_begin(engine.blocks)
    fit_batches = batches[: min(2, len(batches))]
    fit_time = sum(timer(lambda b=b: engine.run(b, curvature.fit_accumulate)) for b in fit_batches)
    curvature.fit_end(sum(len(b) for b in fit_batches))
    out["fit"] = {
        "seconds": round(fit_time, 4),
        "tokens": sum(padded[: len(fit_batches)]),
        "note": "first batches, includes warm-up of the engine",
    }
    timer(lambda: score(batches[0]))
    workspace = workspace_bytes_for(device) if device.type == "cuda" else None
    out["workspace_bytes"] = workspace or "CPU default (8 MiB)"
    out["mixed_products"] = bool(mixed_products(device, torch.bfloat16))

    fns = {"plain": plain, "score": score, "engine": engine_only}
    times, visited = side_by_side(
        fns,
        batches,
        timer,
        seconds=args.seconds,
        max_rounds=args.max_rounds,
        progress=lambda count, s: log(f"{name}: {count} batches, {s:.0f}s"),
    )
    done_real, done_padded = sum(real[k] for k in visited), sum(padded[k] for k in visited)
    out["measured"] = {
        "batches": len(visited),
        "sequences": sum(len(batches[k]) for k in visited),
        "real_tokens": done_real,
        "padded_tokens": done_padded,
        "real_fraction": round(done_real / max(done_padded, 1), 4),
        "seconds": {k: round(v, 4) for k, v in times.items()},
    }
    out["checks"] = agreement_checks(adapter, engine, curvature, batches[0], device)
    # peak memory of each phase, on the largest batch (a failure here keeps the timings)
    big = max(range(len(batches)), key=lambda j: padded[j])
    out["peak_memory_gib"] = {}
    out["peak_memory_batch_tokens"] = padded[big]
    note = lambda msg: out.setdefault("notes", []).append(msg)  # noqa: E731
    peak_memory_each(fns, batches[big], device, out["peak_memory_gib"], note)
    out["total_seconds"] = round(time.perf_counter() - t0, 1)
    return out


def agreement_checks(
    adapter: Any, engine: Any, curvature: Any, batch: Any, device: Any
) -> dict[str, Any]:
    """On one batch: the bf16-matmul products (float32 output) against upcast float32 products, and
    the bf16-autocast scores against float32 (no autocast) scores. Maximum relative differences."""
    import torch

    import biocoreset.grads.factors as factors
    from biocoreset.grads.engine import HookEngine
    from biocoreset.scorers.self_influence import SelfInfluenceScorer

    scorer = SelfInfluenceScorer()
    out: dict[str, Any] = {}

    def rel(a: torch.Tensor, b: torch.Tensor) -> float:
        return float(((a - b).abs() / b.abs().clamp_min(1e-30)).max())

    try:
        base, _ = scorer.score_batch(adapter, batch, engine, curvature)
        key = (device, torch.bfloat16)
        if factors.mixed_products(device, torch.bfloat16):
            factors._MIXED[key] = False
            try:
                upcast, _ = scorer.score_batch(adapter, batch, engine, curvature)
            finally:
                factors._MIXED[key] = True
            out["mixed_vs_upcast_max_rel"] = rel(base, upcast)
        fp32 = HookEngine(adapter, engine.params)
        exact, _ = scorer.score_batch(adapter, batch, fp32, curvature)
        out["bf16_vs_fp32_max_rel"] = rel(base, exact)
        out["bf16_vs_fp32_median_rel"] = float(((base - exact).abs() / exact.abs()).median())
    except Exception as exc:  # a check must not sink the measurement
        out["error"] = traceback.format_exception_only(type(exc), exc)[-1].strip()[:300]
    return out


# -- main ----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=sorted(MODELS))
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny models, a few batches")
    parser.add_argument("--device", default=None, help="default: cuda (cpu with --dry-run)")
    parser.add_argument("--seconds", type=float, help="measurement time per model (default 60)")
    parser.add_argument("--budget", type=float, default=450.0, help="whole-run limit in seconds")
    parser.add_argument("--sequences", type=int, help="sequences drawn per model (default 4096)")
    parser.add_argument("--max-tokens", type=int, help="padded tokens per batch (default 32768)")
    parser.add_argument("--max-batch", type=int, help="rows per batch at most (default 512)")
    parser.add_argument(
        "--max-rounds", type=int, help="stop after this many passes over the batches"
    )
    parser.add_argument("--lengths-from", type=Path, help="FASTA whose lengths to follow")
    parser.add_argument("--corpus-size", type=int, default=CORPUS_SIZE)
    parser.add_argument("--peak-tflops", type=float, help="device bf16 peak (TFLOP/s) for the MFU")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--output",
        type=Path,
        help=f"report (default {DOCS_OUTPUT.relative_to(ROOT)}; required with --dry-run)",
    )
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args(argv)
    defaults = DRY if args.dry_run else GPU
    for key, value in defaults.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.output is None:
        if args.dry_run:
            parser.error("--dry-run needs --output (a dry run never writes over docs/)")
        args.output = DOCS_OUTPUT
    elif args.dry_run and args.output.resolve() == DOCS_OUTPUT.resolve():
        parser.error(f"a dry run does not write over {DOCS_OUTPUT.relative_to(ROOT)}")
    return args


def run_model(
    name: str,
    args: argparse.Namespace,
    device: Any,
    lengths: list[int],
    population: list[int],
    started: float,
    info: dict[str, Any],
) -> dict[str, Any]:
    """One model's result: measured within what is left of ``--budget``, halving the tokens per
    batch after an out-of-memory error; a failure is recorded, not raised."""
    spec = MODELS[name]
    mean_tokens = sum(min(n, spec["max_residues"]) + 2 for n in population) / len(population)
    label = spec.get("dry_label", spec["label"]) + " (tiny)" if args.dry_run else spec["label"]
    remaining = args.budget - (time.perf_counter() - started)
    if remaining < 30 and not args.dry_run:
        return {
            "model": name,
            "label": label,
            "error": f"skipped: {remaining:.0f}s left of --budget",
        }
    notes: list[str] = []
    result: dict[str, Any] = {}

    def attempt(max_tokens: int) -> None:
        remaining = args.budget - (time.perf_counter() - started)
        seconds = args.seconds if args.dry_run else min(args.seconds, max(10.0, remaining / 2 - 30))
        run_args = argparse.Namespace(**{**vars(args), "seconds": seconds})
        result.clear()
        result.update(model=name, label=label)
        measure_model(name, run_args, device, lengths, max_tokens, result)

    def halved(max_tokens: int) -> None:
        notes.append(f"{label}: out of memory at {max_tokens:,} tokens per batch; halved")
        log(notes[-1])

    failure = oom_halving(
        attempt,
        args.max_tokens,
        device,
        failed=lambda text: log(f"{name} failed: {text}\n{traceback.format_exc()}"),
        halved=halved,
    )
    if failure is not None:
        result["error"] = failure[:300]
    result["notes"] = notes + result.get("notes", [])
    result["mean_tokens"] = round(mean_tokens, 2)
    summarise(result, info, mean_tokens, args.corpus_size)
    free_memory(device)
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    import torch

    device = torch.device(args.device or ("cpu" if args.dry_run else "cuda"))
    if device.type == "cuda":
        try:
            available = torch.cuda.is_available()
        except Exception:
            available = False
        if not available:
            log("no CUDA device: nothing to measure (use --dry-run on a CPU machine)")
            return 2
    info = device_info(device, args.peak_tflops)
    log(
        f"device: {info.get('name')} ({info.get('memory_gib', '?')} GiB), peak {info['peak_tflops']} TFLOP/s"
    )
    lengths_all, where = length_source(args.lengths_from)
    rng = random.Random(args.seed)
    lengths = sample_lengths(lengths_all, args.sequences, rng)
    population = lengths_all or sample_lengths(None, 100_000, random.Random(args.seed + 1))
    report: dict[str, Any] = {
        "dry_run": bool(args.dry_run),
        "command": "python -m benchmarks.gpu_check "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "device": info,
        "lengths": where,
        "corpus_size": args.corpus_size,
        "results": [],
    }
    for name in args.models:
        report["results"].append(run_model(name, args, device, lengths, population, started, info))
        write_report(render(report), args.output, report, args.json)  # partial results survive
        log(f"{name}: done; report written to {args.output}")
    if not args.models:
        write_report(render(report), args.output, report, args.json)
    for r in report["results"]:
        if "score_over_plain_throughput" in r:
            log(
                f"{r['model']}: score/plain {r['score_over_plain_throughput']:.2f}, "
                f"MFU score {fmt((r.get('mfu') or {}).get('score'), '{:.1%}')}, "
                f"{r['projected_hours']['score']:.1f} h for {args.corpus_size / 1e6:.0f}M"
            )
    log(f"finished in {time.perf_counter() - started:.0f}s")
    return 0 if all("error" not in r for r in report["results"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())

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

and reports: scoring throughput over plain fwd+bwd throughput (target >= 0.85); model FLOP
utilisation, ``6 · parameters · tokens / time / peak bf16 FLOP/s`` (target >= 40%; the peak from
a small table of devices, or ``--peak-tflops``); peak memory (``torch.cuda.max_memory_allocated``)
of each; and the hours that scoring 23M RNAcentral-like sequences would take at the measured rate.

Robust on a first run: every CUDA call is guarded, each model is time-boxed (``--seconds`` of
measurement), an out-of-memory error halves the token budget per batch and retries, a failing
model is recorded and the next one runs, and the report is rewritten after every model, so a crash
leaves partial results.

Run::

    python -m benchmarks.gpu_check                          # CUDA, <= 8 min; writes docs/benchmarks-gpu.md
    python -m benchmarks.gpu_check --models rna-fm --seconds 30 --max-tokens 16384
    python -m benchmarks.gpu_check --dry-run --output /tmp/gpu-check.md   # CPU, tiny models, seconds

``--dry-run`` runs the same code on the CPU with tiny models and a few small batches (a test runs it);
its figures are not performance figures, and it never writes over ``docs/``.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._common import (
    ROOT,
    Timer,
    build_adapter,
    device_info,
    fmt,
    free_memory,
    is_oom,
    length_sorted_batches,
    length_source,
    markdown_rows,
    offline,
    peak_memory_each,
    sample_lengths,
    side_by_side,
    write_report,
)

offline()
DOCS_OUTPUT = ROOT / "docs" / "benchmarks-gpu.md"
CORPUS_SIZE = 23_000_000
MODELS: dict[str, dict[str, Any]] = {
    "rna-fm": {"label": "RNA-FM", "letters": "ACGU", "max_residues": 1022},
    "esmc-300m": {
        "label": "ESM-C 300M",
        "dry_label": "ESM-C",
        "letters": "ACDEFGHIKLMNPQRSTVWY",
        "max_residues": 2046,
    },
}

DRY = {"sequences": 32, "max_tokens": 1024, "max_batch": 16, "seconds": 1.0, "max_rounds": 2}
GPU = {"sequences": 4096, "max_tokens": 32768, "max_batch": 512, "seconds": 60.0, "max_rounds": 0}


def log(msg: str) -> None:
    print(f"[gpu_check {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# -- models --------------------------------------------------------------------------------------


def make_adapter(name: str, dry: bool) -> Any:
    """The model, random weights, in the library's adapter (tiny in a dry run)."""
    if name == "rna-fm":
        return build_adapter("rna-fm", seed=0, size="tiny" if dry else "rna-fm")
    if name == "esmc-300m":
        name = "tiny" if dry else "esmc_300m"
        return build_adapter("esmc", seed=0, name=name, random_init=True)
    raise ValueError(f"unknown model {name!r}; choose from {sorted(MODELS)}")


def attention_of(model: Any) -> str:
    impl = getattr(getattr(model, "config", None), "_attn_implementation", None)
    return str(impl) if impl else "F.scaled_dot_product_attention (esm)"


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
    trainable = [p for p in model.parameters() if p.requires_grad]

    def plain(batch: Any) -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = adapter.per_sample_loss(batch)
        loss.sum().backward()
        for p in trainable:
            p.grad = None

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


def summarise(r: dict[str, Any], info: dict[str, Any], mean_tokens: float, corpus: int) -> None:
    """Derived figures: throughputs, ratios, MFU, projected hours (added to ``r`` in place)."""
    m = r.get("measured")
    if not m or not m["batches"]:
        return
    sec = m["seconds"]
    rate = {k: m["real_tokens"] / v for k, v in sec.items() if v > 0}
    r["real_tokens_per_s"] = {k: round(v, 1) for k, v in rate.items()}
    if sec["score"] > 0:
        r["score_over_plain_throughput"] = round(sec["plain"] / sec["score"], 3)
        r["engine_over_plain_throughput"] = round(sec["plain"] / sec["engine"], 3)
    peak = info.get("peak_tflops")
    if peak:
        flops = 6.0 * r["parameters"] * m["padded_tokens"]
        r["mfu"] = {k: round(flops / v / (peak * 1e12), 4) for k, v in sec.items() if v > 0}
    hours = {k: corpus * mean_tokens / v / 3600 for k, v in rate.items()}
    r["projected_hours"] = {k: round(v, 2) for k, v in hours.items()}


# -- report --------------------------------------------------------------------------------------


def _workspace(r: dict[str, Any]) -> str:
    w = r["workspace_bytes"]
    return w if isinstance(w, str) else f"{w / 2**30:.1f} GiB"


PCT = "{:.1%}"
#: The results table: a title (``{}``: the corpus size) and the cell of one model's result.
ROWS: tuple[tuple[str, Callable[[dict[str, Any]], Any]], ...] = (
    ("parameters", lambda r: f"{r['parameters'] / 1e6:.1f}M"),
    ("attention", lambda r: r["attention"]),
    ("tokens per batch (at most)", lambda r: f"{r['max_tokens']:,}"),
    (
        "batches / sequences measured",
        lambda r: f"{r['measured']['batches']} / {r['measured']['sequences']:,}",
    ),
    ("real-token fraction", lambda r: f"{r['measured']['real_fraction']:.3f}"),
    ("plain fwd+bwd, real tokens/s", lambda r: f"{r['real_tokens_per_s']['plain']:,.0f}"),
    ("score, real tokens/s", lambda r: f"{r['real_tokens_per_s']['score']:,.0f}"),
    (
        "**score / plain throughput** (≥ 0.85)",
        lambda r: f"**{r['score_over_plain_throughput']:.2f}**",
    ),
    ("engine w/o products / plain", lambda r: f"{r['engine_over_plain_throughput']:.2f}"),
    ("MFU plain", lambda r: PCT.format(r["mfu"]["plain"])),
    ("**MFU score** (≥ 40%)", lambda r: f"**{PCT.format(r['mfu']['score'])}**"),
    (
        "peak memory plain / score, GiB",
        lambda r: " / ".join(fmt(r["peak_memory_gib"][k]) for k in ("plain", "score")),
    ),
    ("per-sample product workspace", _workspace),
    (
        "bf16 products with float32 output",
        lambda r: "yes" if r["mixed_products"] else "no (upcast, float32 matmul)",
    ),
    (
        "bf16-matmul vs upcast products, max rel. diff",
        lambda r: fmt(r["checks"].get("mixed_vs_upcast_max_rel"), "{:.1e}"),
    ),
    (
        "bf16 vs fp32 scores, max / median rel. diff",
        lambda r: "{bf16_vs_fp32_max_rel:.1e} / {bf16_vs_fp32_median_rel:.1e}".format(
            **r["checks"]
        ),
    ),
    ("**hours to score {} sequences**", lambda r: f"**{r['projected_hours']['score']:,.1f}**"),
    ("hours of plain fwd+bwd (floor)", lambda r: f"{r['projected_hours']['plain']:,.1f}"),
)


def render(report: dict[str, Any]) -> str:
    info, results = report["device"], report["results"]
    dry = report["dry_run"]
    lines = ["## GPU check: scoring throughput at real size (`benchmarks/gpu_check.py`)", ""]
    if dry:
        lines += [
            "> **DRY RUN** on the CPU with *tiny* models and a few small batches: this checks that the "
            "script runs end to end. Its figures are **not performance figures**.",
            "",
        ]
    lines += [
        "What it measures, per model (random weights at the real size: RNA-FM 99.5M as an "
        "`EsmForMaskedLM`, ESM-C 300M from `esm`), on the same length-sorted batches of random "
        "sequences whose lengths follow a real corpus, side by side batch by batch under bf16 "
        "autocast:",
        "",
        "- **plain**: forward + backward of the summed loss — the floor;",
        '- **score**: self-influence with the diagonal Fisher (hook engine, `autocast="bf16"`);',
        "- **engine**: the hook engine's forward + backward without the per-sample products, so "
        "*score − engine* is what the products and their reductions cost.",
        "",
        "Reported: scoring throughput / plain throughput (target ≥ 0.85); model FLOP utilisation "
        "`6 · parameters · padded tokens / time / peak bf16` (target ≥ 40%); peak memory "
        "(`torch.cuda.max_memory_allocated`, on the largest batch); hours to score "
        f"{report['corpus_size'] / 1e6:.0f}M sequences with this length distribution at the measured rate.",
        "",
        "### Command",
        "",
        "```bash",
        report["command"],
        "```",
        "",
        "### Device",
        "",
        "| | |",
        "|---|---|",
        f"| device | {info.get('name', info['device'])} |",
        f"| memory | {fmt(info.get('memory_gib'), '{} GiB')} |",
        f"| torch / CUDA | {info['torch']} / {info.get('cuda') or 'n/a'} |",
        f"| bf16 peak | {fmt(info.get('peak_tflops'), '{:.0f} TFLOP/s')} ({info['peak_source']}) |",
        f"| date | {report['date']} |",
        "",
        f"Lengths: {report['lengths']}; mean tokens per sequence (residues capped at the model "
        "limit, plus `<cls>`/`<eos>`): "
        + ", ".join(f"{r['label']} {r['mean_tokens']:.1f}" for r in results if "mean_tokens" in r)
        + ".",
        "",
        "### Results",
        "",
    ]
    ok = [r for r in results if "measured" in r]
    if ok:
        corner = "DRY RUN (CPU, tiny models)" if dry else ""
        head = f"| {corner} | " + " | ".join(r["label"] for r in ok) + " |"
        lines += [head, "|---|" + "---|" * len(ok)]

        millions = f"{report['corpus_size'] / 1e6:.0f}M"
        lines += markdown_rows(ok, [(title.format(millions), get) for title, get in ROWS])
        lines.append("")
        lines.append(
            "Projected hours: one GPU, scores only (the fit on `D_sub` adds its share of sequences "
            "at the same rate), batches as length-sorted as here."
        )
        lines.append("")
    failed = [r for r in results if "error" in r]
    notes = [n for r in results for n in r.get("notes", [])]
    if failed or notes:
        lines += ["### Notes", ""]
        lines += [f"- {r['label']}: **failed** — `{r['error']}`" for r in failed]
        lines += [f"- {n}" for n in notes]
        lines.append("")
    if not ok and not failed:
        lines += ["No model was measured.", ""]
    return "\n".join(lines)


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
        "command": "python benchmarks/gpu_check.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "device": info,
        "lengths": where,
        "corpus_size": args.corpus_size,
        "results": [],
    }
    for name in args.models:
        cap = MODELS[name]["max_residues"]
        mean_tokens = sum(min(n, cap) + 2 for n in population) / len(population)
        spec = MODELS[name]
        label = spec.get("dry_label", spec["label"]) + " (tiny)" if args.dry_run else spec["label"]
        remaining = args.budget - (time.perf_counter() - started)
        if remaining < 30 and not args.dry_run:
            report["results"].append(
                {
                    "model": name,
                    "label": label,
                    "error": f"skipped: {remaining:.0f}s left of --budget",
                }
            )
            continue
        max_tokens = args.max_tokens
        notes: list[str] = []
        result: dict[str, Any] = {"model": name, "label": label}
        for attempt in range(4):
            remaining = args.budget - (time.perf_counter() - started)
            seconds = (
                args.seconds if args.dry_run else min(args.seconds, max(10.0, remaining / 2 - 30))
            )
            run_args = argparse.Namespace(**{**vars(args), "seconds": seconds})
            result = {"model": name, "label": label}
            failure, oom = None, False
            try:
                measure_model(name, run_args, device, lengths, max_tokens, result)
            except Exception as exc:  # keep going: a partial report beats none
                oom = is_oom(exc)
                failure = traceback.format_exception_only(type(exc), exc)[-1].strip()
                log(f"{name} failed: {failure}\n{traceback.format_exc()}")
            # the exception and its frames are gone here, so their tensors can be freed
            free_memory(device)
            if failure is None:
                break
            if oom and attempt < 3 and max_tokens > 512:
                notes.append(f"{label}: out of memory at {max_tokens:,} tokens per batch; halved")
                log(notes[-1])
                max_tokens //= 2
                continue
            result["error"] = failure[:300]
            break
        result["notes"] = notes + result.get("notes", [])
        result["mean_tokens"] = round(mean_tokens, 2)
        summarise(result, info, mean_tokens, args.corpus_size)
        report["results"].append(result)
        free_memory(device)
        write_report(report, args.output, args.json)  # partial results survive a later crash
        log(f"{name}: done; report written to {args.output}")
    if not args.models:
        write_report(report, args.output, args.json)
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

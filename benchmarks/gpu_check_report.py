"""The GPU check's report: derived figures (throughput ratios, MFU, projected hours) and the page.

:mod:`benchmarks.gpu_check` measures; this module turns its raw results (the ``--json`` file) into
``docs/benchmarks-gpu.md`` with :func:`benchmarks._common.markdown_page`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks._common import device_rows, fmt, markdown_page


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


DRY_BANNER = (
    "> **DRY RUN** on the CPU with *tiny* models and a few small batches: this checks that the "
    "script runs end to end. Its figures are **not performance figures**."
)
INTRO = (
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
)
REPORTED = (
    "Reported: scoring throughput / plain throughput (target ≥ 0.85); model FLOP utilisation "
    "`6 · parameters · padded tokens / time / peak bf16` (target ≥ 40%); peak memory "
    "(`torch.cuda.max_memory_allocated`, on the largest batch); hours to score "
)


def _workspace(r: dict[str, Any]) -> str:
    w = r["workspace_bytes"]
    return w if isinstance(w, str) else f"{w / 2**30:.1f} GiB"


#: The results table: a title (``{}``: the corpus size) and the cell of one model's result.
ROWS: tuple[tuple[str, str | Callable[[dict[str, Any]], Any]], ...] = (
    ("parameters", lambda r: f"{r['parameters'] / 1e6:.1f}M"),
    ("attention", "{attention}"),
    ("tokens per batch (at most)", "{max_tokens:,}"),
    ("batches / sequences measured", "{measured[batches]} / {measured[sequences]:,}"),
    ("real-token fraction", "{measured[real_fraction]:.3f}"),
    ("plain fwd+bwd, real tokens/s", "{real_tokens_per_s[plain]:,.0f}"),
    ("score, real tokens/s", "{real_tokens_per_s[score]:,.0f}"),
    ("**score / plain throughput** (≥ 0.85)", "**{score_over_plain_throughput:.2f}**"),
    ("engine w/o products / plain", "{engine_over_plain_throughput:.2f}"),
    ("MFU plain", "{mfu[plain]:.1%}"),
    ("**MFU score** (≥ 40%)", "**{mfu[score]:.1%}**"),
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
        "{checks[bf16_vs_fp32_max_rel]:.1e} / {checks[bf16_vs_fp32_median_rel]:.1e}",
    ),
    ("**hours to score {} sequences**", "**{projected_hours[score]:,.1f}**"),
    ("hours of plain fwd+bwd (floor)", "{projected_hours[plain]:,.1f}"),
)


def render(report: dict[str, Any]) -> str:
    """The report page (markdown) of a run's ``report`` (as written with ``--json``)."""
    info, results, dry = report["device"], report["results"], report["dry_run"]
    millions = f"{report['corpus_size'] / 1e6:.0f}M"
    return markdown_page(
        "## GPU check: scoring throughput at real size (`benchmarks/gpu_check.py`)",
        banner=[DRY_BANNER] if dry else [],
        intro=[
            *INTRO,
            f"{REPORTED}{millions} sequences with this length distribution at the measured rate.",
        ],
        command=report["command"],
        device=device_rows(info, report["date"]),
        after_device=[
            f"Lengths: {report['lengths']}; mean tokens per sequence (residues capped at the model "
            "limit, plus `<cls>`/`<eos>`): "
            + ", ".join(
                f"{r['label']} {r['mean_tokens']:.1f}" for r in results if "mean_tokens" in r
            )
            + "."
        ],
        corner="DRY RUN (CPU, tiny models)" if dry else "",
        results=results,
        rows=[(title.format(millions), get) for title, get in ROWS],
        after_table=[
            "Projected hours: one GPU, scores only (the fit on `D_sub` adds its share of sequences "
            "at the same rate), batches as length-sorted as here."
        ],
        nothing="No model was measured.",
    )

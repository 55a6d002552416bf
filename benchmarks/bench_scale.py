"""Scale benchmark: scoring time linear in N, and selectors on 23M scores.

1. **Scoring is linear in N.** A random sample of 4N Rfam seed sequences (``--corpus``, default
   ``../shared/data/rna/corpus/rfam14.2_seed_sequences.fasta.gz``) is cut into nested corpora of N, 2N
   and 4N sequences; each is scored end to end with ``biocoreset.api.score_to_file`` (streamed,
   sharded; D_sub fixed at ``--subset`` sequences so the Fisher fit costs the same everywhere). The
   per-sequence time of the scoring pass at 2N and 4N is compared with that at N (target: within
   10%). Sizes are run interleaved, ``--repeats`` times, and the fastest run of each is kept (the
   machines are noisy).
2. **Selectors at 23M.** Top-I and CCI (β = 0.05, 50 strata) select 200,000 of 23M random scores,
   each in a fresh process so that the extra peak memory (peak RSS minus RSS with the scores loaded)
   can be measured. Targets: ≤ 3 s and ≤ 1 GB each.

Usage::

    python -m benchmarks.bench_scale                    # both parts
    python -m benchmarks.bench_scale --n 128 --repeats 3 --threads 2
    python -m benchmarks.bench_scale --skip-scoring     # selectors only

Results are recorded in ``docs/benchmarks-scale.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._common import SHARED_DATA, child_env, module_command, peak_rss_mib, rss_mib

DEFAULT_CORPUS = SHARED_DATA / "rna" / "corpus" / "rfam14.2_seed_sequences.fasta.gz"


def selector_child(method: str, n: int, budget: int) -> None:
    """Run one selector on ``n`` random scores and print time and extra peak memory as JSON."""
    from biocoreset import select

    scores = np.random.default_rng(0).random(n)
    select(np.random.default_rng(1).random(1000), method, budget=10)  # warm imports and registry
    base = max(rss_mib(), peak_rss_mib())
    t0 = time.perf_counter()
    c0 = time.process_time()
    sel = select(scores, method, budget=budget, seed=0)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    print(
        json.dumps(
            {
                "method": method,
                "n": n,
                "budget": int(sel.budget),
                "seconds": wall,
                "cpu_seconds": cpu,
                "extra_peak_mb": peak_rss_mib() - base,
            }
        )
    )


def run_selectors(n: int, budget: int) -> list[dict]:
    out = []
    for method in ("topk", "cci"):
        proc = subprocess.run(
            [
                *module_command("benchmarks.bench_scale"),
                "--_child",
                method,
                "--selector-n",
                str(n),
                "--budget",
                str(budget),
            ],
            capture_output=True,
            text=True,
            check=True,
            env=child_env(),
        )
        out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return out


def _sample(corpus: Path, count: int, max_len: int, seed: int) -> list[tuple[str, str]]:
    from biocoreset.data.readers import read_records

    records = [(rid, seq) for rid, seq in read_records(corpus) if len(seq) <= max_len]
    if len(records) < count:
        raise SystemExit(
            f"{corpus} has only {len(records)} sequences of <= {max_len} nt; lower --n."
        )
    idx = np.random.default_rng(seed).choice(len(records), size=count, replace=False)
    return [records[i] for i in idx.tolist()]


def run_scoring(
    corpus: Path, n: int, repeats: int, subset: int, batch_size: int, max_len: int
) -> dict:
    import torch

    from biocoreset.adapters.hf import HFAdapter
    from biocoreset.api import score_to_file
    from biocoreset.data.synthetic import write_fasta
    from biocoreset.testing import tiny_esm

    sample = _sample(corpus, 4 * n, max_len, seed=0)
    model, tok = tiny_esm(
        seed=0, dtype=torch.float32, layers=4, hidden=128, heads=4, max_positions=max_len + 4
    )
    adapter = HFAdapter(model, tok)
    sizes = [n, 2 * n, 4 * n]
    results: dict[int, list[dict]] = {s: [] for s in sizes}
    with tempfile.TemporaryDirectory() as tmp:
        files = {s: write_fasta(sample[:s], Path(tmp) / f"c{s}.fa") for s in sizes}
        for rep in range(repeats):
            for s in sizes:
                out = Path(tmp) / f"s{s}_{rep}.parquet"
                t0 = time.perf_counter()
                meta = score_to_file(
                    adapter,
                    files[s],
                    out,
                    subset=subset,
                    batch_size=batch_size,
                    invalid="replace",
                    progress=False,
                )
                total = time.perf_counter() - t0
                results[s].append({"total": total, **meta["timing"], "peak_rss_mb": peak_rss_mib()})
                print(
                    f"  N={s:>5} run {rep + 1}: score pass {meta['timing']['score']:.2f} s "
                    f"({1e3 * meta['timing']['score'] / s:.2f} ms/seq), total {total:.2f} s",
                    flush=True,
                )
    best = {s: min(r["score"] for r in results[s]) / s for s in sizes}
    best_total = {s: min(r["total"] for r in results[s]) / s for s in sizes}
    return {
        "sizes": sizes,
        "ms_per_seq_score_pass": {s: 1e3 * best[s] for s in sizes},
        "ms_per_seq_total": {s: 1e3 * best_total[s] for s in sizes},
        "ratio_vs_1x": {s: best[s] / best[n] for s in sizes},
        "ratio_total_vs_1x": {s: best_total[s] / best_total[n] for s in sizes},
        "model": "EsmForMaskedLM 4 layers x 128, float32",
        "batch_size": batch_size,
        "subset": subset,
        "max_len": max_len,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    p.add_argument("--n", type=int, default=128, help="1x corpus size (default 128)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--subset", type=int, default=64, help="D_sub size, fixed across N")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument(
        "--max-len", type=int, default=200, help="sample sequences of at most this many nt"
    )
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--selector-n", type=int, default=23_000_000)
    p.add_argument("--budget", type=int, default=200_000)
    p.add_argument("--skip-scoring", action="store_true")
    p.add_argument("--skip-selectors", action="store_true")
    p.add_argument("--_child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._child:
        selector_child(args._child, args.selector_n, args.budget)
        return
    import torch

    torch.set_num_threads(args.threads)
    print(f"cpus: {os.cpu_count()}, torch threads: {args.threads}, load average: {os.getloadavg()}")
    if not args.skip_scoring:
        if not args.corpus.exists():
            raise SystemExit(
                f"corpus {args.corpus} not found; pass --corpus PATH (any FASTA of RNA)."
            )
        print(
            f"scoring {args.n}, {2 * args.n}, {4 * args.n} Rfam sequences (<= {args.max_len} nt), "
            f"D_sub = {args.subset}, batch {args.batch_size}, {args.repeats} repeats:"
        )
        res = run_scoring(
            args.corpus, args.n, args.repeats, args.subset, args.batch_size, args.max_len
        )
        print(f"\nscoring, {res['model']}:")
        print(
            f"  {'N':>6}  {'ms/seq (score pass)':>20}  {'ratio to 1x':>11}  {'ms/seq (total)':>15}  {'ratio':>6}"
        )
        for s in res["sizes"]:
            print(
                f"  {s:>6}  {res['ms_per_seq_score_pass'][s]:>20.2f}  {res['ratio_vs_1x'][s]:>11.3f}  "
                f"{res['ms_per_seq_total'][s]:>15.2f}  {res['ratio_total_vs_1x'][s]:>6.3f}"
            )
        worst = max(abs(r - 1) for r in res["ratio_vs_1x"].values())
        print(
            f"  linear within {100 * worst:.1f}% (target 10%): {'PASS' if worst <= 0.10 else 'MISS'}"
        )
    if not args.skip_selectors:
        print(
            f"\nselectors on {args.selector_n:,} random scores, budget {args.budget:,} (fresh process each):"
        )
        for r in run_selectors(args.selector_n, args.budget):
            ok = r["seconds"] <= 3.0 and r["extra_peak_mb"] <= 1024
            print(
                f"  {r['method']:<5} {r['seconds']:6.2f} s wall ({r['cpu_seconds']:.2f} s CPU), "
                f"extra peak memory {r['extra_peak_mb']:7.1f} MB  {'PASS' if ok else 'MISS'}"
            )


if __name__ == "__main__":
    main()

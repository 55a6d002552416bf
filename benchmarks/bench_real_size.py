"""Real-size smoke check: RNA-FM (99.5M) and ESMC-300M scoring real sequences on CPU.

Both models are built at their published sizes with *random* weights (nothing can be downloaded
here; the cost of scoring does not depend on the weights' values) and score a few dozen real
sequences end to end through :func:`biocoreset.score` (self-influence, diagonal Fisher fitted on
``D_sub``, the default ``engine="auto"`` hook engine):

* RNA: ``--n`` Rfam 14.2 seed sequences, spread over the file
  (``../shared/data/rna/corpus/rfam14.2_seed_sequences.fasta.gz``);
* proteins: ``--n`` UniProt reference-proteome sequences, taken round-robin from the 8 proteomes
  in ``../shared/data/protein/corpus/``;

each cut to ``--residues`` residues. Measured side by side in the same process: the *floor*, one
plain batched forward + backward of the same model over the same batches (per-sample scores cannot
be cheaper), and the full ``score`` call (fit on ``D_sub`` + score every sequence), in wall-clock
and in CPU seconds of the process (``time.process_time``, all threads: on a shared machine the
wall clock also counts other users' load, so the ratio to the floor is given in CPU time per
sequence-pass: the fit pass is a forward + backward over ``D_sub`` too). Each model runs in its own subprocess so its peak resident memory (``ru_maxrss``) is
its own.

Run::

    python -m benchmarks.bench_real_size                     # both models, 32 sequences each
    python -m benchmarks.bench_real_size --model rna-fm --n 16 --residues 256
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from benchmarks._common import (
    SHARED_DATA,
    build_adapter,
    child_env,
    cpu_name,
    fasta_records,
    module_command,
    offline,
    peak_rss_mib,
)

offline()
DATA = SHARED_DATA
RNA_FASTA = DATA / "rna" / "corpus" / "rfam14.2_seed_sequences.fasta.gz"
PROTEIN_DIR = DATA / "protein" / "corpus"


def rna_records(n: int, residues: int) -> list[tuple[str, str]]:
    """``n`` Rfam seed sequences spread evenly over the file, cut to ``residues``."""
    records = list(fasta_records(RNA_FASTA))
    step = max(1, len(records) // n)
    return [(rid, seq[:residues]) for rid, seq in records[::step][:n]]


def protein_records(n: int, residues: int) -> list[tuple[str, str]]:
    """``n`` proteins taken round-robin from the reference proteomes, cut to ``residues``."""
    files = sorted(PROTEIN_DIR.glob("UP*.fasta.gz"))
    streams = [fasta_records(f) for f in files]
    out: list[tuple[str, str]] = []
    while len(out) < n:
        for stream in streams:
            rid, seq = next(stream)
            out.append((rid, seq[:residues]))
            if len(out) == n:
                break
    return out


def build(model: str):
    if model == "rna-fm":
        return build_adapter("rna-fm", size="rna-fm")
    return build_adapter("esmc", model_name="esmc_300m", random_init=True)


def run_one(args: argparse.Namespace) -> dict:
    import torch

    from biocoreset import score

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    records = (
        rna_records(args.n, args.residues)
        if args.model == "rna-fm"
        else protein_records(args.n, args.residues)
    )
    t = time.perf_counter()
    adapter = build(args.model)
    build_s = time.perf_counter() - t
    n_params = sum(p.numel() for p in adapter.model.parameters())
    lengths = [len(s) for _, s in records]

    # floor: plain batched forward + backward of the summed per-sample losses, same batches
    adapter.model.eval()
    warm = adapter.collate(records[: args.batch_size], seed=0)  # untimed: first-call allocations
    adapter.per_sample_loss(warm).sum().backward()
    adapter.model.zero_grad(set_to_none=True)
    t, c = time.perf_counter(), time.process_time()
    for start in range(0, len(records), args.batch_size):
        batch = adapter.collate(records[start : start + args.batch_size], seed=0)
        loss = adapter.per_sample_loss(batch).sum()
        loss.backward()
        adapter.model.zero_grad(set_to_none=True)
    floor_s, floor_cpu = time.perf_counter() - t, time.process_time() - c

    t, c = time.perf_counter(), time.process_time()
    result = score(
        adapter, records, subset=args.subset, batch_size=args.batch_size, seed=0, progress=False
    )
    score_s, score_cpu = time.perf_counter() - t, time.process_time() - c
    peak_gib = peak_rss_mib() / 1024
    timing = result.metadata["timing"]
    return {
        "model": args.model,
        "parameters_M": round(n_params / 1e6, 1),
        "sequences": len(records),
        "residues_mean": round(sum(lengths) / len(lengths), 1),
        "residues_max": max(lengths),
        "batch_size": args.batch_size,
        "d_sub": args.subset,
        "threads": args.threads,
        "engine": result.metadata["engine"],
        "build_s": round(build_s, 1),
        "floor_fwd_bwd_s": round(floor_s, 1),
        "floor_cpu_s": round(floor_cpu, 1),
        "score_total_s": round(score_s, 1),
        "score_total_cpu_s": round(score_cpu, 1),
        "fit_s": timing.get("fit"),
        "score_pass_s": timing.get("score"),
        "s_per_sequence": round(score_s / len(records), 2),
        "cpu_s_per_sequence": round(score_cpu / len(records), 2),
        # the fit pass is a forward+backward over D_sub too: compare per sequence-pass
        "cpu_ratio_to_floor_per_pass": round(
            (score_cpu / (len(records) + args.subset)) / (floor_cpu / len(records)), 2
        ),
        "load_avg_1min": round(os.getloadavg()[0], 1),
        "score_pass_s_per_sequence": round(timing.get("score", float("nan")) / len(records), 2),
        "ratio_score_pass_to_floor": round(timing.get("score", float("nan")) / floor_s, 2),
        "peak_rss_gib": round(peak_gib, 2),
        "scores_finite": bool(all(map(lambda v: v == v and abs(v) != float("inf"), result.scores))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["rna-fm", "esmc", "both"], default="both")
    parser.add_argument("--n", type=int, default=32, help="sequences per model")
    parser.add_argument(
        "--residues", type=int, default=128, help="cut every sequence to this many residues"
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--subset", type=int, default=8, help="D_sub size (diagonal Fisher)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", type=Path, help="also write the results here (JSON lines)")
    args = parser.parse_args()
    if args.model != "both":
        print(json.dumps(run_one(args)), flush=True)
        return
    rows = []
    print(f"# {cpu_name()}, {os.cpu_count()} CPUs, python {platform.python_version()}")
    for model in ("rna-fm", "esmc"):
        cmd = [
            *module_command("benchmarks.bench_real_size"),
            "--model",
            model,
            "--n",
            str(args.n),
            "--residues",
            str(args.residues),
            "--batch-size",
            str(args.batch_size),
            "--subset",
            str(args.subset),
            "--threads",
            str(args.threads),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=child_env())
        if proc.returncode != 0:
            print(proc.stdout + proc.stderr, file=sys.stderr)
            raise SystemExit(f"{model} failed")
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(json.dumps(row), flush=True)
    keys = [
        "model",
        "parameters_M",
        "sequences",
        "residues_mean",
        "fit_s",
        "score_pass_s",
        "score_total_s",
        "score_total_cpu_s",
        "s_per_sequence",
        "cpu_s_per_sequence",
        "floor_fwd_bwd_s",
        "floor_cpu_s",
        "cpu_ratio_to_floor_per_pass",
        "peak_rss_gib",
        "load_avg_1min",
    ]
    print("\n| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(str(row[k]) for k in keys) + " |")
    if args.json:
        args.json.write_text("".join(json.dumps(r) + "\n" for r in rows))


if __name__ == "__main__":
    main()

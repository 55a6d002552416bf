"""Length-aware batching benchmark: real-token fraction and scoring time on real corpora.

1. **Real-token fraction** (no model): the share of padded positions that hold real residues,
   Σ length / Σ (batch rows × longest member), at ``--batch-size`` (16), for batches of

   * ``file order``: consecutive records as the file holds them (biocoreset before this work);
   * ``shuffled``: consecutive records after a seeded shuffle;
   * ``grouped``: :func:`biocoreset.data.batching.length_batches` on the file order — the
     library default, records sorted by length within windows of 64 batches;
   * ``grouped (shuffled)``: the same on the shuffled records;
   * ``sorted``: the whole corpus sorted by length (the ceiling);

   with lengths as in the file, and capped at ``--max-length`` residues (1,022: what a model with
   1,024 positions sees; the library groups by this capped length, the padded width).

   Corpora: the shared Rfam 14.2 seed sequences and the S. cerevisiae reference proteome
   (``../shared/data``; see its ``MANIFEST.tsv``).
2. **Scoring time** with a small model (``EsmForMaskedLM`` 4 layers × 128, float32, the library
   defaults: diagonal Fisher, self-influence, all parameters): ``--n`` Rfam records (and
   ``--n-protein`` proteins, with a protein vocabulary) taken as
   ``--blocks`` runs of consecutive records spread over the file (so the sample keeps the file's
   order), scored end to end by :func:`biocoreset.score` three ways — file order with grouping off
   (``length_window=1``, the old batching), file order with the default grouping, and the same
   records pre-sorted by length — interleaved ``--repeats`` times (the fastest of each counts).
   On one thread (the default) the CPU time of each run is the measure: on a shared machine it
   does not grow with other jobs' load the way wall time does (both are printed). The scores of
   the three must agree per id (printed: max relative difference).

Run::

    python -m benchmarks.bench_batching                       # both parts (~15 min, 1 thread)
    python -m benchmarks.bench_batching --skip-timing         # fractions only (~20 s)

Results are recorded in ``docs/benchmarks-scoring.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._common import SHARED_DATA as SHARED
from benchmarks._common import esm_mlm, offline

offline()
CORPORA = {
    "Rfam 14.2 seed": SHARED / "rna" / "corpus" / "rfam14.2_seed_sequences.fasta.gz",
    "S. cerevisiae proteome": SHARED / "protein" / "corpus" / "UP000002311-S.cerevisiae.fasta.gz",
}
VOCABS = {
    "Rfam 14.2 seed": ["<cls>", "<pad>", "<eos>", "<unk>", *"ACGURYKMSWBDHVN", "<mask>"],
    "S. cerevisiae proteome": [
        "<cls>",
        "<pad>",
        "<eos>",
        "<unk>",
        *"LAGVSERTIDPKQNFYMHWCXBUZO",
        "<mask>",
    ],
}


def read(path: Path) -> list[tuple[str, str]]:
    from biocoreset.data.sources import open_sequences

    return list(open_sequences(path))


def fractions(lengths: Sequence[int], batch_size: int, seed: int = 0) -> dict[str, float]:
    from biocoreset.data.batching import length_batches, real_token_fraction

    def consecutive(ls: Sequence[int]) -> list[list[int]]:
        return [list(ls[i : i + batch_size]) for i in range(0, len(ls), batch_size)]

    shuffled = [lengths[i] for i in np.random.default_rng(seed).permutation(len(lengths))]

    def grouped(ls: Sequence[int]) -> list[list[int]]:
        return list(length_batches(ls, batch_size=batch_size, length=int))

    return {
        "file order": real_token_fraction(consecutive(lengths)),
        "shuffled": real_token_fraction(consecutive(shuffled)),
        "grouped": real_token_fraction(grouped(lengths)),
        "grouped (shuffled)": real_token_fraction(grouped(shuffled)),
        "sorted": real_token_fraction(consecutive(sorted(lengths))),
    }


def sample_blocks(records: list[tuple[str, str]], n: int, blocks: int) -> list[tuple[str, str]]:
    """``blocks`` runs of consecutive records at evenly spaced offsets: ``n`` records in all."""
    size = n // blocks
    starts = np.linspace(0, len(records) - size, blocks).astype(int)
    return [rec for s in starts for rec in records[s : s + size]]


def small_adapter(tokens: list[str], seed: int = 0) -> Any:
    from biocoreset.adapters.hf import HFAdapter

    model, tokenizer = esm_mlm(
        tokens, seed=seed, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
    )
    return HFAdapter(model, tokenizer)


def timing(corpus: str, records: list[tuple[str, str]], n: int, args: argparse.Namespace) -> None:
    import torch

    from biocoreset import score
    from biocoreset.data.batching import length_batches, real_token_fraction

    torch.set_num_threads(args.threads)
    adapter = small_adapter(VOCABS[corpus])
    sample = sample_blocks(records, n, args.blocks)
    presorted = sorted(sample, key=lambda r: len(r[1]))  # stable: ties keep file order
    runs = {
        "file order, grouping off": (sample, {"length_window": 1}),
        "file order, grouped (default)": (sample, {}),
        "pre-sorted, grouped": (presorted, {}),
    }
    cap = adapter.max_length
    lens = [min(len(s), cap) for _, s in sample]
    off = [lens[i : i + args.batch_size] for i in range(0, len(lens), args.batch_size)]
    on = list(length_batches(lens, batch_size=args.batch_size, length=int))
    print(
        f"\nscoring {len(sample)} {corpus} records ({args.blocks} blocks of consecutive records, "
        f"lengths capped at {cap}): real-token fraction {real_token_fraction(off):.3f} in file "
        f"order, {real_token_fraction(on):.3f} grouped; batch {args.batch_size}, D_sub "
        f"{args.subset}, {args.threads} threads"
    )
    best: dict[str, dict[str, float]] = {}
    results: dict[str, Any] = {}
    for rep in range(args.repeats):
        for name, (recs, opts) in runs.items():
            t0, c0 = time.perf_counter(), time.process_time()
            res = score(
                adapter,
                recs,
                subset=args.subset,
                batch_size=args.batch_size,
                progress=False,
                **opts,
            )
            cpu, total = time.process_time() - c0, time.perf_counter() - t0
            t = res.metadata["timing"]
            row = {"cpu": cpu, "wall": total, "score": t["score"], "fit": t["fit"]}
            print(
                f"  run {rep + 1} {name:32s} " + " ".join(f"{k} {v:6.1f}s" for k, v in row.items())
            )
            if name not in best or row["cpu"] < best[name]["cpu"]:
                best[name] = row
            results[name] = res
    ref = best["pre-sorted, grouped"]
    print(
        "\n| input | batching | CPU s | CPU / pre-sorted | wall s | scoring pass, wall s "
        "| fit, wall s |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, row in best.items():
        inp, batching = name.split(", ", 1)
        print(
            f"| {inp} | {batching} | {row['cpu']:.1f} | {row['cpu'] / ref['cpu']:.2f}× "
            f"| {row['wall']:.1f} | {row['score']:.1f} | {row['fit']:.1f} |"
        )
    ref_result = results["pre-sorted, grouped"]
    base = dict(zip(ref_result.ids, ref_result.scores, strict=True))
    for name, res in results.items():
        got = np.array([base[i] for i in res.ids])
        rel = np.max(np.abs(res.scores - got) / np.maximum(np.abs(got), 1e-300))
        print(f"max relative difference of the scores, {name} vs pre-sorted: {rel:.1e}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--n", type=int, default=512, help="Rfam records scored (timing part)")
    parser.add_argument(
        "--n-protein", type=int, default=256, help="proteins scored (timing part; 0: none)"
    )
    parser.add_argument("--blocks", type=int, default=8, help="runs of consecutive records")
    parser.add_argument("--subset", type=int, default=64, help="D_sub size in the timing part")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1: CPU time is then a load-independent measure of the work)",
    )
    parser.add_argument(
        "--max-length",
        type=int,
        default=1022,
        help="residues the model sees (longer ones are truncated; RNA-FM and the small model: 1022)",
    )
    parser.add_argument("--skip-timing", action="store_true")
    args = parser.parse_args(argv)
    try:
        load = os.getloadavg()[0]
    except OSError:  # pragma: no cover
        load = float("nan")
    print(f"python {sys.version.split()[0]}, load average {load:.2f}")
    print(f"\nreal-token fraction at batch {args.batch_size}:\n")
    print(
        "| corpus | lengths | sequences | file order | shuffled | grouped | grouped (shuffled) "
        "| sorted |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    corpora: dict[str, list[tuple[str, str]]] = {}
    for name, path in CORPORA.items():
        if not path.exists():
            print(f"| {name} | missing: {path} |")
            continue
        records = corpora[name] = read(path)
        for cap in (None, args.max_length):
            lengths = [len(s) if cap is None else min(len(s), cap) for _, s in records]
            f = fractions(lengths, args.batch_size)
            label = "as in the file" if cap is None else f"model limit {cap}"
            print(
                f"| {name} | {label} | {len(records):,} | "
                + " | ".join(f"{v:.3f}" for v in f.values())
                + " |"
            )
    sizes = {"Rfam 14.2 seed": args.n, "S. cerevisiae proteome": args.n_protein}
    for name, records in corpora.items():
        if not args.skip_timing and sizes[name]:
            timing(name, records, sizes[name], args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

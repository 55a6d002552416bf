"""Where does the mask noise of self-influence come from, and can a control variate remove it?

Scores the nRC sample of ``bench_trust.py`` ``--draws`` times with one mask each (masking seeds
``0 .. draws-1``, one fixed ``D_sub``; each run fits its own Fisher, as separate runs would), then:

1. **Single-draw reliability**: mean pairwise Spearman ρ between the single-draw score vectors, and
   ρ between the means of two disjoint groups of ``K`` draws (``K = 1, 2, 4, 8, ...``) — the
   reliability of ``mask_draws=K`` measured without its split-half estimate.
2. **What a draw's deviation is made of**: the within-sequence deviation of ``log I`` of each draw
   from the sequence's mean over draws is regressed (pooled over sequences) on statistics of the
   draw's mask alone — how many chosen positions got a random letter, kept their letter or got
   ``<mask>``; the letter composition of the chosen positions; adjacent chosen pairs. R² says
   how much of the mask noise a control variate on these statistics could remove.
3. **The control variate applied**: ρ between two groups of ``K`` draws of ``log I`` after
   subtracting the fitted effect of the statistics (centred on their exact expectation under the
   mask design, estimated by ``--simulate`` extra masks per sequence), beside the plain mean of
   ``I`` and the mean of ``log I`` without the adjustment (``log_mean``), which separates the
   control variate's gain from that of averaging logarithms.

Run (model as in ``bench_trust.py``, at full length)::

    python -m benchmarks.bench_mask_noise --model /tmp/trust2/pretrain4k --draws 16 \\
        --out /tmp/trust2/noise.json

Results are recorded in ``docs/trust.md``.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

from benchmarks.bench_trust import read_source

STATS = ("random letter", "kept letter", "<mask>", "A", "C", "G", "U", "adjacent pairs")


def mask_stats(adp, record_id: str, sequence: str, seed: int, draw: int = 0) -> np.ndarray:
    """Statistics of one mask (the adapter's own collation of ``record_id``), as fractions of
    the chosen positions."""
    batch = adp.collate([(record_id, sequence)], seed=seed, draw=draw, draws=draw + 1)
    labels, corrupted = batch.labels[0].numpy(), batch.input_ids[0].numpy()
    chosen = np.flatnonzero(labels != -100)
    n = max(chosen.size, 1)
    masked = corrupted[chosen] == adp.mask_token_id
    kept = corrupted[chosen] == labels[chosen]
    letters = [adp.encode("x", a)[0][1] for a in "ACGU"]
    row = [(~masked & ~kept).sum(), kept.sum(), masked.sum()]
    row += [(labels[chosen] == t).sum() for t in letters]
    row.append((np.diff(chosen) == 1).sum())
    return np.asarray(row, dtype=float) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--source", choices=("nrc", "rfam"), default="nrc", help="as bench_trust.py")
    ap.add_argument("--data", help="the source's file (default: its file in ../shared/data)")
    ap.add_argument("--per-class", type=int, default=31)
    ap.add_argument("--max-length", type=int, default=1022)
    ap.add_argument("--subset", type=int, default=64)
    ap.add_argument("--draws", type=int, default=16)
    ap.add_argument("--simulate", type=int, default=64, help="masks per sequence for E[stats]")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="noise.json")
    args = ap.parse_args()

    import torch

    from biocoreset import score
    from biocoreset.modelio import load_model
    from biocoreset.stats import spearman

    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    records, _ = read_source(args.source, args.data, args.per_class)
    adp = load_model(
        args.model, options={"max_length": args.max_length, "invalid": "replace"}, device="cpu"
    )
    runs = []
    for s in range(args.draws):
        t = time.perf_counter()
        r = score(adp, records, subset=args.subset, subset_seed=0, seed=s, batch_size=16)
        runs.append(np.asarray(r.scores, dtype=float))
        print(f"draw {s}: {time.perf_counter() - t:.0f} s", flush=True)
    scores = np.stack(runs)  # [draws, n]
    stats = np.stack(
        [[mask_stats(adp, rid, seq, s) for rid, seq in records] for s in range(args.draws)]
    )  # [draws, n, stats]
    # exact expectation of the statistics under the mask design: the mean over many masks
    # (later draws of a seed beyond the ones scored: the same design, independent masks)
    expect = np.stack(
        [
            np.mean([mask_stats(adp, rid, seq, 10_000, d) for d in range(1, args.simulate + 1)], 0)
            for rid, seq in records
        ]
    )
    log_i = np.log(scores)
    dev = (log_i - log_i.mean(0)).ravel()
    x_all = (stats - expect[None]).reshape(-1, len(STATS))

    def r2(cols: list[int]) -> tuple[float, np.ndarray]:
        x = x_all[:, cols]
        beta, *_ = np.linalg.lstsq(x, dev, rcond=None)
        return float(1 - ((dev - x @ beta) ** 2).sum() / (dev**2).sum()), beta

    groups = {
        "replacement (random / kept / <mask>)": [0, 1],
        "letter composition": [3, 4, 5],
        "adjacent pairs": [7],
        "all of them": [0, 1, 3, 4, 5, 7],
    }
    explained = {name: r2(cols)[0] for name, cols in groups.items()}
    _, beta = r2(groups["all of them"])
    adjusted = log_i - (stats - expect[None])[..., groups["all of them"]] @ beta
    pairs = [
        spearman(scores[i], scores[j]) for i in range(args.draws) for j in range(i + 1, args.draws)
    ]
    rows = []
    k = 1
    while 2 * k <= args.draws:
        a, b = slice(0, k), slice(k, 2 * k)
        rows.append(
            {
                "K": k,
                "mean": spearman(scores[a].mean(0), scores[b].mean(0)),
                "log_mean": spearman(log_i[a].mean(0), log_i[b].mean(0)),
                "control_variate": spearman(adjusted[a].mean(0), adjusted[b].mean(0)),
            }
        )
        k *= 2
    out = {
        "args": vars(args),
        "single_draw_pairwise": float(np.mean(pairs)),
        "within_sequence_var_log": float(dev.var()),
        "between_sequence_var_log_mean": float(log_i.mean(0).var()),
        "explained": explained,
        "reliability": rows,
    }
    Path(args.out).write_text(json.dumps(out, indent=1))
    np.savez(Path(args.out).with_suffix(".npz"), scores=scores, stats=stats, expect=expect)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

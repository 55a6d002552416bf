"""``mask_reduce="mean-gradient"`` against the mean of per-draw scores: two-seed agreement, length,
coverage.

For each ``K`` of ``--ks`` and each reduction (``mean-score``, ``mean-gradient``), two runs that
share ``D_sub`` (one ``subset_seed``) and the model, and differ only in the masking seed (0 and 1).
Per pair: Spearman ρ of the two score vectors, raw and with length regressed out (length-conditional
z-scores, :func:`biocoreset.stats.length_control`), Spearman(score, length), the share of scores
``<= 0``, and each run's own split-half projection (``metadata["stability"]``). Then the coverage of
the labels by the top 10% (Top-I, without and with ``debias="length"``, and CCI) of the seed-0
scores at the largest ``K``, against random sets (mean ± sd of 20).

Sources:

* ``--source nrc --model FOLDER``: ``--per-class`` sequences of each of the 13 nRC ncRNA classes
  (``../shared/data/rna/type_nrc``; see ``benchmarks/bench_trust.py``), labels = the class; the
  model is an RNA model folder (e.g. a briefly pretrained small RNA-FM, see ``docs/trust.md``).
* ``--source antibody``: AntiBERTy (the weights inside the installed ``antiberty`` package, loaded
  by `load_model("antiberty")`, the library's named source) on ``--per-class`` germline V
  domains of each chain × species of human, mouse and rhesus (``biocoreset.bench.antibody``),
  labels = chain × species.

Run (the figures in ``docs/trust.md``)::

    python -m benchmarks.bench_mask_reduce --source nrc --model /tmp/mr/pretrain --per-class 15 \\
        --ks 4,8 --threads 2 --out benchmarks/results/mask_reduce_nrc.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np


def antibody_records(per_class: int, seed: int = 0) -> tuple[list[tuple[str, str]], list[str]]:
    """``per_class`` distinct V domains of each chain × species (human, mouse, rhesus)."""
    from biocoreset.bench.antibody.germlines import germlines

    rng = np.random.default_rng(seed)
    groups: dict[str, dict[str, str]] = {}
    for g in germlines("V", species=("human", "mouse", "rhesus")):
        groups.setdefault(f"{g.chain}:{g.species}", {}).setdefault(g.sequence, g.allele)
    records, labels = [], []
    for label in sorted(groups):
        seqs = sorted(groups[label])
        for i in sorted(rng.permutation(len(seqs))[:per_class]):
            records.append((f"{groups[label][seqs[i]]}|{label}", seqs[i]))
            labels.append(label)
    return records, labels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", choices=["nrc", "antibody"], default="nrc")
    ap.add_argument("--model", help="model folder (--source nrc)")
    ap.add_argument("--per-class", type=int, default=15)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--subset", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--ks", default="4,8")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="mask_reduce.json")
    args = ap.parse_args()

    import torch

    from biocoreset import score, select
    from biocoreset.diagnose.composition import composition, random_baseline
    from biocoreset.stats import length_control, spearman

    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")  # low-stability and transform warnings: measured here
    start = time.perf_counter()
    from biocoreset.modelio import load_model

    if args.source == "nrc":
        if not args.model:
            ap.error("--source nrc needs --model")
        from benchmarks import bench_trust as trust

        records, labels = trust.read_source("nrc", None, args.per_class)
        opts = {"max_length": args.max_length, "invalid": "replace"}
        adapter = load_model(args.model, options=opts, device="cpu")
        model_kw: dict = {}
    else:
        records, labels = antibody_records(args.per_class)
        adapter = load_model(args.model or "antiberty", device="cpu")
        model_kw = {}
    labels_arr = np.array(labels, dtype=object)
    ks = [int(k) for k in args.ks.split(",")]
    print(f"{len(records)} sequences, {len(set(labels))} labels; K = {ks}", flush=True)

    runs: dict[tuple[str, int, int], object] = {}
    rows = []
    for k in ks:
        for reduce in ("mean-score", "mean-gradient"):
            res = []
            for s in (0, 1):
                t = time.perf_counter()
                r = score(
                    adapter,
                    records,
                    subset=args.subset,
                    subset_seed=0,
                    seed=s,
                    batch_size=args.batch_size,
                    mask_draws=k,
                    mask_reduce=reduce,
                    **model_kw,
                )
                runs[(reduce, k, s)] = r
                res.append((r, time.perf_counter() - t))
            (a, wa), (b, wb) = res
            L = a.length
            row = {
                "reduce": reduce,
                "K": k,
                "spearman": spearman(a.scores, b.scores),
                "spearman_length_regressed": spearman(
                    length_control(a.scores, L).z, length_control(b.scores, L).z
                ),
                "spearman_score_length": spearman(a.scores, L),
                "share_nonpositive": float(np.mean(a.scores <= 0)),
                "self_projected": [
                    (r.metadata.get("stability") or {}).get("projected") for r in (a, b)
                ],
                "score_seconds": [r.metadata["timing"]["score"] for r in (a, b)],
                "wall_seconds": [wa, wb],
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
        ms, mg = runs[("mean-score", k, 0)], runs[("mean-gradient", k, 0)]
        print(f"K={k}: spearman(mean-score, mean-gradient) = {spearman(ms.scores, mg.scores):.3f}")

    n = len(records)
    budget = max(1, round(0.1 * n))
    kmax = max(ks)
    cover = []
    for reduce in ("mean-score", "mean-gradient"):
        r = runs[(reduce, kmax, 0)]
        for method, debias in (("topk", None), ("topk", "length"), ("cci", None)):
            sel = select(r, method, budget=budget, seed=0, debias=debias)
            comp = composition(sel.indices, labels_arr, r.length)
            cover.append({"reduce": reduce, "K": kmax, "method": method, "debias": debias, **comp})
            print(json.dumps(cover[-1], default=str), flush=True)
    base = random_baseline(n, budget, labels_arr, runs[("mean-score", kmax, 0)].length, draws=20)
    cover.append({"reduce": None, "K": None, "method": "random", "debias": None, **base})
    print(json.dumps(cover[-1], default=str))
    between = {
        str(k): spearman(runs[("mean-score", k, 0)].scores, runs[("mean-gradient", k, 0)].scores)
        for k in ks
    }
    out = {
        "args": vars(args),
        "num_sequences": n,
        "labels": len(set(labels)),
        "median_length": float(np.median(runs[("mean-score", ks[0], 0)].length)),
        "reliability": rows,
        "spearman_mean_score_vs_mean_gradient": between,
        "coverage_top10": cover,
        "wall_seconds": time.perf_counter() - start,
        "torch_threads": args.threads,
        "cpu_count": os.cpu_count(),
    }
    Path(args.out).write_text(json.dumps(out, indent=1, default=str))
    print(f"-> {args.out} ({out['wall_seconds']:.0f} s)")


if __name__ == "__main__":
    main()

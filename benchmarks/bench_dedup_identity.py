"""Leakage by k-mer identity (``dedup --method kmer``) against MMseqs2 alignment identity
(``dedup --method mmseqs``), on protein pairs whose relation is known.

Pairs (query, target), antibody-domain lengths (100-130 residues), four kinds:

* ``homolog``: the target is the query with ``1 - p`` of its residues substituted (``p`` drawn
  uniformly in [0.2, 1.0], the planted identity) and 2 single-residue indels;
* ``shuffled``: the query's 6 equal blocks in another order, 3% substituted (nearly the same
  k-mers, no alignment over more than a third of either sequence);
* ``low-complexity``: two unrelated sequences over the same 5 letters (``GSAPT``, linker-like);
* ``fragment``: the target is 40-60% of the query, 95% identical (a domain fragment).

For each pair: the k-mer identity exactly as ``dedup --method kmer`` computes it (the Mash estimate
from the Jaccard index of the two 4-mer sets, ``k = 4`` for protein), and MMseqs2's identity and
coverage of the pair's best alignment (``easy-search --exhaustive-search``, no E-value filter, so
every pair is aligned). At each threshold ``t`` a pair is leakage by MMseqs2 when identity ≥ t and
the alignment covers ≥ 80% of both sequences (``dedup --method mmseqs``'s default), and leakage by
k-mer when its estimate ≥ t. ``missed`` counts MMseqs2 leakage the k-mer method keeps, ``too
much`` pairs the k-mer method removes that MMseqs2 does not call leakage.

Run::

    python -m benchmarks.bench_dedup_identity --pairs 240 --out docs/dedup-identity.png \\
        --json benchmarks/results/dedup_identity.json
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from biocoreset.bench.dedup import kmer_identity
from biocoreset.data.mmseqs import mmseqs_version, search_hits

AA = list("ACDEFGHIKLMNPQRSTVWY")
KINDS = ("homolog", "shuffled", "low-complexity", "fragment")
THRESHOLDS = (0.3, 0.5, 0.7, 0.9)
K = 4  # dedup's protein default
COVERAGE = 0.8


def _substitute(seq: list[str], frac: float, rng: np.random.Generator) -> list[str]:
    seq = list(seq)
    for j in rng.permutation(len(seq))[: round(len(seq) * frac)]:
        seq[j] = str(rng.choice([a for a in AA if a != seq[j]]))
    return seq


def make_pair(kind: str, rng: np.random.Generator) -> tuple[str, str, float | None]:
    """``(query, target, planted identity or None)`` of one pair of ``kind``."""
    n = int(rng.integers(100, 131))
    q = [str(a) for a in rng.choice(AA, n)]
    if kind == "homolog":
        p = float(rng.uniform(0.2, 1.0))
        t = _substitute(q, 1 - p, rng)
        for _ in range(2):
            j = int(rng.integers(5, len(t) - 5))
            if rng.random() < 0.5:
                del t[j]
            else:
                t.insert(j, str(rng.choice(AA)))
        return "".join(q), "".join(t), p
    if kind == "shuffled":
        blocks = np.array_split(np.array(q), 6)
        order = rng.permutation(len(blocks))
        while np.all(order == np.arange(len(blocks))):
            order = rng.permutation(len(blocks))
        t = [str(a) for b in order for a in blocks[b]]
        return "".join(q), "".join(_substitute(t, 0.03, rng)), None
    if kind == "low-complexity":
        q = [str(a) for a in rng.choice(list("GSAPT"), n)]
        t = [str(a) for a in rng.choice(list("GSAPT"), int(rng.integers(100, 131)))]
        return "".join(q), "".join(t), None
    if kind == "fragment":
        m = int(n * rng.uniform(0.4, 0.6))
        start = int(rng.integers(0, n - m + 1))
        return "".join(q), "".join(_substitute(q[start : start + m], 0.05, rng)), None
    raise ValueError(kind)


def kmer_pair_identity(a: str, b: str, k: int = K) -> float:
    """``dedup --method kmer``'s identity of one pair (Mash estimate from 4-mer Jaccard)."""

    def kmers(s: str) -> set[str]:
        return {s} if len(s) < k else {s[j : j + k] for j in range(len(s) - k + 1)}

    x, y = kmers(a), kmers(b)
    return kmer_identity(len(x & y) / len(x | y), k)


def measure(pairs_per_kind: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    for kind in KINDS:
        for i in range(pairs_per_kind):
            q, t, planted = make_pair(kind, rng)
            rows.append({"kind": kind, "id": f"{kind}{i}", "q": q, "t": t, "planted": planted})
    start = time.perf_counter()
    hits = search_hits(
        [(f"q_{r['id']}", r["q"]) for r in rows],
        [(f"t_{r['id']}", r["t"]) for r in rows],
        min_seq_id=0.0,
        coverage=0.0,
        exhaustive=True,
    )
    seconds = time.perf_counter() - start
    best: dict[str, tuple[float, float]] = {}
    for qid, tid, fident, qcov, tcov in hits:
        if qid[2:] == tid[2:]:  # the pair's own alignment
            cov = min(qcov, tcov)
            if qid[2:] not in best or (fident, cov) > best[qid[2:]]:
                best[qid[2:]] = (fident, cov)
    for r in rows:
        r["kmer"] = kmer_pair_identity(r["q"], r["t"])
        r["mmseqs"], r["coverage"] = best.get(r["id"], (0.0, 0.0))
        del r["q"], r["t"]
    table = []
    for thr in THRESHOLDS:
        for kind in KINDS:
            sub = [r for r in rows if r["kind"] == kind]
            mm = [r["mmseqs"] >= thr and r["coverage"] >= COVERAGE for r in sub]
            km = [r["kmer"] >= thr for r in sub]
            table.append(
                {
                    "threshold": thr,
                    "kind": kind,
                    "pairs": len(sub),
                    "mmseqs_leak": sum(mm),
                    "kmer_leak": sum(km),
                    "missed": sum(m and not k for m, k in zip(mm, km, strict=True)),
                    "too_much": sum(k and not m for m, k in zip(mm, km, strict=True)),
                }
            )
    return {
        "pairs_per_kind": pairs_per_kind,
        "seed": seed,
        "k": K,
        "coverage": COVERAGE,
        "mmseqs_version": mmseqs_version(),
        "mmseqs_seconds": round(seconds, 2),
        "rows": rows,
        "table": table,
    }


def plot(result: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    colours = dict(zip(KINDS, ("C0", "C3", "C2", "C1"), strict=True))
    ax = axes[0]
    for kind in KINDS:
        sub = [r for r in result["rows"] if r["kind"] == kind]
        covered = [r for r in sub if r["coverage"] >= COVERAGE]
        short = [r for r in sub if r["coverage"] < COVERAGE]
        ax.scatter(
            [r["mmseqs"] for r in covered],
            [r["kmer"] for r in covered],
            s=14,
            c=colours[kind],
            label=kind,
        )
        ax.scatter(
            [r["mmseqs"] for r in short],
            [r["kmer"] for r in short],
            s=14,
            facecolors="none",
            edgecolors=colours[kind],
        )
    for thr in THRESHOLDS:
        ax.axvline(thr, color="0.8", lw=0.8, ls="--")
        ax.axhline(thr, color="0.8", lw=0.8, ls="--")
    ax.plot([0, 1], [0, 1], color="0.5", lw=0.8)
    ax.set(
        xlabel="MMseqs2 identity of the best alignment (hollow: covers < 80%)",
        ylabel=f"k-mer identity (Mash, k={K})",
        xlim=(0, 1.02),
        ylim=(-0.02, 1.02),
        title="Each pair",
    )
    ax.legend(fontsize=8, loc="upper left")
    ax = axes[1]
    homologs = [r for r in result["rows"] if r["kind"] == "homolog"]
    ax.scatter(
        [r["planted"] for r in homologs], [r["mmseqs"] for r in homologs], s=14, label="MMseqs2"
    )
    ax.scatter([r["planted"] for r in homologs], [r["kmer"] for r in homologs], s=14, label="k-mer")
    ax.plot([0, 1], [0, 1], color="0.5", lw=0.8)
    ax.set(
        xlabel="planted identity (homolog pairs)",
        ylabel="measured identity",
        xlim=(0.15, 1.02),
        ylim=(-0.02, 1.02),
        title="Homologs: both against the truth",
    )
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "| identity ≥ | kind | pairs | leakage (MMseqs2) | removed by k-mer | missed by k-mer | "
        "removed by k-mer, not leakage |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result["table"]:
        lines.append(
            f"| {row['threshold']:.0%} | {row['kind']} | {row['pairs']} | {row['mmseqs_leak']} | "
            f"{row['kmer_leak']} | {row['missed']} | {row['too_much']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=240, help="pairs in all (split over the kinds)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, help="figure (png)")
    ap.add_argument("--json", type=Path, help="write every pair and the table here")
    args = ap.parse_args(argv)
    result = measure(max(1, math.ceil(args.pairs / len(KINDS))), args.seed)
    if args.out:
        plot(result, args.out)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(markdown(result))
    print(f"MMseqs2 {result['mmseqs_version']}: {result['mmseqs_seconds']} s for the search")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

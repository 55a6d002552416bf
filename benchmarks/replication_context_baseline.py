#!/usr/bin/env python
"""How far local context alone gets: a +-k neighbour count model of the masked letter.

Estimates P(x_i | k letters left, k letters right) from the filtered Rfam corpus (add-0.5
smoothing) and reports its cross-entropy on the held-out Rfam records, all positions, sequences
truncated to ``--max-length``; k = 0 is the letter-frequency baseline. A masked LM that only learns
local statistics ends near these numbers.

Usage::

    python -m benchmarks.replication_context_baseline --base /tmp/replication-pilots/base
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

CODE = {c: i for i, c in enumerate("ACGU")}


def encode(seq: str, max_length: int) -> np.ndarray:
    s = seq.upper().replace("T", "U")[:max_length]
    return np.array([CODE.get(c, 4) for c in s], dtype=np.int64)


def read(path: Path, max_length: int) -> list[np.ndarray]:
    out, cur = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith(">"):
            if cur:
                out.append(encode("".join(cur), max_length))
            cur = []
        else:
            cur.append(line.strip())
    if cur:
        out.append(encode("".join(cur), max_length))
    return out


def contexts(x: np.ndarray, k: int) -> np.ndarray:
    """Index of the (left k, right k) context of every position (5 = outside the sequence)."""
    pad = np.concatenate([np.full(k, 5), x, np.full(k, 5)])
    idx = np.zeros(len(x), dtype=np.int64)
    for j in list(range(-k, 0)) + list(range(1, k + 1)):
        idx = idx * 6 + pad[k + j : k + j + len(x)]
    return idx


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--base", required=True)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--k", default="0,1,2,3")
    a = p.parse_args()
    base = Path(a.base)
    train = read(base / "corpus.fasta", a.max_length)
    held = read(base / "heldout.fasta", a.max_length)
    res = {}
    for k in (int(v) for v in a.k.split(",")):
        n_ctx = 6 ** (2 * k)
        counts = np.zeros((n_ctx, 5))
        for x in train:
            np.add.at(counts, (contexts(x, k), x), 1)
        prob = (counts + 0.5) / (counts + 0.5).sum(1, keepdims=True)
        per_seq = [float(-np.log(prob[contexts(x, k), x]).mean()) for x in held if len(x)]
        res[k] = round(float(np.mean(per_seq)), 4)
        print(f"k={k}: {res[k]} nats (held-out, per-sequence mean)", flush=True)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python
"""Pilot pretraining runs for the CPU replication (docs/replication.md, "Pilots").

One pilot pretrains the reduced RNA-FM architecture on the whole filtered Rfam corpus (the same
filter as ``examples/replicate_cpu.py``) and measures the held-out masked-LM loss at evenly spaced
checkpoints, against the letter-frequency baseline on the same masks: a model that always predicts
the corpus letter frequencies. The gap (baseline - model) is what a recipe has to grow.

Usage::

    python -m benchmarks.replication_pilots --name A --hidden 64 --layers 4 --max-length 100 \\
        --lr 1e-3 --schedule inverse-sqrt --warmup 100 --steps 1200 --batch 32 --out /tmp/pilots

Each pilot appends one JSON line to ``<out>/pilots.jsonl`` (settings, seconds, held-out curve,
baseline, gap).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from benchmarks._common import ROOT as REPO
from benchmarks._common import import_file


def prepare(out: Path, data: Path) -> tuple[Path, Path]:
    """The filtered corpus and the held-out records (cached under ``<out>/base``)."""
    rc = import_file(REPO / "examples" / "replicate_cpu.py")

    base = out / "base"
    base.mkdir(parents=True, exist_ok=True)
    args = argparse.Namespace(
        quick=False, steps=None, out=str(base), data=str(data), jobs=1, no_progress=True
    )
    rc.Runner(args).prepare_corpus()
    return base / "corpus.fasta", base / "heldout.fasta"


def letter_frequencies(adapter: Any, corpus: Path, limit: int = 20000) -> Any:
    """Frequencies of the masked-position labels over (a seeded sample of) the corpus."""
    import numpy as np
    import torch

    from biocoreset.data.sources import as_source

    records = list(as_source(corpus))
    rng = np.random.default_rng(0)
    if len(records) > limit:
        records = [records[i] for i in np.sort(rng.choice(len(records), limit, replace=False))]
    counts = None
    for i in range(0, len(records), 256):
        lab = adapter.collate(records[i : i + 256], seed=0).labels
        lab = lab[lab != -100]
        c = torch.bincount(lab, minlength=adapter.model.config.vocab_size).double()
        counts = c if counts is None else counts + c
    return counts / counts.sum()


def heldout_losses(
    adapter: Any, records: list, seeds: list[int], freqs: Any = None, bs: int = 64
) -> list[float]:
    """Mean per-sequence masked-LM loss per masking seed (or the frequency baseline's)."""
    import torch

    adapter.model.eval()
    out = []
    with torch.no_grad():
        for seed in seeds:
            parts = []
            for i in range(0, len(records), bs):
                batch = adapter.collate(records[i : i + bs], seed=int(seed))
                if freqs is None:
                    parts.append(adapter.per_sample_loss(batch).double())
                else:
                    lab = batch.labels
                    m = lab != -100
                    logp = torch.log(freqs.clamp(min=1e-12))[lab.clamp(min=0)]
                    nll = torch.where(m, -logp, torch.zeros_like(logp))
                    parts.append(nll.sum(1) / m.sum(1).clamp(min=1))
            out.append(float(torch.cat(parts).mean()))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--name", required=True)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--max-length", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--schedule", default="inverse-sqrt")
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--evals", type=int, default=4, help="held-out evaluations along the run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="/tmp/replication-pilots")
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from biocoreset.data.sources import as_source
    from biocoreset.modelio import load_model
    from biocoreset.train.checkpoints import list_checkpoints, load_checkpoint
    from biocoreset.train.pretrain import PretrainConfig, pretrain

    out = Path(args.out)
    corpus, heldout = prepare(out, Path(args.data))
    opts = {
        "size": {
            "num_hidden_layers": args.layers,
            "hidden_size": args.hidden,
            "intermediate_size": 4 * args.hidden,
            "num_attention_heads": args.heads,
            "max_position_embeddings": args.max_length + 4,
        },
        "max_length": args.max_length,
        "long_policy": "truncate",
        "invalid": "replace",
    }
    adapter = load_model(adapter="rna-fm", options=opts, device=None)
    n_params = sum(t.numel() for t in adapter.model.parameters())
    every = max(1, args.steps // args.evals)
    cfg = PretrainConfig(
        lr=args.lr,
        schedule=args.schedule,
        warmup_steps=args.warmup,
        max_steps=args.steps,
        batch_size=args.batch,
        weight_decay=0.01,
        max_grad_norm=1.0,
        seed=args.seed,
        checkpoint_every=every,
        keep_checkpoints=args.evals + 2,
        log_every=10,
        device="cpu",
        progress=False,
    )
    run = out / args.name
    t0 = time.time()
    res = pretrain(adapter, corpus, run, config=cfg, progress=False, device="cpu", force=True)
    seconds = time.time() - t0

    held = list(as_source(heldout))
    seeds = [0, 1]
    fresh = load_model(adapter="rna-fm", options=opts, device=None)
    cached = out / "base" / f"baseline-L{args.max_length}.json"
    if cached.exists():
        baseline = json.loads(cached.read_text(encoding="utf-8"))
    else:
        freqs = letter_frequencies(fresh, corpus)
        baseline = heldout_losses(fresh, held, seeds, freqs=freqs)
        cached.write_text(json.dumps(baseline), encoding="utf-8")
    from biocoreset.train.reinit import reinitialise

    reinitialise(fresh.model, args.seed)
    curve = [(0, heldout_losses(fresh, held, seeds))]
    for step, path in list_checkpoints(run / "checkpoints"):
        fresh.model.load_state_dict(load_checkpoint(path)["model"])
        curve.append((step, heldout_losses(fresh, held, seeds)))
    final = sum(curve[-1][1]) / len(seeds)
    base = sum(baseline) / len(seeds)
    train_hist = [(int(h[0]), round(float(h[2]), 4)) for h in res.history]
    row = {
        "name": args.name,
        "layers": args.layers,
        "hidden": args.hidden,
        "params": n_params,
        "max_length": args.max_length,
        "lr": args.lr,
        "schedule": args.schedule,
        "warmup": args.warmup,
        "steps": args.steps,
        "batch": args.batch,
        "seconds": round(seconds, 1),
        "sec_per_step": round(seconds / args.steps, 4),
        "heldout_n": len(held),
        "baseline": round(base, 4),
        "curve": [(s, round(sum(v) / len(v), 4)) for s, v in curve],
        "final": round(final, 4),
        "gap": round(base - final, 4),
        "train_loss_every_10": train_hist[:: max(1, len(train_hist) // 24)],
    }
    with open(out / "pilots.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")
    print(json.dumps({k: v for k, v in row.items() if k != "train_loss_every_10"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

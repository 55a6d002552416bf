#!/usr/bin/env python
"""The replication's gate: does the whole-corpus model beat the untrained network?

Compares a pilot's pretrained model (``benchmarks/replication_pilots.py``) with the same
architecture untrained (seeded re-initialisation) on:

* nRC type classification with the backbone **fine-tuned** (accuracy and macro-F1, 3 seeds);
* the same task with a frozen backbone and an MLP head (round one's probe);
* the masked-LM loss on the nRC test sequences per RNA class (an out-of-family test set), against
  the letter-frequency baseline on the same masks.

Usage::

    python -m benchmarks.replication_gate --pilot /tmp/replication-pilots/NAME --out gate.json

Writes one JSON file with every seed's value.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks._common import ROOT as REPO


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pilot", required=True, help="a pilot's run folder (holds final/)")
    p.add_argument("--out", required=True)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--ft-epochs", type=int, default=4)
    p.add_argument("--ft-lr", type=float, default=5e-4)
    p.add_argument("--ft-max-train", type=int, default=1500)
    p.add_argument("--max-test", type=int, default=1000)
    p.add_argument("--frozen", action="store_true", help="also run the frozen-backbone probe")
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from benchmarks.replication_pilots import heldout_losses, letter_frequencies
    from biocoreset.bench.backbone import Backbone
    from biocoreset.bench.loaders.rna import load_nrc
    from biocoreset.bench.runner import run_bench
    from biocoreset.bench.tasks import RNATypeTask
    from biocoreset.modelio import load_model
    from biocoreset.train.reinit import reinitialise

    pilot = Path(args.pilot)
    row = next(
        json.loads(line)
        for line in (pilot.parent / "pilots.jsonl").read_text(encoding="utf-8").splitlines()
        if json.loads(line)["name"] == pilot.name
    )
    L = row["max_length"]
    opts = {
        "size": {
            "num_hidden_layers": row["layers"],
            "hidden_size": row["hidden"],
            "intermediate_size": 4 * row["hidden"],
            "num_attention_heads": 4,
            "max_position_embeddings": L + 4,
        },
        "max_length": L,
        "long_policy": "truncate",
        "invalid": "replace",
    }

    def untrained() -> Any:
        a = load_model(adapter="rna-fm", options=opts, device=None)
        reinitialise(a.model, 0)
        return a

    def pretrained() -> Any:
        return load_model(str(pilot / "final"), adapter="rna-fm", options=opts, device=None)

    data = Path(args.data) / "rna" / "type_nrc"
    train = load_nrc(data / "ncrna-deep_dataset_nRC_train.fasta")
    test = load_nrc(data / "ncrna-deep_dataset_nRC_test.fasta")
    seeds = [int(s) for s in args.seeds.split(",")]
    tasks = [
        RNATypeTask(
            train=train,
            test=test,
            finetune=True,
            head="mlp",
            epochs=args.ft_epochs,
            lr=args.ft_lr,
            batch_size=32,
            max_train=args.ft_max_train,
            max_test=args.max_test,
        )
    ]
    if args.frozen:
        tasks.append(
            RNATypeTask(
                train=train,
                test=test,
                finetune=False,
                head="mlp",
                epochs=30,
                lr=1e-3,
                batch_size=32,
                max_train=2000,
                max_test=args.max_test,
            )
        )
    out: dict[str, Any] = {"pilot": row["name"], "settings": vars(args), "rows": []}
    t0 = time.time()
    for name, load in (("pretrained", pretrained), ("untrained", untrained)):
        bb = Backbone(name=name, load=load, data_size="", device="cpu", batch_size=64)
        for i, task in enumerate(tasks):
            table = run_bench([task], [bb], seeds=seeds, progress=False)
            for r in table.rows:
                out["rows"].append(
                    {
                        "model": name,
                        "task": "finetuned" if i == 0 else "frozen",
                        "metric": r.metric,
                        "seed": r.seed,
                        "value": r.value,
                    }
                )
        print(f"{name}: tasks done at {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    out["task_seconds"] = round(time.time() - t0, 1)

    # masked-LM loss per nRC class, on the nRC test sequences
    records_by_class: dict[str, list[tuple[str, str]]] = {}
    for e in test:
        records_by_class.setdefault(str(e.label), []).append((e.id, e.sequence))
    pre, unt = pretrained(), untrained()
    corpus = pilot.parent / "base" / "corpus.fasta"
    freqs = letter_frequencies(unt, corpus)
    per_class = {}
    for cls, recs in sorted(records_by_class.items()):
        per_class[cls] = {
            "n": len(recs),
            "pretrained": heldout_losses(pre, recs, [0, 1]),
            "untrained": heldout_losses(unt, recs, [0, 1]),
            "letter_freq": heldout_losses(unt, recs, [0, 1], freqs=freqs),
        }
    out["mlm_per_class"] = per_class
    out["seconds"] = round(time.time() - t0, 1)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(out["rows"]))
    for cls, v in per_class.items():
        m = {k: round(sum(v[k]) / 2, 4) for k in ("pretrained", "untrained", "letter_freq")}
        print(cls, v["n"], m)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

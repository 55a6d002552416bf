"""Time per training step of the named model sizes on the CPU (docs/adapters.md, "Named sizes").

One step = collate a batch, masked-LM forward, backward and an AdamW update: what pretraining and
fine-tuning do per step. Sequences are random RNA (rna-fm) or protein (esmc) of the given length.
The median over ``--steps`` timed steps after one warm-up step is printed as a Markdown table with
the parameter counts of :func:`biocoreset.modelio.model_sizes`.

    python -m benchmarks.bench_model_sizes --threads 1 --batch-size 16 --lengths 128 256
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from benchmarks._common import build_adapter
from biocoreset.modelio import model_sizes

SIZE_OPTION = {"rna-fm": "size", "esmc": "model_name"}
LETTERS = {"rna-fm": "ACGU", "esmc": "ACDEFGHIKLMNPQRSTVWY"}


def step_seconds(adapter_name: str, size: str, length: int, batch: int, steps: int) -> float:
    options = {SIZE_OPTION[adapter_name]: size}
    if adapter_name == "esmc":
        options["random_init"] = True
    adapter = build_adapter(adapter_name, **options)
    adapter.model.train()
    rng = np.random.default_rng(0)
    records = [
        (f"s{i}", "".join(rng.choice(list(LETTERS[adapter_name]), size=length)))
        for i in range(batch)
    ]
    optimizer = torch.optim.AdamW(adapter.model.parameters(), lr=1e-4)
    times = []
    for k in range(steps + 1):
        t0 = time.perf_counter()
        loss = adapter.per_sample_loss(adapter.collate(records, seed=k)).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if k:  # the first step warms up
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--adapters", nargs="+", default=["rna-fm", "esmc"])
    p.add_argument("--sizes", nargs="+", help="default: every named size")
    p.add_argument("--lengths", nargs="+", type=int, default=[128])
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    heads = " | ".join(f"s/step at {n}" for n in args.lengths)
    print(f"| adapter | size | layers × hidden | parameters | {heads} |")
    print("|---|---|---|---|" + "---|" * len(args.lengths))
    for name in args.adapters:
        try:
            sizes = model_sizes(name)
        except ImportError:
            continue
        for size, info in sizes.items():
            if args.sizes and size not in args.sizes:
                continue
            cells = [
                f"{step_seconds(name, size, n, args.batch_size, args.steps):.3g}"
                for n in args.lengths
            ]
            print(
                f"| {name} | {size} | {info['layers']} × {info['hidden']} | "
                f"{info['params'] / 1e6:.2f}M | {' | '.join(cells)} |"
            )


if __name__ == "__main__":
    main()

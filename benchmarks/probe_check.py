"""The antibody tasks' probes side by side: the 20-epoch AdamW linear head against the converged
L-BFGS probe, on the same frozen features of a round's models (``docs/replication.md``, third round).

Usage (after ``python examples/replicate_antibody.py --gate-only --out RUN``)::

    python -m benchmarks.probe_check --run RUN --out benchmarks/results/replication-round3/probe-check.json

Prints, per model and task row, the training and test accuracy of both probes (a probe far below
100% on its own training rows is underfit), and writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks._common import import_file

ROOT = Path(__file__).resolve().parents[1]


def _models(run: Path, profile: dict[str, Any]) -> list[tuple[str, Any]]:
    from biocoreset.bench.backbone import Backbone
    from biocoreset.modelio import load_model

    drv = import_file(ROOT / "examples" / "replicate_antibody.py", "replicate_antibody")
    opts = drv.adapter_options(profile)
    out = [
        (
            "random-100-s0",
            Backbone(
                name="random-100-s0",
                load=lambda: load_model(
                    str(run / "models" / "random-100-s0"), adapter="esmc", device=None
                ),
                device="cpu",
                batch_size=64,
            ),
        )
    ]
    for seed in (0, 1):

        def load(seed: int = seed) -> Any:
            torch.manual_seed(seed)
            return load_model(adapter="esmc", options=opts, device=None)

        out.append(
            (
                f"untrained-s{seed}",
                Backbone(name=f"untrained-s{seed}", load=load, device="cpu", batch_size=64),
            )
        )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, help="a run folder of examples/replicate_antibody.py")
    p.add_argument("--out", help="write the rows here as JSON")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    from biocoreset.plugins import create

    drv = import_file(ROOT / "examples" / "replicate_antibody.py", "replicate_antibody")
    run = Path(args.run)
    missing = [
        p for p in (run / "tasks" / "train.tsv", run / "models" / "random-100-s0") if not p.exists()
    ]
    if missing:
        p.error(
            f"--run {args.run}: {missing[0]} not found; run `python examples/replicate_antibody.py "
            f"--gate-only --out {args.run}` first"
        )
    profile = drv.PROFILES["full"]
    rows = []
    for model, backbone in _models(run, profile):
        for spec in drv.make_tasks(str(run / "tasks"), profile["task_epochs"]):
            name, title = spec.pop("name"), spec.pop("title")
            if name in ("antibody-mlm-buckets", "antibody-cdr3-length"):
                continue
            for probe in ("adamw", "lbfgs"):
                t0 = time.time()
                task = create("task", name, **spec, probe=probe)
                test = task.run(backbone, seed=0)["acc"]
                on_train = create("task", name, **{**spec, "test": spec["train"]}, probe=probe)
                train = on_train.run(backbone, seed=0)["acc"]
                row = {
                    "model": model,
                    "task": title,
                    "probe": probe,
                    "train_acc": train,
                    "test_acc": test,
                }
                row["seconds"] = round(time.time() - t0, 1)
                rows.append(row)
                print(
                    f"{model:15s} {title:38s} {probe:6s} train {train:.3f} test {test:.3f}",
                    flush=True,
                )
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Can a user trust a selection? Reliability against mask draws, schedules, length control, cost.

A small RNA-FM-architecture model pretrained briefly on the shared Rfam 14.2 seed corpus scores
``--per-class`` sequences of each of the 13 nRC ncRNA classes (the nRC test split,
``../shared/data/rna/type_nrc``; T read as U, other letters replaced, truncated to
``--max-length`` residues). Every run uses the library defaults (diagonal Fisher, self-influence,
all parameters) with ``D_sub`` = ``--subset`` sequences drawn with one fixed ``subset_seed``, so
two runs differ only in the masking seed.

1. **Reliability against K** (``--ks``): for each schedule (``independent``, ``cover``) and each
   ``K``, two runs with masking seeds 0 and 1; Spearman ρ between their score vectors, raw and
   with length regressed out (length-conditional z-scores,
   :func:`biocoreset.stats.length_control`), and the stability each run reports about itself
   (``metadata["stability"]["projected"]``, from the split-half of its own draws).
2. **Type coverage at 10%**: Top-I, CCI and random (mean of 50 sets) on the seed-0 scores with
   ``K = 1`` and with the largest ``K`` and the default schedule, with and without
   ``debias="length"``: classes covered (of 13), entropy, largest class share, median length.
3. **Cost against K**: seconds of each run's score and fit phases relative to ``K = 1``.

Run (the model first: ~15 min alone on 2 cores; then the benchmark)::

    biocoreset pretrain ../shared/data/rna/corpus/rfam14.2_seed_sequences.fasta.gz \\
        --adapter rna-fm --adapter-options '{"size": "small", "max_length": 1022, "invalid": "replace"}' \\
        --max-steps 4000 --batch-size 16 --lr 2e-3 --warmup-steps 200 --schedule cosine --seed 0 \\
        -o /tmp/trust2/pretrain4k
    python -m benchmarks.bench_trust --model /tmp/trust2/pretrain4k --per-class 31 --threads 2 \\
        --out /tmp/trust2/trust.json                                 # ~30 min
    python -m benchmarks.bench_trust --report /tmp/trust2/trust.json    # the tables again

With ``--source rfam`` the sample is ``--per-class`` distinct sequences of each RNA type of the
Rfam seed corpus itself (the family table's ``type``; 24 types), which is what a user selects
from; lengths are then those of the corpus (28–4,002 nt in the sample, truncated at 1,022)::

    python -m benchmarks.bench_trust --source rfam --model /tmp/trust2/pretrain4k --per-class 18 \\
        --threads 2 --ks 1,8,16 --schedules independent --out /tmp/trust2/trust_rfam.json

With ``--source antibody`` the model is a strongly trained one, ``--model antiberty``, on ``--n``
germline V domains of the ANARCI corpus; one fine-tune and one Fisher for both mask seeds, every
draw's score kept so that K = 1, 2, 4 come from the K = 8 runs (see ``_trust_antibody.py``)::

    python -m benchmarks.bench_trust --source antibody --model antiberty --n 128 --subset 32 \
        --ks 1,2,4,8 --wo-ft-draws 2 --threads 2 \
        --out benchmarks/results/trust_antibody.json

Results are recorded in ``docs/trust.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "rna" / "type_nrc"
RFAM = DATA.parent / "corpus"


def read_nrc(path: Path, per_class: int, seed: int) -> tuple[list[tuple[str, str]], list[str]]:
    """``per_class`` records of each class (seeded sample), ids ``class|n``; and their labels."""
    by_class: dict[str, list[str]] = defaultdict(list)
    label, parts = None, []
    for line in [*path.read_text().splitlines(), ">"]:
        if line.startswith(">"):
            if label is not None and parts:
                by_class[label].append("".join(parts).upper().replace("T", "U"))
            label, parts = line[1:].strip(), []
        else:
            parts.append(line.strip())
    rng = np.random.default_rng(seed)
    records, labels = [], []
    for name in sorted(by_class):
        seqs = by_class[name]
        for j in sorted(rng.choice(len(seqs), size=min(per_class, len(seqs)), replace=False)):
            records.append((f"{name}|{j}", seqs[j]))
            labels.append(name)
    return records, labels


def read_rfam(path: Path, per_class: int, seed: int) -> tuple[list[tuple[str, str]], list[str]]:
    """``per_class`` distinct sequences of each Rfam RNA type (the ``type`` column of
    ``rfam_family_types.tsv`` joined to the corpus header's family; seeded sample, all of a type
    with fewer), ids as in the corpus; and their types."""
    import gzip

    types = {}
    for line in (path.parent / "rfam_family_types.tsv").read_text().splitlines()[1:]:
        cols = line.split("\t")
        types[cols[0]] = cols[3].strip().rstrip(";").strip()
    by_type: dict[str, dict[str, str]] = defaultdict(dict)
    seen: set[str] = set()
    rid, parts = None, []
    with gzip.open(path, "rt") as fh:
        for line in [*fh, ">"]:
            if line.startswith(">"):
                seq = "".join(parts).upper().replace("T", "U")
                if rid is not None and seq and seq not in seen:
                    seen.add(seq)
                    by_type[types.get(rid.split("|")[0], "unknown")][rid] = seq
                rid, parts = line[1:].strip(), []
            else:
                parts.append(line.strip())
    rng = np.random.default_rng(seed)
    records, labels = [], []
    for name in sorted(by_type):
        ids = sorted(by_type[name])
        for j in sorted(rng.choice(len(ids), size=min(per_class, len(ids)), replace=False)):
            records.append((ids[j], by_type[name][ids[j]]))
            labels.append(name)
    return records, labels


def read_source(
    source: str, data: str | None, per_class: int
) -> tuple[list[tuple[str, str]], list[str]]:
    """The sample of ``--source`` (``nrc`` or ``rfam``) from ``data`` or its default file."""
    if source == "rfam":
        return read_rfam(Path(data or RFAM / "rfam14.2_seed_sequences.fasta.gz"), per_class, 0)
    return read_nrc(Path(data or DATA / "ncrna-deep_dataset_nRC_test.fasta"), per_class, 0)


def _f(v: object, fmt: str = ".2f") -> str:
    return "–" if v is None else format(float(v), fmt)  # type: ignore[arg-type]


def report(results: dict) -> str:
    """Markdown tables of a results file (``--report FILE`` prints them)."""
    lines = [
        "| K | schedule | ρ two seeds | ρ length regressed out | self-reported ρ (projected) "
        "| ρ(score, length) | score s | fit s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results["reliability"]:
        own = [v for v in r["self_projected"] if v is not None]
        lines.append(
            f"| {r['K']} | {r['schedule']} | {_f(r['spearman'])} | "
            f"{_f(r['spearman_length_regressed'])} | "
            f"{' / '.join(_f(v) for v in own) if own else '–'} | {_f(r['spearman_length'])} | "
            f"{np.mean(r['score_seconds']):.0f} | {np.mean(r['fit_seconds']):.0f} |"
        )
    lines += [
        "",
        "| K | selection | debias | classes covered | entropy | largest share | median length |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results["coverage"]:
        lines.append(
            f"| {r['K']} | {r['method']} | {r['debias'] or '–'} | {_f(r['covered'], '.1f')} of "
            f"{results['classes']} | {_f(r['entropy'])} | {_f(r['largest_share'])} | "
            f"{_f(r['median_length'], '.0f')} |"
        )
    if results.get("cost"):
        lines += ["", "| K | CPU s | relative to K = 1 | relative / K |", "|---|---|---|---|"]
        for r in results["cost"]:
            lines.append(
                f"| {r['K']} | {r['cpu_seconds']:.1f} | {r['relative']:.2f} | "
                f"{r['relative'] / r['K']:.2f} |"
            )
    return "\n".join(lines)


def measure_cost(adp, records, ks, args, repeats: int = 2) -> list[dict]:
    """CPU seconds (process time, one thread: insensitive to other jobs' load) of the fit and
    score phases of ``score()`` on ``--cost-n`` records, against K; K values interleaved,
    ``repeats`` times, the fastest counts."""
    from biocoreset import score

    rng = np.random.default_rng(1)
    chosen = [records[i] for i in sorted(rng.choice(len(records), args.cost_n, replace=False))]
    best: dict[int, float] = {}
    for _ in range(repeats):
        for k in ks:
            t = time.process_time()
            score(adp, chosen, subset=16, subset_seed=0, batch_size=args.batch_size, mask_draws=k)
            best[k] = min(best.get(k, float("inf")), time.process_time() - t)
    return [{"K": k, "cpu_seconds": best[k], "relative": best[k] / best[ks[0]]} for k in ks]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--report", help="print the tables of an earlier results file and stop")
    ap.add_argument("--model", help="pretrained model folder (see the docstring)")
    ap.add_argument(
        "--source",
        choices=("nrc", "rfam", "antibody"),
        default="nrc",
        help="nRC test split by class, the Rfam seed corpus by RNA type, or antibody germlines",
    )
    ap.add_argument("--n", type=int, default=160, help="germlines (--source antibody)")
    ap.add_argument(
        "--wo-ft-draws", type=int, default=4, help="draws of the w/o-ft runs (antibody)"
    )
    ap.add_argument(
        "--ft-warmup",
        type=int,
        default=0,
        help="fine-tune warm-up steps (antibody; D_sub/16 steps)",
    )
    ap.add_argument("--random-draws", type=int, default=20, help="random sets (antibody)")
    ap.add_argument("--data", help="the source's file (default: its file in ../shared/data)")
    ap.add_argument("--per-class", type=int, default=40)
    ap.add_argument("--max-length", type=int, default=1022)
    ap.add_argument("--subset", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--ks", default="1,2,4,8,16")
    ap.add_argument("--schedules", default="independent,cover")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="trust.json")
    ap.add_argument("--cost-n", type=int, default=96, help="sequences of the cost measurement")
    ap.add_argument("--cost-only", action="store_true", help="only part 3 (cost against K)")
    args = ap.parse_args()
    if args.report:
        data = json.loads(Path(args.report).read_text())
        if data.get("source") == "antibody":
            from benchmarks._trust_antibody import report_antibody

            print(report_antibody(data))
        else:
            print(report(data))
        return
    if not args.model:
        ap.error("--model is required (or --report FILE)")
    if args.source == "antibody":
        import torch

        from benchmarks._trust_antibody import report_antibody, run_antibody

        torch.set_num_threads(args.threads)
        warnings.simplefilter("ignore")
        out = run_antibody(args)
        out["args"] = vars(args)
        out["torch_threads"], out["cpu_count"] = args.threads, os.cpu_count()
        Path(args.out).write_text(json.dumps(out, indent=1, default=str))
        print(report_antibody(out))
        print(f"-> {args.out}")
        return

    import torch

    from biocoreset import score, select
    from biocoreset.data.masking import MaskingConfig, resolve_schedule
    from biocoreset.diagnose.composition import composition, random_baseline
    from biocoreset.modelio import load_model
    from biocoreset.stats import length_control, spearman

    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")  # the low-stability warning is what is measured here
    records, labels = read_source(args.source, args.data, args.per_class)
    labels_arr = np.array(labels, dtype=object)
    ks = [int(k) for k in args.ks.split(",")]
    schedules = args.schedules.split(",")
    print(f"{len(records)} sequences, {len(set(labels))} classes; K = {ks}; {schedules}")

    def adapter(schedule: str):
        opts = {
            "max_length": args.max_length,
            "invalid": "replace",
            "masking": MaskingConfig(schedule=schedule),
        }
        return load_model(args.model, options=opts, device="cpu")

    if args.cost_only:
        cost = measure_cost(adapter(schedules[-1]), records, ks, args)
        Path(args.out).write_text(json.dumps({"args": vars(args), "cost": cost}, indent=1))
        print(report({"reliability": [], "coverage": [], "classes": 0, "cost": cost}))
        return

    runs: dict[tuple[str, int, int], object] = {}
    rows = []
    adapters = {schedule: adapter(schedule) for schedule in schedules}
    for k in ks:  # K outermost: a partial log compares the schedules at every K reached
        for schedule in schedules:
            adp = adapters[schedule]
            if k == 1 and schedule != schedules[0]:  # one draw is the same for every schedule
                runs.update({(schedule, 1, s): runs[(schedules[0], 1, s)] for s in (0, 1)})
                continue
            res = {}
            for s in (0, 1):
                t = time.perf_counter()
                r = score(
                    adp,
                    records,
                    subset=args.subset,
                    subset_seed=0,
                    seed=s,
                    batch_size=args.batch_size,
                    mask_draws=k,
                )
                wall = time.perf_counter() - t
                runs[(schedule, k, s)] = r
                res[s] = (r, wall)
            a, b = res[0][0], res[1][0]
            L = a.length
            za, zb = length_control(a.scores, L).z, length_control(b.scores, L).z
            row = {
                "schedule": resolve_schedule(schedule, k),
                "K": k,
                "spearman": spearman(a.scores, b.scores),
                "spearman_length_regressed": spearman(za, zb),
                "spearman_length": spearman(a.scores, L),
                "self_projected": [
                    (r.metadata.get("stability") or {}).get("projected") for r in (a, b)
                ],
                "self_projected_length_regressed": [
                    (r.metadata.get("stability") or {}).get("projected_length_regressed")
                    for r in (a, b)
                ],
                "score_seconds": [r.metadata["timing"]["score"] for r in (a, b)],
                "fit_seconds": [r.metadata["timing"]["fit"] for r in (a, b)],
                "wall_seconds": [res[0][1], res[1][1]],
            }
            rows.append(row)
            print(json.dumps(row))

    # coverage at 10%
    default = resolve_schedule("auto", max(ks))
    cover_rows = []
    n = len(records)
    budget = max(1, round(0.1 * n))
    for k in sorted({1, max(ks)}):
        sched = default if k > 1 else schedules[0]
        r = runs.get((sched, k, 0)) or runs[(schedules[0], k, 0)]
        L = r.length
        for method in ("topk", "cci"):
            for debias in (None, "length"):
                sel = select(r, method, budget=budget, seed=0, debias=debias)
                comp = composition(sel.indices, labels_arr, L)
                cover_rows.append({"K": k, "method": method, "debias": debias, **comp})
        base = random_baseline(n, budget, labels_arr, L, draws=50, seed=0)
        cover_rows.append(
            {"K": k, "method": "random", "debias": None, **{m: v["mean"] for m, v in base.items()}}
        )
    for row in cover_rows:
        print(json.dumps(row))
    cost = measure_cost(adapters[schedules[-1]], records, ks, args)
    out = {
        "cost": cost,
        "args": vars(args),
        "num_sequences": n,
        "classes": len(set(labels)),
        "median_length": float(np.median(runs[(schedules[0], 1, 0)].length)),
        "reliability": rows,
        "coverage": cover_rows,
        "torch_threads": args.threads,
        "cpu_count": os.cpu_count(),
    }
    Path(args.out).write_text(json.dumps(out, indent=1, default=str))
    print(report(out))
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()

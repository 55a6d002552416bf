#!/usr/bin/env python
"""CPU-scale replication of the paper's claim: does influence-guided selection beat random selection?

End to end on the Rfam 14.2 seed corpus (``../shared/data``), on two CPU cores:

1. remove from the corpus every sequence of the benchmark test splits used below (exact match
   after T→U and upper-casing);
2. pretrain a small "original" RNA-FM-architecture model on the whole (filtered) corpus;
3. score the corpus with the default method with and without the Assumption-1 fine-tune, and in
   ``paper-compat`` mode;
4. select Random, Top-I and CCI coresets at 10% and 1% budgets (Random at 10x the 1% budget is the
   Random 10% row; at 10x the 10% budget it is the original model);
5. pretrain every coreset from scratch with equal compute (the same number of optimizer steps) and
   evaluate nRC type classification, DeepCRISPR on-target, m6A modification and bpRNA secondary
   structure with frozen backbones, 3 head seeds each;
6. write the table (mean ± sd), the settings, the wall time and a plot.

Usage::

    python examples/replicate_cpu.py --out runs/replicate            # full run (~40-60 min, 2 cores)
    python examples/replicate_cpu.py --quick --out /tmp/replicate-q  # minutes; run by the test suite
    python examples/replicate_cpu.py --out runs/replicate \\
        --report docs/replication-results.md --plot docs/replication.png

Every stage writes its outputs into ``--out`` and is skipped when they exist, so an interrupted run
resumes where it stopped (pretraining resumes from its last checkpoint, scoring from its last shard).
Nothing here is part of the library: it only uses the public API.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import functools
import json
import math
import multiprocessing as mp
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"

# Sizes. "full" fits in well under 90 minutes on 2 CPU cores; "quick" exercises every stage in minutes.
PROFILES: dict[str, dict[str, Any]] = {
    "full": {
        "corpus_limit": None,  # the whole filtered corpus
        "heldout_limit": None,
        "max_length": 100,  # residues per sequence (longer ones are truncated); Rfam median is 94 nt
        "model": {
            "num_hidden_layers": 4,
            "hidden_size": 64,
            "intermediate_size": 256,
            "num_attention_heads": 4,
            "max_position_embeddings": 104,  # max_length + <cls>/<eos> + the fairseq padding offset
        },
        "pretrain": {
            "max_steps": 1200,
            "batch_size": 32,
            "lr": 1e-3,
            "warmup_steps": 100,
            "schedule": "inverse-sqrt",
            "weight_decay": 0.01,
            "max_grad_norm": 1.0,
            "checkpoint_every": 300,
        },
        "score_batch_size": 32,
        "budgets": (0.10, 0.01),
        "tasks": {
            "max_train": 2000,
            "max_test": 1000,
            "ss_max_train": 1000,
            "ss_max_test": 300,
            "epochs": 30,
            "ss_epochs": 10,
            "lr": 1e-3,
        },
        "seeds": (0, 1, 2),
    },
    "quick": {
        "corpus_limit": 600,
        "heldout_limit": 64,
        "max_length": 48,
        "model": {
            "num_hidden_layers": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_attention_heads": 4,
            "max_position_embeddings": 52,
        },
        "pretrain": {
            "max_steps": 12,
            "batch_size": 16,
            "lr": 1e-3,
            "warmup_steps": 2,
            "schedule": "inverse-sqrt",
            "weight_decay": 0.01,
            "max_grad_norm": 1.0,
            "checkpoint_every": 6,
        },
        "score_batch_size": 16,
        "budgets": (0.10, 0.02),
        "tasks": {
            "max_train": 64,
            "max_test": 32,
            "ss_max_train": 24,
            "ss_max_test": 12,
            "epochs": 2,
            "ss_epochs": 1,
            "lr": 1e-3,
        },
        "seeds": (0, 1, 2),
    },
}

# Scoring variants: (row prefix, preset, fine-tune on D_sub first).
VARIANTS = (
    ("ft", "default", True),
    ("noft", "default", False),
    ("compat", "paper-compat", True),
)
VARIANT_TITLES = {
    "ft": "default",
    "noft": "default w/o ft",
    "compat": "paper-compat",
}
METHOD_TITLES = {"topk": "Top-I", "cci": "CCI", "random": "Random"}

# (task key, metric key, column label, shown in percent, higher is better): the summary table and plot.
HEADLINE = (
    ("heldout-mlm", "loss", "Held-out MLM loss ↓", False, False),
    ("rna-type", "acc", "TypeCls ACC", True, True),
    ("rna-type", "f1", "TypeCls F1", True, True),
    ("crispr-on-target", "spearman", "CRI-On SC", True, True),
    ("rna-modification", "auc", "Modif AUC", True, True),
    ("rna-secondary-structure", "f1", "SS F1", True, True),
    ("rna-secondary-structure", "mcc", "SS MCC", True, True),
)
HELDOUT_GROUP = "Held-out masked-LM loss (Rfam sequences removed from the corpus; lower is better)"

# Data files under --data (see ../shared/data/README.md).
FILES = {
    "corpus": "rna/corpus/rfam14.2_seed_sequences.fasta.gz",
    "nrc_train": "rna/type_nrc/ncrna-deep_dataset_nRC_train.fasta",
    "nrc_test": "rna/type_nrc/ncrna-deep_dataset_nRC_test.fasta",
    "crispr": "rna/crispr_on_target/deepcrispr_reg_hela.repisgt.tsv",
    "m6a_train": "rna/modification_m6a/Human_Brain_train.csv.gz",
    "m6a_test": "rna/modification_m6a/Human_Brain_test.csv.gz",
    "ss_train": "rna/secondary_structure/RNA-SSP-bpRNA_train.jsonl",
    "ss_test": "rna/secondary_structure/RNA-SSP-bpRNA_test.jsonl",
}


# Base pairs are about 1 in 200 of the pair map of a 100-nt structure; without a positive weight a
# frozen small model's pairwise head predicts no pair at all (F1 = 0 for every model).
SS_POS_WEIGHT = 100.0


class ReplicationError(RuntimeError):
    """A bad option or missing input (the message says how to fix it)."""


# -- helpers shared by the worker processes ---------------------------------------------------------


def _one_thread() -> None:
    """Workers use one torch thread each (two small-model threads on two cores thrash)."""
    import torch

    torch.set_num_threads(1)


def adapter_options(profile: dict[str, Any]) -> dict[str, Any]:
    """Options of the ``rna-fm`` adapter building the reduced RNA-FM architecture."""
    return {
        "size": dict(profile["model"]),
        "max_length": profile["max_length"],
        "long_policy": "truncate",
        "invalid": "replace",
    }


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(value, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def check_data(data: Path) -> None:
    """Fail early, naming the missing file."""
    missing = [str(data / rel) for rel in FILES.values() if not (data / rel).is_file()]
    if missing:
        raise ReplicationError(
            f"data folder {str(data)!r} lacks {len(missing)} file(s), e.g. {missing[0]!r}. Pass --data "
            "pointing at the shared data folder (see ../shared/data/README.md)."
        )


@functools.lru_cache(maxsize=4)
def load_task_data(data: str, max_length: int) -> dict[str, Any]:
    """Examples of the four tasks (bpRNA restricted to structures of at most ``max_length`` nt)."""
    from biocoreset.bench.loaders.rna import (
        load_deepcrispr,
        load_m6a,
        load_nrc,
        load_rgb_structures,
    )

    d = Path(data)
    ss_train = [
        e for e in load_rgb_structures(d / FILES["ss_train"]) if len(e.sequence) <= max_length
    ]
    ss_test = [
        e for e in load_rgb_structures(d / FILES["ss_test"]) if len(e.sequence) <= max_length
    ]
    return {
        "nrc_train": load_nrc(d / FILES["nrc_train"]),
        "nrc_test": load_nrc(d / FILES["nrc_test"]),
        "crispr": load_deepcrispr(d / FILES["crispr"]),
        "m6a_train": load_m6a(d / FILES["m6a_train"]),
        "m6a_test": load_m6a(d / FILES["m6a_test"]),
        "ss_train": ss_train,
        "ss_test": ss_test,
    }


def make_tasks(data: str, profile: dict[str, Any]) -> list[Any]:
    """The four benchmark tasks with frozen backbones and CPU-sized head recipes."""
    from biocoreset.bench.tasks import (
        CRISPROnTargetTask,
        RNAModificationTask,
        RNASecondaryStructureTask,
        RNATypeTask,
    )

    t = profile["tasks"]
    ex = load_task_data(data, profile["max_length"])
    seq_opts = dict(
        finetune=False,
        head="mlp",
        epochs=t["epochs"],
        lr=t["lr"],
        batch_size=32,
        max_train=t["max_train"],
        max_test=t["max_test"],
    )
    return [
        RNATypeTask(train=ex["nrc_train"], test=ex["nrc_test"], **seq_opts),
        CRISPROnTargetTask(train=ex["crispr"], test_fraction=0.2, split_seed=0, **seq_opts),
        RNAModificationTask(train=ex["m6a_train"], test=ex["m6a_test"], **seq_opts),
        RNASecondaryStructureTask(
            train=ex["ss_train"],
            test=ex["ss_test"],
            finetune=False,
            epochs=t["ss_epochs"],
            lr=t["lr"],
            batch_size=16,
            max_train=t["ss_max_train"],
            max_test=t["ss_max_test"],
            pos_weight=SS_POS_WEIGHT,
        ),
    ]


def test_sequences(data: Path) -> list[str]:
    """Every sequence that any evaluation below may test on.

    nRC, m6A and bpRNA: their whole test files. DeepCRISPR has no fixed test split (a seeded 20% is
    held out), so all of its sequences count.
    """
    from biocoreset.bench.loaders.rna import (
        load_deepcrispr,
        load_m6a,
        load_nrc,
        load_rgb_structures,
    )

    out: list[str] = []
    out += [e.sequence for e in load_nrc(data / FILES["nrc_test"])]
    out += [e.sequence for e in load_deepcrispr(data / FILES["crispr"])]
    out += [e.sequence for e in load_m6a(data / FILES["m6a_test"])]
    out += [e.sequence for e in load_rgb_structures(data / FILES["ss_test"])]
    return out


# -- worker jobs (top-level functions: they run in spawned processes) -------------------------------


def pretrain_job(job: dict[str, Any]) -> dict[str, Any]:
    """Pretrain one model from scratch (resuming from its checkpoints); return its ``pretrain.json``."""
    _one_thread()
    from biocoreset.modelio import load_model
    from biocoreset.train.pretrain import PretrainConfig, pretrain

    out = Path(job["out"])
    done = out / "pretrain.json"
    if done.exists():
        return json.loads(done.read_text(encoding="utf-8"))
    opts = job["adapter_options"]
    adapter = load_model(adapter="rna-fm", options=opts, device=None)
    pretrain(
        adapter,
        job["corpus"],
        out,
        coreset=job["ids"],
        config=PretrainConfig(**job["config"]),
        adapter_spec={"adapter": "rna-fm", "adapter_options": opts},
        progress=False,
        device="cpu",
    )
    return json.loads(done.read_text(encoding="utf-8"))


def score_job(job: dict[str, Any]) -> dict[str, Any]:
    """Fine-tune (or not) the original model on ``D_sub`` and score the corpus; return a summary."""
    _one_thread()
    import attrs

    from biocoreset import api
    from biocoreset.config.presets import get_preset
    from biocoreset.modelio import load_model
    from biocoreset.store.result import ScoreResult
    from biocoreset.train.finetune import finetune

    out = Path(job["out"])
    info_path = out.with_suffix(".json")
    if out.exists() and info_path.exists():
        return json.loads(info_path.read_text(encoding="utf-8"))
    preset = get_preset(job["preset"])
    opts = {**job["adapter_options"], **preset.adapter_options}
    adapter = load_model(job["model"], adapter="rna-fm", options=opts, device=None)
    t0 = time.time()
    ft_summary = None
    if job["finetune"]:
        ft = finetune(
            adapter,
            job["corpus"],
            config=attrs.evolve(preset.finetune, progress=False, diagnostic_samples=256),
        )
        ft_summary = {
            "steps": ft.steps,
            "subset_size": ft.subset_size,
            "before": attrs.asdict(ft.before) if ft.before else None,
            "after": attrs.asdict(ft.after) if ft.after else None,
            "seconds": round(ft.seconds, 2),
        }
    ft_seconds = time.time() - t0
    cfg = attrs.evolve(preset.score, batch_size=job["batch_size"], progress=False)
    result = api.score(adapter, job["corpus"], config=cfg, output=out, force=out.exists())
    result = ScoreResult.load(out)
    meta = result.metadata
    info = {
        "variant": job["variant"],
        "preset": job["preset"],
        "finetune": ft_summary,
        "finetune_seconds": round(ft_seconds, 2),
        "score_seconds": round(time.time() - t0 - ft_seconds, 2),
        "n": len(result),
        "damping": meta.get("damping"),
        "subset_size": meta.get("subset_size"),
        "num_parameters": meta.get("num_scored_parameters"),
        "curvature": meta.get("curvature"),
    }
    _write_json(info_path, info)
    return info


def heldout_loss(adapter: Any, path: str, seeds: list[int], batch_size: int = 64) -> list[float]:
    """Mean per-sequence masked-LM loss on the held-out sequences, one value per masking seed."""
    import torch

    from biocoreset.data.sources import as_source

    records = list(as_source(path))
    adapter.model.eval()
    out = []
    with torch.no_grad():
        for seed in seeds:
            parts = [
                adapter.per_sample_loss(
                    adapter.collate(records[i : i + batch_size], seed=int(seed))
                )
                for i in range(0, len(records), batch_size)
            ]
            out.append(float(torch.cat(parts).double().mean()))
    return out


def eval_job(job: dict[str, Any]) -> list[dict[str, Any]]:
    """Evaluate one backbone on the four tasks with every seed; return the raw rows."""
    _one_thread()
    import attrs

    from biocoreset.bench.backbone import Backbone
    from biocoreset.bench.runner import run_bench
    from biocoreset.modelio import load_model
    from biocoreset.train.reinit import reinitialise

    out = Path(job["out"])
    if out.exists():
        return json.loads(out.read_text(encoding="utf-8"))
    opts = job["adapter_options"]
    if job["model"] is None:  # the untrained architecture: what pretraining has to beat

        def load() -> Any:
            adapter = load_model(adapter="rna-fm", options=opts, device=None)
            reinitialise(adapter.model, 0)
            return adapter

    else:
        load = functools.partial(
            load_model, job["model"], adapter="rna-fm", options=opts, device=None
        )
    backbone = Backbone(
        name=job["name"], load=load, data_size=job["data_size"], device="cpu", batch_size=64
    )
    table = run_bench(
        make_tasks(job["data"], job["profile"]), [backbone], seeds=job["seeds"], progress=False
    )
    rows = [attrs.asdict(r) for r in table.rows]
    t0 = time.time()
    losses = heldout_loss(load(), job["heldout"], job["seeds"])
    for seed, value in zip(job["seeds"], losses, strict=True):
        rows.append(
            {
                "checkpoint": job["name"],
                "data_size": job["data_size"],
                "task": "heldout-mlm",
                "title": "Held-out MLM",
                "group": HELDOUT_GROUP,
                "metric": "loss",
                "seed": int(seed),
                "value": value,
                "seconds": (time.time() - t0) / len(losses),
            }
        )
    _write_json(out, rows)
    return rows


# -- the driver ---------------------------------------------------------------------------------------


class Runner:
    """Runs the stages in order, recording the wall time of each."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.profile = PROFILES["quick" if args.quick else "full"]
        if args.steps is not None:
            self.profile = {
                **self.profile,
                "pretrain": {**self.profile["pretrain"], "max_steps": args.steps},
            }
        self.out = Path(args.out)
        self.data = Path(args.data)
        self.jobs = max(1, int(args.jobs))
        self.timings_path = self.out / "timings.json"
        self.timings: dict[str, float] = {}
        self.progress = (not args.no_progress) and sys.stderr.isatty()

    # stage bookkeeping
    def stage(self, name: str, fn: Any) -> Any:
        if self.timings_path.exists():
            self.timings = json.loads(self.timings_path.read_text(encoding="utf-8"))
        t0 = time.time()
        print(f"== {name}", file=sys.stderr, flush=True)
        try:
            return fn()
        finally:  # an interrupted stage's time counts too (a resumed run adds the rest)
            took = time.time() - t0
            self.timings[name] = round(self.timings.get(name, 0.0) + took, 2)
            _write_json(self.timings_path, self.timings)
            print(f"   {name}: {took:.1f} s", file=sys.stderr, flush=True)

    def pool(self, fn: Any, jobs: list[Any], desc: str) -> list[Any]:
        """Run ``fn`` over ``jobs`` in ``--jobs`` spawned processes, with a progress bar (rate, ETA).

        With ``fn=None`` every job is a ``(function, job)`` pair (independent work packed together).
        Jobs start in the order given: put the longest first.
        """
        from biocoreset.runtime.progress import progress_bar

        calls = list(jobs) if fn is None else [(fn, job) for job in jobs]
        results: list[Any] = [None] * len(calls)
        bar = progress_bar(total=len(calls), enabled=self.progress, desc=desc, unit="job")
        if self.jobs == 1 or len(calls) == 1:
            for i, (f, job) in enumerate(calls):
                results[i] = f(job)
                bar.update(1)
            bar.close()
            return results
        ctx = mp.get_context("spawn")
        with cf.ProcessPoolExecutor(max_workers=min(self.jobs, len(calls)), mp_context=ctx) as ex:
            futures = {ex.submit(f, job): i for i, (f, job) in enumerate(calls)}
            for fut in cf.as_completed(futures):
                results[futures[fut]] = fut.result()
                bar.update(1)
        bar.close()
        return results

    # stages
    def prepare_corpus(self) -> dict[str, Any]:
        """Step 1: the corpus without any benchmark test sequence (and, in --quick, a seeded sample)."""
        import numpy as np

        from biocoreset.bench.dedup import dedup_corpus
        from biocoreset.data.sources import as_source

        corpus = self.out / "corpus.fasta"
        report_path = self.out / "corpus.json"
        heldout = self.out / "heldout.fasta"
        if corpus.exists() and report_path.exists() and heldout.exists():
            return json.loads(report_path.read_text(encoding="utf-8"))
        filtered = self.out / "corpus.filtered.fasta"
        rep = dedup_corpus(
            self.data / FILES["corpus"], test_sequences(self.data), filtered, force=True
        )
        records = list(as_source(filtered))
        limit = self.profile["corpus_limit"]
        if limit is not None and limit < len(records):
            keep = np.sort(np.random.default_rng(0).choice(len(records), size=limit, replace=False))
            records = [records[i] for i in keep.tolist()]
        # Rfam seed ids are unique per family alignment row; keep the first of any repeated id.
        seen: set[str] = set()
        unique = []
        for rid, seq in records:
            if rid not in seen:
                seen.add(rid)
                unique.append((rid, seq))
        tmp = corpus.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            for rid, seq in unique:
                fh.write(f">{rid}\n{seq}\n")
        os.replace(tmp, corpus)
        filtered.unlink()
        # The removed records are in-distribution sequences no model trains on: the held-out MLM set.
        removed = set(rep.removed_ids)
        held = [(rid, seq) for rid, seq in as_source(self.data / FILES["corpus"]) if rid in removed]
        hlimit = self.profile["heldout_limit"]
        if hlimit is not None and hlimit < len(held):
            keep = np.sort(np.random.default_rng(1).choice(len(held), size=hlimit, replace=False))
            held = [held[i] for i in keep.tolist()]
        tmp = heldout.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            for rid, seq in held:
                fh.write(f">{rid}\n{seq}\n")
        os.replace(tmp, heldout)
        lengths = np.array([len(s) for _, s in unique])
        info = {
            "source": FILES["corpus"],
            "total": rep.total,
            "removed_test_overlap": rep.removed,
            "test_sequences": rep.test_sequences,
            "after_filter": rep.kept,
            "kept": len(unique),
            "duplicate_ids_dropped": len(records) - len(unique),
            "heldout": len(held),
            "median_length": float(np.median(lengths)),
            "truncated_to_max_length": int((lengths > self.profile["max_length"]).sum()),
        }
        _write_json(report_path, info)
        return info

    def corpus_ids(self) -> list[str]:
        from biocoreset.data.sources import as_source

        return [rid for rid, _ in as_source(self.out / "corpus.fasta")]

    def pretrain_jobs(self, models: dict[str, Path | None]) -> list[dict[str, Any]]:
        """One job per model; extra Random draws (``random<k>-...``) use pretraining seed ``k - 1``."""
        return [
            {
                "out": str(self.out / "models" / name),
                "corpus": str(self.out / "corpus.fasta"),
                "ids": None if ids is None else str(ids),
                "config": {**self.profile["pretrain"], "seed": _draw(name) - 1},
                "adapter_options": adapter_options(self.profile),
            }
            for name, ids in models.items()
        ]

    def random_selections(self) -> dict[str, Path]:
        """Random coresets need no scores, so they train alongside the original model.

        At the smallest budget two more draws (selection and pretraining seeds 1 and 2) measure how
        much a result moves from one random coreset and initialisation to another: the noise floor.
        """
        import numpy as np

        from biocoreset import select

        ids = self.corpus_ids()
        out = {}
        smallest = min(self.profile["budgets"])
        names = [(f"random-{_pct(f)}", f, 0) for f in self.profile["budgets"]]
        names += [(f"random{k}-{_pct(smallest)}", smallest, k - 1) for k in (2, 3)]
        for name, frac, seed in names:
            path = self.out / "selections" / f"{name}.txt"
            if not path.exists():
                sel = select(np.zeros(len(ids)), "random", budget=frac, seed=seed)
                _write_text(path, "".join(ids[i] + "\n" for i in sel.indices.tolist()))
            out[name] = path
        return out

    def score_jobs(self) -> list[dict[str, Any]]:
        (self.out / "scores").mkdir(parents=True, exist_ok=True)
        return [
            {
                "variant": variant,
                "preset": preset,
                "finetune": ft,
                "out": str(self.out / "scores" / f"{variant}.parquet"),
                "model": str(self.out / "models" / "original"),
                "corpus": str(self.out / "corpus.fasta"),
                "adapter_options": adapter_options(self.profile),
                "batch_size": self.profile["score_batch_size"],
            }
            for variant, preset, ft in VARIANTS
        ]

    def influence_selections(self) -> dict[str, Path]:
        from biocoreset import select
        from biocoreset.config.presets import get_preset
        from biocoreset.diagnose.plots import plot_selection
        from biocoreset.store.result import ScoreResult

        out: dict[str, Path] = {}
        for variant, preset_name, _ in VARIANTS:
            result = ScoreResult.load(self.out / "scores" / f"{variant}.parquet")
            preset = get_preset(preset_name)
            for method in ("topk", "cci"):
                options = dict(preset.select.options) if method == "cci" else {}
                for frac in self.profile["budgets"]:
                    name = f"{variant}-{method}-{_pct(frac)}"
                    path = self.out / "selections" / f"{name}.txt"
                    if not path.exists():
                        sel = select(
                            result, method, budget=frac, seed=preset.select.seed, **options
                        )
                        assert sel.ids is not None
                        _write_text(path, "".join(i + "\n" for i in sel.ids))
                        if method == "cci" and variant == "ft":
                            plot_selection(
                                result.scores,
                                sel,
                                self.out / "selections" / f"{name}.png",
                                title=f"CCI {_pct(frac)} on default (with ft) scores",
                            )
                    out[name] = path
        return out

    def evaluate(self, names: list[str]) -> list[dict[str, Any]]:
        (self.out / "eval").mkdir(parents=True, exist_ok=True)
        jobs = []
        for name in names:
            jobs.append(
                {
                    "name": row_label(name),
                    "data_size": self.data_size(name),
                    "model": None if name == "untrained" else str(self.out / "models" / name),
                    "out": str(self.out / "eval" / f"{name}.json"),
                    "adapter_options": adapter_options(self.profile),
                    "data": str(self.data),
                    "heldout": str(self.out / "heldout.fasta"),
                    "profile": self.profile,
                    "seeds": list(self.profile["seeds"]),
                }
            )
        rows: list[dict[str, Any]] = []
        for name, part in zip(names, self.pool(eval_job, jobs, "evaluation"), strict=True):
            # labels come from this version of the script, whatever wrote the cached results
            rows.extend(
                {**r, "checkpoint": row_label(name), "data_size": self.data_size(name)}
                for r in part
            )
        return rows

    def data_size(self, name: str) -> str:
        info = json.loads((self.out / "corpus.json").read_text(encoding="utf-8"))
        n = info["kept"]
        if name == "untrained":
            return "0"
        if name == "original":
            return f"{n:,} (100%)"
        frac = float(name.rsplit("-", 1)[1].rstrip("%")) / 100
        return f"{math.floor(round(frac * n, 9)):,} ({_pct(frac)})"

    def run(self) -> dict[str, Any]:
        check_data(self.data)
        self.out.mkdir(parents=True, exist_ok=True)
        t_start = time.time()
        corpus_info = self.stage("1 filter corpus", self.prepare_corpus)
        randoms = self.stage("4a random coresets", self.random_selections)
        main_randoms = {k: v for k, v in randoms.items() if k.startswith("random-")}
        extra_randoms = {k: v for k, v in randoms.items() if not k.startswith("random-")}
        first = {"original": None, **main_randoms}
        self.stage(
            "2 pretrain original (+ Random coresets alongside)",
            lambda: self.pool(pretrain_job, self.pretrain_jobs(first), "pretraining"),
        )

        def score_and_draws() -> list[Any]:
            calls = [(score_job, j) for j in self.score_jobs()]
            calls += [(pretrain_job, j) for j in self.pretrain_jobs(extra_randoms)]
            return self.pool(None, calls, "scoring")[: len(VARIANTS)]

        scoring = self.stage(
            "3 fine-tune and score (+ 2 more Random draws alongside)", score_and_draws
        )
        selections = self.stage("4b influence coresets", self.influence_selections)
        self.stage(
            "5a pretrain influence coresets",
            lambda: self.pool(pretrain_job, self.pretrain_jobs(dict(selections)), "pretraining"),
        )
        names = ["untrained", "original"]  # then grouped by budget: Random (draws), Top-I, CCI
        for frac in self.profile["budgets"]:
            pct = _pct(frac)
            names += [n for n in (*main_randoms, *extra_randoms) if n.endswith(f"-{pct}")]
            names += [f"{v}-{m}-{pct}" for m in ("topk", "cci") for v, _, _ in VARIANTS]
        rows = self.stage("5b evaluate", lambda: self.evaluate(names))
        self.timings = json.loads(self.timings_path.read_text(encoding="utf-8"))
        this_session = time.time() - t_start
        return {
            "corpus": corpus_info,
            "scoring": scoring,
            "rows": rows,
            "names": names,
            "timings": self.timings,
            "this_invocation_seconds": round(this_session, 1),
        }


def _draw(name: str) -> int:
    """``random3-1%`` → 3; every other model → 1."""
    head = name.split("-", 1)[0]
    return int(head[len("random") :]) if head.startswith("random") and head != "random" else 1


def _pct(frac: float) -> str:
    return f"{frac * 100:g}%"


def row_label(name: str) -> str:
    """``ft-cci-1%`` → ``CCI (default) 1%``; ``random-10%`` → ``Random 10%`` (unique per model)."""
    if name == "untrained":
        return "Untrained"
    if name == "original":
        return "Original"
    parts = name.split("-")
    if parts[0].startswith("random"):
        draw = _draw(name)
        return f"Random {parts[1]}" + (f" (draw {draw})" if draw > 1 else "")
    return f"{METHOD_TITLES[parts[1]]} ({VARIANT_TITLES[parts[0]]}) {parts[2]}"


# -- report -------------------------------------------------------------------------------------------


def summarise(
    rows: list[dict[str, Any]],
) -> dict[tuple[str, str, str, str], tuple[float, float, int]]:
    """``{(row, size, task, metric): (mean, sd, n)}``."""
    import numpy as np

    groups: dict[tuple[str, str, str, str], list[float]] = {}
    for r in rows:
        groups.setdefault((r["checkpoint"], r["data_size"], r["task"], r["metric"]), []).append(
            r["value"]
        )
    out = {}
    for key, vals in groups.items():
        a = np.asarray(vals, dtype=np.float64)
        out[key] = (
            float(a.mean()),
            float(a.std(ddof=1)) if a.size > 1 else float("nan"),
            int(a.size),
        )
    return out


def noise_floor(
    summary: dict[Any, tuple[float, float, int]], frac: float
) -> dict[tuple[str, str], float]:
    """Per metric: the sample sd of the means of the three Random draws at budget ``frac`` (how much a
    result moves between random coresets and pretraining seeds)."""
    import numpy as np

    rows = {f"Random {_pct(frac)}", *(f"Random {_pct(frac)} (draw {k})" for k in (2, 3))}
    means: dict[tuple[str, str], list[float]] = {}
    for (row, _size, task, metric), (m, _sd, _n) in summary.items():
        if row in rows:
            means.setdefault((task, metric), []).append(m)
    return {k: float(np.std(v, ddof=1)) for k, v in means.items() if len(v) > 1}


def verdicts(summary: dict[Any, tuple[float, float, int]], budgets: tuple[float, ...]) -> list[str]:
    """The paper's claims checked one by one: does each coreset beat Random at the same budget and at
    10x the budget (the whole corpus when 10x is 100%)? A difference counts only when it exceeds both
    rows' seed standard deviations and the noise floor of :func:`noise_floor`."""
    by: dict[str, dict[tuple[str, str], tuple[float, float, int]]] = {}
    for (row, _size, task, metric), v in summary.items():
        by.setdefault(row, {})[(task, metric)] = v
    noise = noise_floor(summary, min(budgets))
    lines = []
    for frac in budgets:
        refs = [(f"Random {_pct(frac)}", "Random, same budget")]
        if any(math.isclose(f, frac * 10) for f in budgets):
            refs.append((f"Random {_pct(frac * 10)}", "Random, 10x the budget"))
        elif math.isclose(frac * 10, 1.0):
            refs.append(("Original", "Original (10x the budget = the whole corpus)"))
        for method in ("CCI", "Top-I"):
            for variant in VARIANT_TITLES.values():
                row = f"{method} ({variant}) {_pct(frac)}"
                if row not in by:
                    continue
                for ref_row, ref_title in refs:
                    ref = by.get(ref_row)
                    if ref is None:
                        continue
                    wins: list[str] = []
                    losses: list[str] = []
                    ties = 0
                    for task, metric, label, _pct_shown, higher in HEADLINE:
                        if (task, metric) not in by[row] or (task, metric) not in ref:
                            continue
                        m, sd, _ = by[row][(task, metric)]
                        rm, rsd, _ = ref[(task, metric)]
                        margin = max(
                            sd if sd == sd else 0.0,
                            rsd if rsd == rsd else 0.0,
                            noise.get((task, metric), 0.0),
                        )
                        if abs(m - rm) <= margin:
                            ties += 1
                        elif (m > rm) == higher:
                            wins.append(label)
                        else:
                            losses.append(label)
                    lines.append(
                        f"| {row} | {ref_title} | {len(wins)} | {ties} | {len(losses)} | "
                        f"{', '.join(wins) or '–'} | {', '.join(losses) or '–'} |"
                    )
    return lines


def write_report(result: dict[str, Any], runner: Runner, path: Path, plot: Path | None) -> None:
    """Markdown: settings, timings, the full table, the headline table and the claim checks."""
    from biocoreset.bench.runner import BenchRow, BenchTable
    from biocoreset.bench.tasks import BUILTIN_TASKS

    profile = runner.profile
    rows = result["rows"]
    from biocoreset.bench.protocol import MetricSpec

    specs: dict[str, Any] = {cls.name: cls.metrics for cls in BUILTIN_TASKS}
    specs["heldout-mlm"] = (MetricSpec("loss", "loss ↓", percent=False, higher_is_better=False),)
    table = BenchTable([BenchRow(**r) for r in rows], specs)
    summary = summarise(rows)
    import torch

    from biocoreset.adapters.rnafm_model import build_rnafm, rnafm_config

    n_params = sum(
        p.numel() for p in build_rnafm(rnafm_config(dict(profile["model"]))).parameters()
    )
    timings = result["timings"]
    total = sum(timings.values())
    corpus = result["corpus"]
    p = profile["pretrain"]
    t = profile["tasks"]
    cmd = "python examples/replicate_cpu.py " + " ".join(runner.args.argv)
    lines = [
        "<!-- generated by examples/replicate_cpu.py; do not edit by hand -->",
        "",
        f"Command: `{cmd}`",
        "",
        f"Machine: {os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), "
        f"{runner.jobs} worker process(es) with one torch thread each, torch {torch.__version__}, "
        f"Python {platform.python_version()}.",
        "",
        f"**Wall time: {total / 60:.1f} min** in total (sum over stages, resumed runs included):",
        "",
        "| stage | seconds |",
        "|---|---|",
        *[f"| {k} | {v:.0f} |" for k, v in timings.items()],
        "",
        "### Settings",
        "",
        f"- Corpus: Rfam 14.2 seed sequences, {corpus['total']:,} records; {corpus['removed_test_overlap']:,} "
        f"removed because they occur (exactly, after T→U) in the {corpus['test_sequences']:,} distinct test "
        f"sequences of the four tasks, leaving {corpus['after_filter']:,}; {corpus['kept']:,} used"
        + (f" (a seeded sample of {profile['corpus_limit']:,})" if profile["corpus_limit"] else "")
        + f", median {corpus['median_length']:.0f} nt; {corpus['truncated_to_max_length']:,} are truncated "
        f"to {profile['max_length']} nt by the adapter.",
        f"- Held-out set: the {corpus['heldout']:,} corpus records removed in the filtering step (Rfam "
        "sequences no model trains on; their families stay in the corpus, so this measures in-family "
        "generalisation). Each model's mean per-sequence masked-LM loss on them, with masks drawn from "
        "each of the seeds, is the first column.",
        f"- Model: RNA-FM architecture (ESM-1b-style `EsmForMaskedLM`, RNA-FM vocabulary), "
        f"{profile['model']['num_hidden_layers']} layers × {profile['model']['hidden_size']} hidden, "
        f"{profile['model']['num_attention_heads']} heads, FFN {profile['model']['intermediate_size']}: "
        f"**{n_params:,} parameters** (RNA-FM: 12 × 640, 99.5M).",
        f"- Pretraining (every row, equal compute): {p['max_steps']} AdamW steps of {p['batch_size']} "
        f"sequences from scratch (seed 0), lr {p['lr']:g}, {p['schedule']} after {p['warmup_steps']} "
        f"warm-up steps, weight decay {p['weight_decay']}, gradient clipping {p['max_grad_norm']}, 15% "
        "masking (80/10/10) drawn anew each epoch. That is "
        + ", ".join(
            f"{p['max_steps'] * p['batch_size'] / max(1, math.floor(round(f * corpus['kept'], 9))):.1f} epochs "
            f"of a {_pct(f)} coreset"
            for f in profile["budgets"]
        )
        + f" and {p['max_steps'] * p['batch_size'] / corpus['kept']:.2f} of the whole corpus.",
        "- Scoring (from the original model): diagonal empirical Fisher; `default` = masked-LM loss, all "
        "parameters, Fisher on D_sub (1% of the corpus, at least 256), λ = 0.1 × mean Fisher entry; with "
        "or without one epoch of fine-tuning on D_sub first (A.5: AdamW 1e-5, warm-up 50, batch 16); "
        "`paper-compat` = the released code's choices (`lm_head.dense.weight`, unmasked loss over all "
        "positions, Fisher on the whole corpus, λ = 1e-8, negated scores, seed 42).",
        f"- Noise floor: two extra Random {_pct(min(profile['budgets']))} coresets (selection and "
        "pretraining seeds 1 and 2) show how far a result moves between random coresets and "
        "initialisations; every other model is pretrained once (seed 0).",
        "- Selection: Top-I = the highest scores; CCI = β 0.05 and 50 strata (paper-compat: β 0.1); "
        "Random = uniform (seed 0). Under paper-compat the scores are negated as in the released code, "
        "so its Top-I keeps the *lowest* I(z) and its CCI cut drops the least influential sequences.",
        f"- Evaluation: frozen backbones, mean-pooled features with a two-layer MLP head for the "
        f"sequence tasks ({t['epochs']} epochs, AdamW {t['lr']:g}, batch 32), a pairwise head on "
        f"residue features for secondary structure ({t['ss_epochs']} epochs, batch 16, BCE positive "
        f"weight {SS_POS_WEIGHT:g}, threshold 0.5); at most {t['max_train']:,} training / {t['max_test']:,} test examples per sequence "
        f"task (seeded samples), bpRNA structures of at most {profile['max_length']} nt "
        f"({t['ss_max_train']:,} / {t['ss_max_test']:,}). nRC: the given train/test split; DeepCRISPR "
        "HeLa: a seeded 80/20 split; m6A: human brain train/test; bpRNA: RNA-SSP train/test. "
        f"Seeds {', '.join(map(str, profile['seeds']))} seed the heads; each backbone is pretrained once.",
        "",
        "### Headline metrics (mean ± sd over seeds; higher is better except where marked ↓)",
        "",
    ]
    head = ["Model", "Data size"] + [h[2] for h in HEADLINE]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    order = []
    for r in rows:
        key = (r["checkpoint"], r["data_size"])
        if key not in order:
            order.append(key)
    for ck, size in order:
        cells = [ck, size]
        for task, metric, _, percent, _ in HEADLINE:
            v = summary.get((ck, size, task, metric))
            cells.append(
                "–"
                if v is None
                else (
                    f"{100 * v[0]:.1f} ± {100 * v[1]:.1f}"
                    if percent
                    else f"{v[0]:.4f} ± {v[1]:.4f}"
                )
            )
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "### The paper's claims, checked",
        "",
        f"Counts over the {len(HEADLINE)} headline metrics. A difference counts as a win or a loss only "
        "when it exceeds both rows' seed standard deviations and the noise floor (the sd of the three "
        f"Random {_pct(min(profile['budgets']))} draws, which differ in coreset and pretraining seed); "
        "otherwise it is a tie.",
        "",
        "| coreset | compared with | wins | ties | losses | won on | lost on |",
        "|---|---|---|---|---|---|---|",
        *verdicts(summary, profile["budgets"]),
        "",
        "Noise floor per metric: "
        + ", ".join(
            f"{label} {100 * v if percent else v:.{1 if percent else 4}f}"
            for (task, metric, label, percent, _), v in (
                (h, noise_floor(summary, min(profile["budgets"])).get((h[0], h[1]), float("nan")))
                for h in HEADLINE
            )
        )
        + ".",
        "",
        "### Scoring",
        "",
        "| variant | D_sub | fine-tune steps | loss before → after | λ | scored parameters | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in result["scoring"]:
        ft = s.get("finetune")
        change = (
            f"{ft['before']['mean_loss']:.4f} → {ft['after']['mean_loss']:.4f}"
            if ft and ft.get("before") and ft.get("after")
            else "–"
        )
        lam = s.get("damping")
        lines.append(
            f"| {VARIANT_TITLES[s['variant']]} | {s.get('subset_size')} | {ft['steps'] if ft else 0} | {change} | "
            f"{lam:.3g} | {s.get('num_parameters')} | {s['finetune_seconds'] + s['score_seconds']:.0f} |"
            if isinstance(lam, (int, float))
            else f"| {VARIANT_TITLES[s['variant']]} | {s.get('subset_size')} | {ft['steps'] if ft else 0} | "
            f"{change} | {lam} | {s.get('num_parameters')} | {s['finetune_seconds'] + s['score_seconds']:.0f} |"
        )
    lines += ["", *composition(runner.out, runner.profile["budgets"])]
    lines += ["", "### Every metric", "", table.to_markdown(decimals=1).replace("### ", "#### ")]
    _write_text(path, "\n".join(lines) + "\n")
    if plot is not None:
        plot_results(summary, order, plot, budgets=profile["budgets"])


def composition(out: Path, budgets: tuple[float, ...]) -> list[str]:
    """What each coreset holds (length, Rfam families, GC) and how the three scorings agree."""
    import numpy as np
    from scipy.stats import spearmanr

    from biocoreset.data.sources import as_source
    from biocoreset.store.result import ScoreResult

    seqs = dict(as_source(out / "corpus.fasta"))

    def family(rid: str) -> str:
        return rid.split("|", 1)[0]

    def describe(ids: list[str]) -> str:
        lengths = np.array([len(seqs[i]) for i in ids])
        gc = np.mean([sum(seqs[i].upper().count(c) for c in "GC") / len(seqs[i]) for i in ids])
        return f"{len(ids):,} | {np.median(lengths):.0f} | {len({family(i) for i in ids}):,} | {gc:.3f}"

    lines = [
        "### What the coresets hold",
        "",
        "| coreset | sequences | median length (nt) | Rfam families | GC fraction |",
        "|---|---|---|---|---|",
        f"| whole corpus | {describe(list(seqs))} |",
    ]
    names = [f"random-{_pct(f)}" for f in budgets]
    names += [
        f"{v}-{m}-{_pct(f)}" for f in budgets for v, _, _ in VARIANTS for m in ("topk", "cci")
    ]
    for name in names:
        path = out / "selections" / f"{name}.txt"
        if path.exists():
            lines.append(
                f"| {row_label(name)} | {describe(path.read_text(encoding='utf-8').split())} |"
            )
    scores = {v: ScoreResult.load(out / "scores" / f"{v}.parquet") for v, _, _ in VARIANTS}
    ft, noft, compat = scores["ft"], scores["noft"], scores["compat"]

    def rho(a: Any, b: Any) -> str:
        return f"{float(spearmanr(a, b)[0]):.3f}"

    lines += [
        "",
        "Spearman correlation of the scores: default with vs without fine-tune "
        f"{rho(ft.scores, noft.scores)}; default vs paper-compat (its negation undone) "
        f"{rho(ft.scores, -compat.scores)}; default vs sequence length {rho(ft.scores, ft.length)}; "
        f"default vs the sequence's masked-LM loss {rho(ft.scores, ft.loss)}.",
    ]
    return lines


def plot_results(
    summary: dict[Any, tuple[float, float, int]],
    order: list[tuple[str, str]],
    path: Path,
    *,
    budgets: Any,
) -> None:
    """One panel per headline metric: a horizontal bar (mean ± sd over seeds) per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    colours = {
        "Untrained": "#000000",
        "Original": "#2ca02c",
        "Random": "#9e9e9e",
        "Top-I": "#ff7f0e",
        "CCI": "#1f77b4",
    }
    ncols = 4
    nrows = math.ceil((len(HEADLINE) + 1) / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(4.6 * ncols, 0.28 * len(order) * nrows + 1.5), squeeze=False
    )
    flat = list(axes.flat)
    ys = list(range(len(order)))[::-1]
    labels = [ck for ck, _ in order]
    for k, (ax, (task, metric, label, percent, _)) in enumerate(zip(flat, HEADLINE, strict=False)):
        scale = 100.0 if percent else 1.0
        means, errs, cols = [], [], []
        for ck, size in order:
            v = summary.get((ck, size, task, metric), (float("nan"), float("nan"), 0))
            means.append(scale * v[0])
            errs.append(0.0 if v[1] != v[1] else scale * v[1])
            cols.append(colours[ck.split(" ")[0]])
        ax.barh(ys, means, xerr=errs, color=cols, capsize=2)
        ax.set_yticks(ys)
        ax.set_yticklabels(labels if k % ncols == 0 else [], fontsize=8)
        ax.set_title(label + ("" if not percent else " (%)"), fontsize=10)
        # The untrained model's loss (about ln 25) would flatten the loss panel: leave it out of the
        # axis range and print its value instead.
        clip = not percent
        finite = [
            (m, e)
            for (ck, _), m, e in zip(order, means, errs, strict=True)
            if m == m and not (clip and ck == "Untrained")
        ]
        if finite:
            lo = min(m - e for m, e in finite)
            hi = max(m + e for m, e in finite)
            pad = 0.08 * max(hi - lo, 1e-6)
            ax.set_xlim(lo - pad, hi + pad)
            for y, (ck, _), m in zip(ys, order, means, strict=True):
                if clip and ck == "Untrained" and m == m and m > hi + pad:
                    ax.text(hi, y, f"{m:.2f} →", ha="right", va="center", color="white", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    legend_ax = flat[len(HEADLINE)]
    legend_ax.axis("off")
    legend_ax.legend(
        handles=[Patch(color=c, label=n) for n, c in colours.items()], loc="center", frameon=False
    )
    for ax in flat[len(HEADLINE) + 1 :]:
        ax.axis("off")
    fig.suptitle(
        "CPU-scale replication: each pretraining set, mean ± sd over 3 seeds (loss: lower is better)"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="working folder (reused to resume)")
    parser.add_argument(
        "--data", default=str(DEFAULT_DATA), help="the shared data folder (default: %(default)s)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes: every stage in a few minutes"
    )
    parser.add_argument(
        "--jobs", type=int, default=2, help="worker processes (default: %(default)s)"
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="override the pretraining steps per model"
    )
    parser.add_argument(
        "--report", help="also write the Markdown report here (default: OUT/report.md only)"
    )
    parser.add_argument(
        "--plot", help="also write the plot here (default: OUT/replication.png only)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    import signal

    # SIGTERM (kill, a batch system) unwinds like Ctrl-C, so the stage time is saved before exiting.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    _one_thread()
    try:
        runner = Runner(args)
        result = runner.run()
    except ReplicationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = runner.out / "report.md"
    plot = runner.out / "replication.png"
    write_report(result, runner, report, plot)
    if args.report:
        write_report(result, runner, Path(args.report), Path(args.plot) if args.plot else None)
    elif args.plot:
        import shutil

        shutil.copyfile(plot, args.plot)
    print(report.read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Third replication round: does influence-guided selection beat random selection, and MMseqs2
clusters, on antibodies?

End to end on a simulated antibody repertoire (docs/antibody-corpus.md), on two CPU cores; the
plan, the gate decision and the pre-registered outcomes are in docs/replication.md:

1. build the corpus (OLGA recombination models + anarci germlines, held-out V genes excluded) and
   the held-out task data (``biocoreset.bench.antibody.heldout``);
2. the gate: pretrain the whole-corpus model from scratch with every pretraining seed (these are
   the Random 100% arm) and compare it with the untrained architecture (as many initialisation
   seeds): held-out masked loss >= 0.3 nats below the letter-frequency predictor, and the two rows
   that measure pretraining (J gene; V family on simulated domains) beyond twice the pooled sd (the
   gate decision of issue 32; the earlier majority rule is reported beside it). A failed gate stops
   the round (exit status 3);
3. the headroom check: Random at both budgets against Random 100% on the two primaries; it fixes
   the primary budget (1% when Random 10% is within the minimum detectable effect of 100%);
4. MMseqs2 clusters of the corpus (``easy-cluster``, 0.9 identity, 0.8 coverage) for the Cluster arms;
5. score the corpus with AntiBERTy (``load_model("antiberty")``) and with the whole-corpus model of
   pretraining seed 0 (the weak scorer), each at ``mask_draws = K`` (one draw per pretraining seed)
   with ``keep_draws``: pretraining seed ``k`` of a scored arm selects from draw ``k``;
6. select per arm, budget and seed: Random, Top-I, CCI and Cluster at both budgets; CCI on the
   K-draw mean, Top-I and CCI with ``debias="length"``, CCI on the weak scorer and Cluster with
   ``within="influence"`` at the primary budget;
7. pretrain every coreset from scratch (3 seeds, the same steps x batch for every arm), evaluate
   every model and the untrained one on the antibody tasks (converged linear probes on frozen
   features; masked loss per V-gene frequency bucket and, for Primary 1, on the simulated test
   domains over 4 fixed mask seeds);
8. write ``results.json``: every raw value, mean ± sd per arm, the primary comparisons (gap, twice
   the pooled sd, Welch's t, 95% CI, verdict), the exploratory ones, per arm the final training
   loss, distinct sequences and the Jaccard overlap of its seeds' coresets, V-gene coverage against
   random draws, ``primaries.png``, and ``logs/`` (every timed step with the load average).

Usage::

    python examples/replicate_antibody.py --out runs/antibody                  # the whole round
    python examples/replicate_antibody.py --out runs/antibody --corpus-only    # stage 1
    python examples/replicate_antibody.py --out runs/antibody --gate-only      # stages 1-2
    python examples/replicate_antibody.py --out runs/antibody --headroom-only  # stages 1-3
    python examples/replicate_antibody.py --out runs/antibody --select-only    # 1-6 and coverage
    python examples/replicate_antibody.py --quick --out /tmp/ab-q              # minutes; in the tests

Every stage skips work whose output exists, so an interrupted run resumes (the scoring resumes from
its shards). Only the public API is used: ``build_repertoire``, ``pretrain``, ``score``, ``select``,
``cluster_to_file``, ``run_bench``, ``compare_arms``.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

PROFILES: dict[str, dict[str, Any]] = {
    "full": {
        "corpus_n": 20_000,
        "n_train": 2000,
        "n_test": 1000,
        "model": {"d_model": 64, "n_heads": 4, "n_layers": 4},
        "pretrain": {
            "max_steps": 400,
            "batch_size": 32,
            "lr": 2e-3,
            "warmup_steps": 40,
            "schedule": "inverse-sqrt",
            "weight_decay": 0.01,
            "max_grad_norm": 1.0,
            "checkpoint_every": 200,
        },
        "score_batch_size": 32,
        "score_shard_size": 320,
        "score_subset": None,
        "budgets": (0.10, 0.01),
        "task_epochs": 20,
        "probe_l2": 1e-3,
        "seeds": (0, 1, 2),
        "head_seeds": (0,),
        "mask_seeds": (0, 1, 2, 3),
        "coverage_draws": 20,
        "clusters": {"min_seq_id": 0.9, "coverage": 0.8},
    },
    "quick": {
        "corpus_n": 80,
        "n_train": 120,
        "n_test": 40,
        "model": {"d_model": 32, "n_heads": 4, "n_layers": 1},
        "pretrain": {
            "max_steps": 6,
            "batch_size": 16,
            "lr": 2e-3,
            "warmup_steps": 2,
            "schedule": "inverse-sqrt",
            "weight_decay": 0.01,
            "max_grad_norm": 1.0,
            "checkpoint_every": 6,
        },
        "score_batch_size": 16,
        "score_shard_size": None,
        "score_subset": 16,
        "budgets": (0.10, 0.05),
        "task_epochs": 2,
        "probe_l2": 0.1,
        "seeds": (0, 1),
        "head_seeds": (0,),
        "mask_seeds": (0, 1),
        "coverage_draws": 4,
        "clusters": {"min_seq_id": 0.9, "coverage": 0.8},
    },
}
GATE_NATS = 0.3
ORIGINAL_MODEL = "antiberty"
CLASS_TASKS = ("antibody-v-family", "antibody-chain", "antibody-species")
TEST_SETS = ("test-germline", "test-simulated")
RECOMBINED_TASKS = (("antibody-j-gene", "acc"), ("antibody-cdr3-length", "spearman"))
"""Tasks with a label only for recombined domains: trained on ``train-simulated``, tested on
``test-simulated``; with their gate metric."""
MLM = "antibody-mlm-buckets"

PRIMARY_ARMS = ("random", "topk", "cci", "cluster")
"""Arms at both budgets (the primary comparisons' arms)."""
EXPLORATORY_ARMS = ("cci-draws", "topk-len", "cci-len", "weak-cci", "cluster-inf")
"""Arms at the primary budget only (exploratory)."""
ARMS = (*PRIMARY_ARMS, *EXPLORATORY_ARMS)
SELECTION_PLAN: dict[str, tuple[str | None, str, dict[str, Any], bool]] = {
    "random": (None, "random", {}, False),
    "topk": ("antiberty", "topk", {}, True),
    "cci": ("antiberty", "cci", {}, True),
    "cluster": (None, "cluster", {"within": "random"}, False),
    "cci-draws": ("antiberty", "cci", {}, False),
    "topk-len": ("antiberty", "topk", {"debias": "length"}, True),
    "cci-len": ("antiberty", "cci", {"debias": "length"}, True),
    "weak-cci": ("weak", "cci", {}, True),
    "cluster-inf": ("antiberty", "cluster", {"within": "influence"}, True),
}
"""arm → (scores, selector, options, per-seed draw): seed ``k`` selects with seed ``k`` and, when
the last field is true, on draw ``k`` of the scores (else on their mean)."""
PRIMARIES = (
    ("Primary 1", MLM, "loss_simulated", False),
    ("Primary 2", "antibody-j-gene:test-simulated", "acc", True),
)
"""(name, task row, metric, higher is better) of the pre-registered primary outcomes."""
COMPARISONS = (("cci", "random"), ("topk", "random"), ("cci", "cluster"))
"""The pre-registered primary comparisons (at each budget)."""
DECISIVE_GATE_ROWS = ("antibody-j-gene:test-simulated", "antibody-v-family:test-simulated")
"""The gate decision's downstream rows (issue 32)."""


class ReplicationError(RuntimeError):
    """A bad option or a missing input (the message says how to fix it)."""


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(value, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _pct(frac: float) -> str:
    return f"{frac * 100:g}pct"


def _load() -> list[float]:
    """The 1-, 5- and 15-minute load averages (for the logs of timed steps)."""
    return [round(v, 2) for v in os.getloadavg()]


def _log(out: Path, event: dict[str, Any]) -> None:
    """Append one timed event (with the time and the load average) to ``logs/steps.jsonl``."""
    path = out / "logs" / "steps.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    row = {"utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "load": _load(), **event}
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(row, default=str) + "\n")


def adapter_options(profile: dict[str, Any]) -> dict[str, Any]:
    """Options of the ``esmc`` adapter building the small ESM-C-shaped model from scratch."""
    return {"model_name": dict(profile["model"]), "random_init": True}


# -- worker jobs (top level: they run in spawned processes) ------------------------------------------


def pretrain_job(job: dict[str, Any]) -> dict[str, Any]:
    """Pretrain one model from scratch on a coreset; return its ``pretrain.json``."""
    import torch

    torch.set_num_threads(1)
    from biocoreset.modelio import load_model
    from biocoreset.train.pretrain import PretrainConfig, pretrain

    out = Path(job["out"])
    done = out / "pretrain.json"
    if done.exists():
        return _read_json(done)
    opts = job["adapter_options"]
    adapter = load_model(adapter="esmc", options=opts, device=None)
    t0, load_start = time.time(), _load()
    pretrain(
        adapter,
        job["corpus"],
        out,
        coreset=job["ids"],
        config=PretrainConfig(**{**job["config"], "seed": int(job["seed"])}),
        adapter_spec={"adapter": "esmc", "adapter_options": opts},
        progress=False,
        device="cpu",
    )
    info = _read_json(done)
    info["wall_seconds"] = round(time.time() - t0, 1)
    info["load_start"], info["load_end"] = load_start, _load()
    _write_json(done, info)
    return info


def make_tasks(
    tasks_dir: str, epochs: int, l2: float = 1e-3, mask_seeds: Any = None
) -> list[dict[str, Any]]:
    """The antibody task tables for ``run_bench``: V family, chain and species on both test sets,
    J gene and CDR3 length on the simulated one (probe penalty ``l2``), and the masked loss
    (averaged over the fixed ``mask_seeds`` when given: Primary 1)."""
    d = Path(tasks_dir)
    out: list[dict[str, Any]] = []
    for name in CLASS_TASKS:
        for test in TEST_SETS:
            out.append(
                {
                    "name": name,
                    "title": f"{name}:{test}",
                    "train": str(d / "train.tsv"),
                    "test": str(d / f"{test}.tsv"),
                    "epochs": epochs,
                    "l2": l2,
                }
            )
    for name, _ in RECOMBINED_TASKS:
        out.append(
            {
                "name": name,
                "title": f"{name}:test-simulated",
                "train": str(d / "train-simulated.tsv"),
                "test": str(d / "test-simulated.tsv"),
                "l2": l2,
            }
        )
    out.append(
        {
            "name": MLM,
            "title": MLM,
            "train": str(d / "train.tsv"),
            "test": str(d / "mlm.tsv"),
            **({} if mask_seeds is None else {"mask_seeds": [int(m) for m in mask_seeds]}),
        }
    )
    return out


def eval_job(job: dict[str, Any]) -> list[dict[str, Any]]:
    """Evaluate one backbone (``model=None``: the untrained architecture) on every task."""
    import torch

    torch.set_num_threads(1)
    import functools

    import attrs

    from biocoreset.bench.backbone import Backbone
    from biocoreset.bench.runner import run_bench
    from biocoreset.modelio import load_model

    out = Path(job["out"])
    if out.exists():
        return _read_json(out)
    opts = job["adapter_options"]
    if job["model"] is None:

        def load() -> Any:
            torch.manual_seed(int(job["init_seed"]))
            return load_model(adapter="esmc", options=opts, device=None)

    else:
        load = functools.partial(load_model, job["model"], adapter="esmc", device=None)
    backbone = Backbone(name=job["name"], load=load, device="cpu", batch_size=64)
    t0, load_start = time.time(), _load()
    table = run_bench(
        make_tasks(job["tasks"], job["epochs"], job.get("l2", 1e-3), job.get("mask_seeds")),
        [backbone],
        seeds=job["seeds"],
        progress=False,
    )
    rows = [attrs.asdict(r) for r in table.rows]
    seconds = round(time.time() - t0, 1)
    for r in rows:
        r["arm"], r["pretrain_seed"] = job["arm"], job["pretrain_seed"]
        r["eval_seconds"], r["load_start"], r["load_end"] = seconds, load_start, _load()
    _write_json(out, rows)
    print(f"  eval {job['name']}: {time.time() - t0:.0f} s", flush=True)
    return rows


def composition_job(job: dict[str, Any]) -> dict[str, float]:
    """The gate rows of a probe on amino-acid composition and length alone (no network): how much
    of each task the letters already give away."""
    import torch

    from biocoreset.plugins import create

    letters = "ACDEFGHIKLMNPQRSTVWY"

    class Composition:
        name, torch_device = "composition", torch.device("cpu")

        def features(self, key: Any, sequences: Any, level: str, ids: Any = None) -> Any:
            rows = [[q.count(c) / len(q) for c in letters] + [len(q) / 100.0] for q in sequences]
            return torch.tensor(rows, dtype=torch.float64).unbind(0)

    out = {}
    for spec in make_tasks(job["tasks"], 1, job["l2"]):
        name, title = spec.pop("name"), spec.pop("title")
        if name == MLM:
            continue
        spec.pop("epochs", None)
        metric = dict(GATE_ROWS)[title]
        out[title] = create("task", name, **spec).run(Composition(), seed=0)[metric]
    return out


def load_original(name: str = ORIGINAL_MODEL) -> Any:
    """AntiBERTy as an adapter: ``load_model("antiberty")``; before that name is registered, its
    package folder with a per-character WordLevel tokenizer (``[CLS] $A [SEP]``)."""
    from biocoreset.modelio import load_model

    try:
        return load_model(name, device=None)
    except Exception:
        pass
    import antiberty
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import BertForMaskedLM, PreTrainedTokenizerFast

    from biocoreset.plugins import create

    root = Path(antiberty.__file__).parent / "trained_models"
    vocab = {t: i for i, t in enumerate((root / "vocab.txt").read_text().split())}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    model = BertForMaskedLM.from_pretrained(str(root / "AntiBERTy_md_smooth"))
    return create("adapter", "hf", model=model, tokenizer=fast)


def score_job(job: dict[str, Any]) -> dict[str, Any]:
    """Score the corpus with the original (or the weak) model at ``mask_draws`` with every draw
    kept; return the timing and the settings. A finished score file is read, never rescored (the
    scoring of the full corpus takes hours: an interrupted one resumes from its shards)."""
    import torch

    torch.set_num_threads(int(job.get("threads", 1)))
    from biocoreset import api
    from biocoreset.modelio import load_model
    from biocoreset.store.result import load_scores

    out = Path(job["out"])
    if out.exists():
        meta = load_scores(out).metadata
        if meta.get("mask_draws") != job["mask_draws"] or not meta.get("keep_draws"):
            raise ReplicationError(
                f"{out} holds scores at mask_draws={meta.get('mask_draws')} without every draw "
                f"kept; this round needs mask_draws={job['mask_draws']} with keep_draws: move the "
                "file away and rerun."
            )
        return _score_info(job, meta)
    if job["model"] == ORIGINAL_MODEL:
        adapter = load_original()
    else:
        adapter = load_model(job["model"], adapter="esmc", device=None)
    load_start = _load()
    api.score(
        adapter,
        job["corpus"],
        output=out,
        batch_size=job["batch_size"],
        mask_draws=job["mask_draws"],
        keep_draws=True,
        seed=0,
        progress=False,
        **({} if job.get("shard_size") is None else {"shard_size": job["shard_size"]}),
        **({} if job.get("subset") is None else {"subset": job["subset"]}),
    )
    info = _score_info(job, load_scores(out).metadata)
    info["load_start"], info["load_end"] = load_start, _load()
    return info


def _score_info(job: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    seconds = meta.get("seconds")
    n = meta.get("num_sequences") or 0
    return {
        "model": job["model"],
        "mask_draws": meta.get("mask_draws"),
        "keep_draws": meta.get("keep_draws"),
        "n": n,
        "seconds": seconds,
        "seconds_per_sequence_draw": (
            round(seconds / (n * meta["mask_draws"]), 4) if seconds and n else None
        ),
        "resumed_shards": meta.get("resumed_shards"),
        "subset_size": meta.get("subset_size"),
        "stability": meta.get("stability"),
        "timing": meta.get("timing"),
    }


# -- the driver -----------------------------------------------------------------------------------


class Runner:
    """Runs the stages in order, recording the wall time (and load average) of each."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.profile = PROFILES["quick" if args.quick else "full"]
        self.out = Path(args.out)
        self.jobs = int(args.jobs)
        self._pool: cf.ProcessPoolExecutor | None = None
        self.arms = tuple(args.arms)
        self.times: dict[str, float] = {}
        self.corpus = self.out / "corpus.fasta"
        self.tasks = self.out / "tasks"
        self.seeds = tuple(self.profile["seeds"])

    def _stage(self, name: str, fn: Any, *a: Any) -> Any:
        t0 = time.time()
        print(f"[{name}]", flush=True)
        _log(self.out, {"stage": name, "event": "start"})
        value = fn(*a)
        seconds = time.time() - t0
        self.times[name] = round(self.times.get(name, 0.0) + seconds, 1)
        _log(self.out, {"stage": name, "event": "end", "seconds": round(seconds, 1)})
        print(f"[{name}] {seconds:.0f} s", flush=True)
        return value

    def _map(self, fn: Any, jobs: list[dict[str, Any]]) -> list[Any]:
        """``fn`` over ``jobs`` in the run's worker processes (started once: each start imports
        torch and the models' packages again)."""
        if self.jobs <= 1 or len(jobs) <= 1:
            return [fn(j) for j in jobs]
        if self._pool is None:
            ctx = mp.get_context("spawn")
            self._pool = cf.ProcessPoolExecutor(self.jobs, mp_context=ctx)
        return list(self._pool.map(fn, jobs))

    # stage 1
    def build(self) -> dict[str, Any]:
        from biocoreset.bench.antibody.heldout import write_task_data
        from biocoreset.bench.antibody.repertoire import (
            RepertoireConfig,
            build_repertoire,
            read_repertoire,
            write_fasta,
        )

        info_path = self.out / "corpus.json"
        names = ("train", "train-simulated", "test-simulated", "test-germline", "mlm")
        if info_path.exists() and all((self.tasks / f"{n}.tsv").exists() for n in names):
            return _read_json(info_path)
        cfg = RepertoireConfig(n=self.profile["corpus_n"], seed=int(self.args.seed))
        # a run of an older driver has the corpus but not every task file: write the tasks only
        info = _read_json(info_path) if info_path.exists() and self.corpus.exists() else None
        if info is None:
            records, report = build_repertoire(cfg)
            write_fasta(records, self.corpus)
            info = {
                "n": len(records),
                "drawn": report.drawn,
                "dropped": report.dropped,
                "mapping": report.mapping,
            }
        paths = write_task_data(
            self.tasks,
            read_repertoire(self.corpus),
            cfg,
            n_train=self.profile["n_train"],
            n_test=self.profile["n_test"],
        )
        info["task_rows"] = {k: len(p.read_text().splitlines()) - 1 for k, p in paths.items()}
        _write_json(info_path, info)
        return info

    def _pretrain_jobs(self, arms: dict[str, Path | None]) -> list[dict[str, Any]]:
        """One job per arm and seed; an arm's coreset path may hold ``{seed}``."""
        jobs = []
        for arm, ids in arms.items():
            for seed in self.seeds:
                jobs.append(
                    {
                        "out": str(self.out / "models" / f"{arm}-s{seed}"),
                        "corpus": str(self.corpus),
                        "ids": None if ids is None else str(ids).replace("{seed}", str(seed)),
                        "seed": seed,
                        "config": self.profile["pretrain"],
                        "adapter_options": adapter_options(self.profile),
                    }
                )
        return jobs

    def _eval_jobs(self, arms: list[str]) -> list[dict[str, Any]]:
        jobs = []
        for arm in arms:
            for seed in self.seeds:
                name = f"{arm}-s{seed}"
                jobs.append(
                    {
                        "name": name,
                        "arm": arm,
                        "pretrain_seed": seed,
                        "init_seed": seed,
                        "model": None if arm == "untrained" else str(self.out / "models" / name),
                        "out": str(self.out / "eval" / f"{name}.json"),
                        "adapter_options": adapter_options(self.profile),
                        "tasks": str(self.tasks),
                        "epochs": self.profile["task_epochs"],
                        "l2": self.profile["probe_l2"],
                        "seeds": list(self.profile["head_seeds"]),
                        "mask_seeds": list(self.profile["mask_seeds"]),
                    }
                )
        return jobs

    def _train_and_eval(self, arms: dict[str, Path | None]) -> list[dict[str, Any]]:
        """Pretrain (what is missing) and evaluate ``arms``; every job is logged."""
        for info in self._map(pretrain_job, self._pretrain_jobs(arms)):
            _log(self.out, {"job": "pretrain", **_job_log(info)})
        parts = self._map(eval_job, self._eval_jobs(list(arms)))
        for part in parts:
            if part:
                r = part[0]
                _log(
                    self.out,
                    {
                        "job": "evaluate",
                        "model": f"{r['arm']}-s{r['pretrain_seed']}",
                        "seconds": r.get("eval_seconds"),
                        "load_start": r.get("load_start"),
                        "load_end": r.get("load_end"),
                    },
                )
        return [r for part in parts for r in part]

    # stage 2
    def gate(self) -> dict[str, Any]:
        rows = self._train_and_eval({"random-100": None}) + self._eval_untrained()
        pre = [
            _read_json(self.out / "models" / f"random-100-s{s}" / "pretrain.json")
            for s in self.seeds
        ]
        gate = gate_figures(rows, "random-100")
        gate["pretrain_seconds"] = [p.get("wall_seconds") for p in pre]
        gate["pretrain_steps"] = pre[0].get("steps", self.profile["pretrain"]["max_steps"])
        gate["final_train_loss"] = [p.get("final_loss") for p in pre]
        comp = composition_job({"tasks": str(self.tasks), "l2": self.profile["probe_l2"]})
        for key, value in comp.items():  # information beside the rule, not part of it
            gate["downstream"][key]["composition"] = value
        _write_json(self.out / "gate.json", gate)
        return gate

    def _eval_untrained(self) -> list[dict[str, Any]]:
        return [r for part in self._map(eval_job, self._eval_jobs(["untrained"])) for r in part]

    # stage 3
    def headroom(self) -> dict[str, Any]:
        """Random at every budget against Random 100% on the primaries; the primary budget."""
        sel_dir = self.out / "selections"
        sel_dir.mkdir(parents=True, exist_ok=True)
        arms: dict[str, Path | None] = {"random-100": None}
        for frac in self.profile["budgets"]:
            self._select_arm(sel_dir, "random", frac, {})
            arms[f"random-{_pct(frac)}"] = sel_dir / f"random-{_pct(frac)}-s{{seed}}.txt"
        rows = self._train_and_eval(arms)
        check = headroom_figures(rows, self.profile["budgets"])
        _write_json(self.out / "headroom.json", check)
        return check

    @property
    def primary_budget(self) -> float:
        path = self.out / "headroom.json"
        if not path.exists():
            raise ReplicationError(f"{path} is missing: the headroom check comes first.")
        return float(_read_json(path)["primary_budget"])

    # stage 4
    def clusters(self) -> dict[str, Any]:
        """MMseqs2 clusters of the corpus at the fixed settings (computed once)."""
        from biocoreset.data.clusters import cluster_to_file

        tsv, info_path = self.out / "clusters" / "clusters.tsv", self.out / "clusters.json"
        if tsv.exists() and info_path.exists():
            return _read_json(info_path)
        tsv.parent.mkdir(parents=True, exist_ok=True)
        info = cluster_to_file(self.corpus, tsv, threads=1, force=True, **self.profile["clusters"])
        _write_json(info_path, info)
        return info

    # stage 5
    def score(self) -> dict[str, Any]:
        whole = self.out / "models" / f"random-100-s{self.seeds[0]}"
        needed = {SELECTION_PLAN[a][0] for a in self.arms} - {None}
        jobs = [
            {"name": name, "model": model, "threads": threads}
            for name, model, threads in (
                ("antiberty", ORIGINAL_MODEL, 2),
                ("weak", str(whole), 1),
            )
            if name in needed
        ]
        for j in jobs:
            j["mask_draws"] = len(self.seeds)
            j["out"] = str(self.out / "scores" / f"{j['name']}.parquet")
            j["corpus"] = str(self.corpus)
            j["batch_size"] = self.profile["score_batch_size"]
            j["shard_size"] = self.profile["score_shard_size"]
            j["subset"] = self.profile["score_subset"]
        (self.out / "scores").mkdir(parents=True, exist_ok=True)
        out = {}
        for j in jobs:  # one at a time: each takes the cores it is given
            out[j["name"]] = info = score_job(j)
            _log(self.out, {"job": "score", "name": j["name"], **_job_log(info)})
        return out

    # stage 6
    def arms_at(self, frac: float) -> list[str]:
        """The arms run at budget ``frac`` (the exploratory ones at the primary budget only)."""
        arms = [a for a in PRIMARY_ARMS if a in self.arms]
        if frac == self.primary_budget:
            arms += [a for a in EXPLORATORY_ARMS if a in self.arms]
        return arms

    def select(self) -> dict[str, Path | None]:
        sel_dir = self.out / "selections"
        sel_dir.mkdir(parents=True, exist_ok=True)
        arms: dict[str, Path | None] = {"random-100": None}
        for frac in self.profile["budgets"]:
            for arm in self.arms_at(frac):
                self._select_arm(sel_dir, arm, frac, self._scores())
                arms[f"{arm}-{_pct(frac)}"] = sel_dir / f"{arm}-{_pct(frac)}-s{{seed}}.txt"
        return arms

    def _scores(self) -> dict[str, Any]:
        from biocoreset.store.result import ScoreResult

        if not hasattr(self, "_score_cache"):
            self._score_cache = {
                p.stem: ScoreResult.load(p) for p in sorted((self.out / "scores").glob("*.parquet"))
            }
        return self._score_cache

    def _select_arm(self, sel_dir: Path, arm: str, frac: float, scores: dict[str, Any]) -> None:
        """Write ``{arm}-{budget}-s{seed}.txt`` (one id per line) for every pretraining seed."""
        import numpy as np

        from biocoreset import select

        source, method, options, per_draw = SELECTION_PLAN[arm]
        ids = corpus_ids(self.corpus)
        opts = dict(options)
        if method == "cluster":
            opts["clusters"] = str(self.out / "clusters" / "clusters.tsv")
        for k, seed in enumerate(self.seeds):
            path = sel_dir / f"{arm}-{_pct(frac)}-s{seed}.txt"
            if path.exists():
                continue
            if source is None:
                values: Any = np.zeros(len(ids))
                if method == "cluster":
                    from biocoreset.store.result import ScoreResult

                    n = len(ids)
                    values = ScoreResult(
                        ids=ids, scores=np.zeros(n), loss=np.zeros(n), length=[1] * n
                    )
            else:
                values = scores[source].draw(k) if per_draw else scores[source]
            sel = select(values, method, budget=frac, seed=seed, **opts)
            chosen = sel.ids if sel.ids is not None else [ids[i] for i in sel.indices]
            tmp = path.with_suffix(".tmp")
            tmp.write_text("".join(i + "\n" for i in chosen), encoding="utf-8")
            os.replace(tmp, path)

    # stage 7
    def train_and_eval(self, arms: dict[str, Path | None]) -> list[dict[str, Any]]:
        rows = self._stage("pretrain and evaluate", self._train_and_eval, arms)
        return rows + self._eval_untrained()

    def run(self) -> int:
        try:
            return self._run()
        finally:
            if self._pool is not None:
                self._pool.shutdown()

    def _run(self) -> int:
        self.out.mkdir(parents=True, exist_ok=True)
        t_all = time.time()
        result: dict[str, Any] = {
            "profile": "quick" if self.args.quick else "full",
            "settings": self.profile,
            "original_model": ORIGINAL_MODEL,
            "arms": list(self.arms),
        }
        result["corpus"] = self._stage("corpus", self.build)
        if self.args.corpus_only:
            result["stopped"] = "--corpus-only"
            _write_json(self.out / "results.json", result)
            print(f"wrote {self.corpus}", flush=True)
            return 0
        gate = self._stage("gate", self.gate)
        result["gate"] = gate
        print(json.dumps(gate["summary"], indent=2), flush=True)
        passed = gate["passed"] or self.args.ignore_gate
        if self.args.gate_only:
            result["stopped"] = "--gate-only"
        elif not passed and not self.args.select_only:
            result["stopped"] = "the gate failed (see gate.json); rerun with --ignore-gate to go on"
        else:
            result["headroom"] = self._stage("headroom", self.headroom)
            if self.args.headroom_only:
                result["stopped"] = "--headroom-only"
            else:
                self._scored_stages(result)
        self.times["total"] = round(time.time() - t_all, 1)
        result["times"] = self.times
        _write_json(self.out / "results.json", result)
        if self.args.results:
            _write_json(Path(self.args.results), result)
        print(f"wrote {self.out / 'results.json'} ({self.times['total']:.0f} s)", flush=True)
        return 0 if passed or self.args.gate_only or self.args.select_only else 3

    def _scored_stages(self, result: dict[str, Any]) -> None:
        if any(SELECTION_PLAN[a][1] == "cluster" for a in self.arms):
            result["clusters"] = self._stage("clusters", self.clusters)
        result["scoring"] = self._stage("score", self.score)
        arms = self._stage("select", self.select)
        sel_dir = self.out / "selections"
        result["coverage"] = self._stage(
            "coverage", coverage, self.corpus, sel_dir, self.profile, self.seeds
        )
        if self.args.select_only:  # scores and coresets do not depend on the gate
            result["stopped"] = "--select-only"
            return
        rows = self.train_and_eval(arms)
        result["rows"] = rows
        result["summary"] = summarise(rows)
        runs = {
            p.name: _read_json(p / "pretrain.json")
            for p in sorted((self.out / "models").iterdir())
            if (p / "pretrain.json").exists()
        }
        result["pretrain_runs"] = runs
        result["arm_extras"] = arm_extras(self.corpus, sel_dir, runs, self.seeds)
        result["comparisons"] = comparisons(rows, self.profile["budgets"], self.primary_budget)
        result["primary_budget"] = self.primary_budget
        plot_primaries(rows, self.out / "primaries.png")
        (self.out / "results.md").write_text(report_markdown(result), encoding="utf-8")


def _job_log(info: dict[str, Any]) -> dict[str, Any]:
    keys = ("model", "seed", "wall_seconds", "seconds", "steps", "load_start", "load_end", "out")
    return {k: info[k] for k in keys if k in info}


def corpus_ids(corpus: Path) -> list[str]:
    """The record ids of a FASTA corpus, in file order."""
    text = corpus.read_text(encoding="utf-8")
    return [ln[1:].split()[0] for ln in text.splitlines() if ln[:1] == ">"]


# -- summaries ----------------------------------------------------------------------------------------


def _mean_sd(values: list[float]) -> tuple[float, float, int]:
    vals = [v for v in values if v == v]
    if not vals:
        return float("nan"), float("nan"), 0
    return statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0, len(vals)


def _by_model(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[int, float]]:
    """(arm, task key, metric) → pretraining seed → value (mean over head seeds)."""
    acc: dict[tuple[str, str, str], dict[int, list[float]]] = {}
    for r in rows:
        key = (r["arm"], r.get("title") or r["task"], r["metric"])
        acc.setdefault(key, {}).setdefault(int(r["pretrain_seed"]), []).append(float(r["value"]))
    return {k: {s: statistics.fmean(v) for s, v in d.items()} for k, d in acc.items()}


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean ± sd over pretraining seeds of every (arm, task, metric)."""
    out = []
    for (arm, task, metric), per_seed in sorted(_by_model(rows).items()):
        m, sd, n = _mean_sd(list(per_seed.values()))
        out.append({"arm": arm, "task": task, "metric": metric, "mean": m, "sd": sd, "n": n})
    return out


GATE_ROWS = tuple(
    [(f"{t}:{s}", "acc") for t in CLASS_TASKS for s in TEST_SETS]
    + [(f"{t}:test-simulated", m) for t, m in RECOMBINED_TASKS]
)
"""The gate's downstream rows: (task:test set, metric)."""


def gate_figures(rows: list[dict[str, Any]], arm: str) -> dict[str, Any]:
    """Gate: ``arm``'s held-out masked loss ``>= GATE_NATS`` below letter frequencies, and ``arm``
    above the untrained architecture by more than twice the pooled sd on a majority of
    :data:`GATE_ROWS`. Each side's mean and sd are over its models (pretraining seeds of ``arm``,
    initialisation seeds of the untrained network), each model's value the mean over head seeds."""
    per_model = _by_model(rows)

    def stat(which: str, task: str, metric: str) -> tuple[float, float, int]:
        return _mean_sd(list(per_model.get((which, task, metric), {}).values()))

    mlm = "antibody-mlm-buckets"
    loss, freq, unt_loss = (
        stat(arm, mlm, "loss"),
        stat(arm, mlm, "freq_loss"),
        stat("untrained", mlm, "loss"),
    )
    summary: dict[str, Any] = {
        "heldout_loss": loss[0],
        "heldout_loss_sd": loss[1],
        "letter_frequency_loss": freq[0],
        "untrained_loss": unt_loss[0],
        "nats_below_letter_frequency": freq[0] - loss[0],
    }
    for b in ("common", "medium", "rare", "unseen"):
        summary[f"loss_{b}"] = stat(arm, mlm, f"loss_{b}")[0]
    downstream = {}
    wins = 0
    for key, metric in GATE_ROWS:
        p, u = stat(arm, key, metric), stat("untrained", key, metric)
        pooled = ((p[1] ** 2 + u[1] ** 2) / 2) ** 0.5
        beats = p[0] - u[0] > 2 * pooled
        wins += int(beats)
        downstream[key] = {
            "metric": metric,
            "pretrained": p[0],
            "pretrained_sd": p[1],
            "untrained": u[0],
            "untrained_sd": u[1],
            "n": [p[2], u[2]],
            "beyond_2_pooled_sd": beats,
        }
    loss_ok = summary["nats_below_letter_frequency"] >= GATE_NATS
    need = len(GATE_ROWS) // 2 + 1
    summary["downstream_wins"] = f"{wins}/{len(downstream)}"
    decisive = all(downstream[k]["beyond_2_pooled_sd"] for k in DECISIVE_GATE_ROWS)
    return {
        "passed": bool(loss_ok and decisive),
        "decision": {
            "rule": "issue 32 (post-hoc, recorded before any arm ran): the loss criterion and "
            "both rows that measure pretraining beyond twice the pooled sd",
            "rows": list(DECISIVE_GATE_ROWS),
            "passed": bool(loss_ok and decisive),
        },
        "majority_rule": {"passed": bool(loss_ok and wins >= need), "wins": wins, "needed": need},
        "loss_ok": bool(loss_ok),
        "downstream_ok": wins >= need,
        "downstream_needed": need,
        "summary": summary,
        "downstream": downstream,
    }


def _seed_values(rows: list[dict[str, Any]], arm: str, task: str, metric: str) -> list[float]:
    per_seed = _by_model(rows).get((arm, task, metric), {})
    return [per_seed[s] for s in sorted(per_seed)]


def _compare(rows: list[dict[str, Any]], a: str, b: str, task: str, metric: str) -> dict[str, Any]:
    from biocoreset.bench.compare import compare_arms

    xs, ys = _seed_values(rows, a, task, metric), _seed_values(rows, b, task, metric)
    if len(xs) < 2 or len(ys) < 2:
        return {"a": a, "b": b, "missing": True}
    return {"a": a, "b": b, **compare_arms(xs, ys).as_dict()}


def headroom_figures(rows: list[dict[str, Any]], budgets: tuple[float, ...]) -> dict[str, Any]:
    """Random at each budget against Random 100% on both primaries; the primary budget: the
    smallest budget when Random at the largest is within the minimum detectable effect (twice the
    pooled sd) of Random 100% on both primaries, else the largest."""
    largest, smallest = max(budgets), min(budgets)
    out: dict[str, Any] = {"comparisons": {}}
    for frac in budgets:
        arm = f"random-{_pct(frac)}"
        out["comparisons"][arm] = {
            name: _compare(rows, arm, "random-100", task, metric)
            for name, task, metric, _ in PRIMARIES
        }
    top = out["comparisons"][f"random-{_pct(largest)}"]
    within = all(not c.get("missing") and not c["beyond"] for c in top.values())
    out["largest_within_mde"] = within
    out["primary_budget"] = smallest if within else largest
    out["rule"] = (
        f"Random {largest:.0%} within 2 x pooled sd of Random 100% on both primaries -> "
        f"{smallest:.0%} is the primary budget, else {largest:.0%}"
    )
    return out


def comparisons(
    rows: list[dict[str, Any]], budgets: tuple[float, ...], primary_budget: float
) -> dict[str, Any]:
    """The pre-registered primary comparisons at each budget (each primary and the verdict), and
    the exploratory arms against Random (and CCI) at the primary budget."""
    import attrs

    from biocoreset.bench.compare import ArmComparison, verdict

    def pair(a: str, b: str) -> dict[str, Any]:
        per = {name: _compare(rows, a, b, task, metric) for name, task, metric, _ in PRIMARIES}
        if any(c.get("missing") for c in per.values()):
            return {**per, "verdict": "not run"}
        (n1, _, _, hi1), (n2, _, _, hi2) = PRIMARIES
        fields = {f.name for f in attrs.fields(ArmComparison)}
        c1 = ArmComparison(**{k: v for k, v in per[n1].items() if k in fields})
        c2 = ArmComparison(**{k: v for k, v in per[n2].items() if k in fields})
        per["verdict"] = verdict(c1, c2, first_higher_is_better=hi1, second_higher_is_better=hi2)
        return per

    out: dict[str, Any] = {"primary": {}, "exploratory": {}}
    for frac in budgets:
        b = _pct(frac)
        for a, ref in COMPARISONS:
            out["primary"][f"{a}-{b} vs {ref}-{b}"] = pair(f"{a}-{b}", f"{ref}-{b}")
    b = _pct(primary_budget)
    for arm in EXPLORATORY_ARMS:
        ref = "cluster" if arm == "cluster-inf" else "random"
        out["exploratory"][f"{arm}-{b} vs {ref}-{b}"] = pair(f"{arm}-{b}", f"{ref}-{b}")
        if arm != "cluster-inf":
            out["exploratory"][f"{arm}-{b} vs cci-{b}"] = pair(f"{arm}-{b}", f"cci-{b}")
    out["exploratory"][f"random-100 vs random-{b}"] = pair("random-100", f"random-{b}")
    return out


def arm_extras(
    corpus: Path, selections: Path, runs: dict[str, Any], seeds: tuple[int, ...]
) -> dict[str, Any]:
    """Per arm: the final training loss of each seed, the distinct sequences of each seed's
    coreset (the corpus has exact duplicates), the heavy-chain fraction and mean length of each
    coreset (the corpus: 49% heavy), and the mean Jaccard overlap of its seeds' coresets."""
    from itertools import combinations

    from biocoreset.bench.antibody.repertoire import read_repertoire

    seq = _sequences(corpus)
    heavy = {r.id: r.chain == "H" for r in read_repertoire(corpus)}
    out: dict[str, Any] = {}
    arms = sorted({name.rsplit("-s", 1)[0] for name in runs})
    for arm in arms:
        row: dict[str, Any] = {
            "final_train_loss": [runs.get(f"{arm}-s{s}", {}).get("final_loss") for s in seeds]
        }
        sets = []
        for s in seeds:
            path = selections / f"{arm}-s{s}.txt"
            if path.exists():
                sets.append({i for i in path.read_text().split() if i})
        if sets:
            row["size"] = [len(x) for x in sets]
            row["distinct_sequences"] = [len({seq[i] for i in x}) for x in sets]
            row["heavy_fraction"] = [statistics.fmean(heavy[i] for i in x) for x in sets]
            row["mean_length"] = [statistics.fmean(len(seq[i]) for i in x) for x in sets]
            pairs = [len(x & y) / len(x | y) for x, y in combinations(sets, 2)]
            row["jaccard_between_seeds"] = statistics.fmean(pairs) if pairs else None
        out[arm] = row
    return out


def _sequences(corpus: Path) -> dict[str, str]:
    seqs: dict[str, str] = {}
    rid = None
    for line in corpus.read_text(encoding="utf-8").splitlines():
        if line.startswith(">"):
            rid = line[1:].split()[0]
            seqs[rid] = ""
        elif rid is not None:
            seqs[rid] += line.strip()
    return seqs


def plot_primaries(rows: list[dict[str, Any]], path: Path) -> None:
    """Both primaries per arm, mean with the seeds' sd as error bars (and each seed as a dot)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per_model = _by_model(rows)
    arms = sorted({a for a, _, _ in per_model if a != "untrained"}, key=_arm_order)
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.35 * len(arms) + 1.5), sharey=True)
    for ax, (name, task, metric, higher) in zip(axes, PRIMARIES, strict=True):
        for y, arm in enumerate(arms):
            vals = list(per_model.get((arm, task, metric), {}).values())
            if not vals:
                continue
            m, sd, _ = _mean_sd(vals)
            ax.errorbar(m, y, xerr=sd, fmt="o", color="C0", capsize=3)
            ax.plot(vals, [y] * len(vals), ".", color="C1", alpha=0.6)
        ax.set_title(f"{name}: {task} {metric} ({'higher' if higher else 'lower'} is better)")
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(arms)), arms)
    axes[0].invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _ms(c: dict[str, Any], side: str) -> str:
    return f"{c[f'mean_{side}']:.4f} ± {c[f'sd_{side}']:.4f}"


def _comparison_rows(table: dict[str, Any]) -> list[str]:
    lines = [
        "| comparison | outcome | a | b | gap (a − b) | 2 × pooled sd | Welch t | 95% CI "
        "| beyond? | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, per in table.items():
        for name, *_ in PRIMARIES:
            c = per[name]
            if c.get("missing"):
                lines.append(f"| {key} | {name} | – | – | – | – | – | – | – | not run |")
                continue
            lines.append(
                f"| {key} | {name} | {_ms(c, 'a')} | {_ms(c, 'b')} | {c['gap']:+.4f} "
                f"| {c['two_pooled_sd']:.4f} | {c['welch_t']:+.2f} "
                f"| [{c['ci_low']:+.4f}, {c['ci_high']:+.4f}] | {'yes' if c['beyond'] else 'no'} "
                f"| {per['verdict'] if name == PRIMARIES[0][0] else ''} |"
            )
    return lines


REPORT_EXTRA_ROWS = (
    ("V family (sim.), expl.", "antibody-v-family:test-simulated", "acc"),
    ("rare-bucket loss, expl.", MLM, "loss_rare"),
)
"""Exploratory per-arm figures of the report (label, task row, metric)."""


def _stat_cells(stats: dict[tuple[str, str, str], Any], arm: str, cols: Any) -> list[str]:
    """``mean ± sd`` of ``arm`` for each (label, task row, metric) of ``cols`` (``–`` if absent)."""
    cells = []
    for _, task, metric in cols:
        r = stats.get((arm, task, metric))
        cells.append("–" if r is None else f"{r['mean']:.4f} ± {r['sd']:.4f}")
    return cells


def report_markdown(result: dict[str, Any]) -> str:
    """``results.json`` as Markdown tables: the primary and exploratory comparisons (each side's
    mean ± sd, the gap, twice the pooled sd, Welch's t, the 95% CI and the verdict), and per arm the
    primaries, two exploratory figures, the final training loss, the distinct sequences and the
    seeds' Jaccard overlap."""
    comp = result["comparisons"]
    lines = ["## Primary comparisons", "", *_comparison_rows(comp["primary"]), ""]
    lines += ["## Exploratory comparisons", "", *_comparison_rows(comp["exploratory"]), ""]
    stats = {(r["arm"], r["task"], r["metric"]): r for r in result["summary"]}
    cols = [(name, task, metric) for name, task, metric, _ in PRIMARIES] + list(REPORT_EXTRA_ROWS)
    head = " | ".join(c[0] for c in cols)
    lines += [
        "## Per arm (mean ± sd over pretraining seeds)",
        "",
        f"| arm | {head} | final train loss | distinct sequences | heavy chains "
        "| Jaccard between seeds |",
        "|---" * (len(cols) + 5) + "|",
    ]
    extras = result.get("arm_extras", {})
    for arm in sorted({r["arm"] for r in result["summary"]}, key=_arm_order):
        cells = _stat_cells(stats, arm, cols)
        ex = extras.get(arm, {})
        losses = [x for x in ex.get("final_train_loss", []) if x is not None]
        loss = ", ".join(f"{x:.3f}" for x in losses) or "–"
        distinct = ", ".join(str(x) for x in ex.get("distinct_sequences", [])) or "–"
        jac = ex.get("jaccard_between_seeds")
        jac_cell = "–" if jac is None else f"{jac:.3f}"
        heavy = ex.get("heavy_fraction")
        heavy_cell = "–" if not heavy else f"{statistics.fmean(heavy):.0%}"
        lines.append(
            f"| {arm} | {' | '.join(cells)} | {loss} | {distinct} | {heavy_cell} | {jac_cell} |"
        )
    lines += [
        "",
        "## Not outcomes (reported, not compared: saturated, composition-bound or too small)",
        "",
        "| arm | " + " | ".join(c[0] for c in NOT_OUTCOME_ROWS) + " |",
        "|---" * (len(NOT_OUTCOME_ROWS) + 1) + "|",
    ]
    for arm in sorted({r["arm"] for r in result["summary"]}, key=_arm_order):
        cells = _stat_cells(stats, arm, NOT_OUTCOME_ROWS)
        lines.append(f"| {arm} | {' | '.join(cells)} |")
    if "coverage" in result:
        lines += ["", *_coverage_rows(result["coverage"])]
    return "\n".join(lines) + "\n"


NOT_OUTCOME_ROWS = (
    ("chain (germline)", "antibody-chain:test-germline", "acc"),
    ("chain (simulated)", "antibody-chain:test-simulated", "acc"),
    ("species (germline)", "antibody-species:test-germline", "acc"),
    ("species (simulated)", "antibody-species:test-simulated", "acc"),
    ("V family (germline)", "antibody-v-family:test-germline", "acc"),
    ("CDR3 length ρ", "antibody-cdr3-length:test-simulated", "spearman"),
)
"""The rows the pre-registration named "not outcomes" (label, task row, metric)."""


def _coverage_rows(cov: dict[str, Any]) -> list[str]:
    """V genes per coreset (mean over its seeds) and per frequency bucket, beside random draws."""
    keys = ("genes", "common", "medium", "rare")
    corpus = cov["corpus"]
    lines = [
        "## V-gene coverage (exploratory; mean over the seeds' coresets)",
        "",
        "| coreset | " + " | ".join(f"{k} (corpus {corpus[k]})" for k in keys) + " |",
        "|---" * (len(keys) + 1) + "|",
    ]
    for budget, d in cov["random_draws"].items():
        cells = [f"{d[k]['mean']:.1f} ± {d[k]['sd']:.1f}" for k in keys]
        lines.append(f"| {d['draws']} random draws, {budget} | {' | '.join(cells)} |")
    arms: dict[str, list[dict[str, int]]] = {}
    for name, counts in cov.items():
        if name not in ("corpus", "random_draws"):
            arms.setdefault(name.rsplit("-s", 1)[0], []).append(counts)
    for arm in sorted(arms, key=_arm_order):
        cells = [f"{statistics.fmean(c[k] for c in arms[arm]):.1f}" for k in keys]
        lines.append(f"| {arm} | {' | '.join(cells)} |")
    return lines


def _arm_order(arm: str) -> tuple[int, str]:
    name, _, budget = arm.rpartition("-")
    if arm == "random-100":
        return (0, arm)
    order = ARMS.index(name) if name in ARMS else len(ARMS)
    return (1 + int(budget != "10pct"), f"{order:02d}{name}")


def coverage(
    corpus: Path, selections: Path, profile: dict[str, Any], seeds: tuple[int, ...]
) -> dict[str, Any]:
    """V genes each coreset contains, overall and per frequency bucket, beside the same counts for
    ``coverage_draws`` random coresets of each budget (mean and sd): exploratory."""
    import numpy as np

    from biocoreset import select
    from biocoreset.bench.antibody.heldout import frequency_buckets
    from biocoreset.bench.antibody.repertoire import read_repertoire

    records = read_repertoire(corpus)
    buckets = frequency_buckets(records)
    gene = {r.id: (r.species, r.chain, r.v_gene) for r in records}
    ids = [r.id for r in records]
    names = ("common", "medium", "rare")
    per_bucket = {b: sum(1 for v in buckets.values() if v == b) for b in names}

    def counts(chosen: list[str]) -> dict[str, int]:
        seen = {gene[i] for i in chosen if i in gene}
        return {"size": len(chosen), "genes": len(seen)} | {
            b: sum(1 for g in seen if buckets[g] == b) for b in names
        }

    out: dict[str, Any] = {"corpus": {"genes": len(buckets), **per_bucket}, "random_draws": {}}
    for frac in profile["budgets"]:
        draws = []
        for k in range(int(profile["coverage_draws"])):
            sel = select(np.zeros(len(ids)), "random", budget=frac, seed=10_000 + k)
            draws.append(counts([ids[i] for i in sel.indices]))
        out["random_draws"][_pct(frac)] = {
            key: {
                "mean": statistics.fmean(d[key] for d in draws),
                "sd": _mean_sd([d[key] for d in draws])[1],
            }
            for key in ("genes", *names)
        } | {"draws": len(draws)}
    for path in sorted(selections.glob("*.txt")):
        out[path.stem] = counts([i for i in path.read_text().split() if i])
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="run folder (resumable)")
    p.add_argument("--quick", action="store_true", help="tiny sizes, ~2 minutes (the test's run)")
    stop = p.add_mutually_exclusive_group()
    stop.add_argument(
        "--corpus-only",
        action="store_true",
        help="build the corpus and the task files, then stop (seconds)",
    )
    stop.add_argument("--gate-only", action="store_true", help="stop after the gate")
    stop.add_argument(
        "--headroom-only",
        action="store_true",
        help="stop after the headroom check (Random arms only; it fixes the primary budget)",
    )
    stop.add_argument(
        "--select-only",
        action="store_true",
        help="score and select, write each coreset's V-gene coverage, train no scored arm "
        "(the headroom check still runs: the primary budget decides the exploratory arms)",
    )
    p.add_argument("--ignore-gate", action="store_true", help="go on after a failed gate")
    p.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
    p.add_argument(
        "--arms",
        default=",".join(ARMS),
        help=f"comma-separated arms to run (default all: {','.join(ARMS)}); Random 100%% and "
        "untrained always run",
    )
    p.add_argument("--results", help="also write results.json here")
    args = p.parse_args(argv)
    if args.jobs < 1:
        print(f"error: --jobs {args.jobs}: use 1 or more", file=sys.stderr)
        return 2
    args.arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = sorted(set(args.arms) - set(ARMS))
    if unknown or not args.arms:
        print(
            f"error: --arms {unknown or '(none)'}: choose from {', '.join(ARMS)}", file=sys.stderr
        )
        return 2
    if any(SELECTION_PLAN[a][1] == "cluster" for a in args.arms) and not shutil.which("mmseqs"):
        print(
            "error: the cluster arms need MMseqs2 (`mmseqs` on PATH): install the Debian package "
            "(apt-get install mmseqs2) or bioconda's mmseqs2, or leave cluster and cluster-inf "
            "out of --arms",
            file=sys.stderr,
        )
        return 2
    try:
        return Runner(args).run()
    except ReplicationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

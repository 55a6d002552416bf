#!/usr/bin/env python
"""Third replication round: does influence-guided selection beat random selection on antibodies?

End to end on a simulated antibody repertoire (docs/antibody-corpus.md), on two CPU cores:

1. build the corpus (OLGA recombination models + anarci germlines, held-out V genes excluded) and
   the held-out task data (``biocoreset.bench.antibody.heldout``);
2. the gate: pretrain the whole-corpus model from scratch with every pretraining seed (these are
   the Random 100% arm) and compare it with the untrained architecture (as many initialisation
   seeds): held-out masked loss against the letter-frequency predictor (must be >= 0.3 nats below)
   and the downstream tasks (must beat untrained by more than twice the pooled sd on a majority of
   the 8 task rows). A failed gate stops the round (exit status 3);
3. score the corpus with AntiBERTy (``load_model("antiberty")``; one mask, and ``mask_draws=4``) and
   with the whole-corpus model trained in 2 (the weak scorer), timed separately;
4. select Random, Top-I, CCI, CCI on ``mask_draws`` scores, Top-I and CCI with ``debias="length"``
   at 10% and 1%, and CCI on the weak scorer's scores;
5. pretrain every arm from scratch with 3 seeds and equal compute (the same steps x batch), plus
   Random 100%; evaluate every model and the untrained one on the antibody tasks (V family, chain,
   species on real held-out germline alleles and on held-out simulated domains; J gene and CDR3
   length on held-out simulated domains; converged linear probes on frozen features; masked loss
   per V-gene frequency bucket);
6. write ``results.json`` (every raw value, the summary mean ± sd over pretraining seeds, V-gene
   coverage of every coreset, the stage times).

Usage::

    python examples/replicate_antibody.py --out runs/antibody              # the whole round
    python examples/replicate_antibody.py --out runs/antibody --gate-only  # stages 1-2
    python examples/replicate_antibody.py --out runs/antibody --select-only  # 1-4 and coverage
    python examples/replicate_antibody.py --quick --out /tmp/ab-q          # minutes; in the tests

Every stage skips work whose output exists, so an interrupted run resumes. Only the public API is
used: ``build_repertoire``, ``pretrain``, ``score``, ``select``, ``run_bench``.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import multiprocessing as mp
import os
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
        "score_subset": None,
        "budgets": (0.10, 0.01),
        "task_epochs": 20,
        "probe_l2": 1e-3,
        "seeds": (0, 1, 2),
        "head_seeds": (0,),
        "mask_draws": 4,
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
        "score_subset": 16,
        "budgets": (0.10, 0.05),
        "task_epochs": 2,
        "probe_l2": 0.1,
        "seeds": (0, 1),
        "head_seeds": (0,),
        "mask_draws": 2,
    },
}
GATE_NATS = 0.3
ORIGINAL_MODEL = "antiberty"
CLASS_TASKS = ("antibody-v-family", "antibody-chain", "antibody-species")
TEST_SETS = ("test-germline", "test-simulated")
SELECTION_PLAN = (
    ("topk", "antiberty", "topk", None),
    ("cci", "antiberty", "cci", None),
    ("cci-draws", "antiberty-draws", "cci", None),
    ("topk-len", "antiberty", "topk", "length"),
    ("cci-len", "antiberty", "cci", "length"),
    ("weak-cci", "weak", "cci", None),
)
"""(arm, scores, selector, debias) of every scored arm; Random needs no scores."""
ARMS = ("random", *(a for a, *_ in SELECTION_PLAN))
RECOMBINED_TASKS = (("antibody-j-gene", "acc"), ("antibody-cdr3-length", "spearman"))
"""Tasks with a label only for recombined domains: trained on ``train-simulated``, tested on
``test-simulated``; with their gate metric."""


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
    t0 = time.time()
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
    _write_json(done, info)
    return info


def make_tasks(tasks_dir: str, epochs: int, l2: float = 1e-3) -> list[dict[str, Any]]:
    """The antibody task tables for ``run_bench``: V family, chain and species on both test sets,
    J gene and CDR3 length on the simulated one (probe penalty ``l2``), and the masked loss."""
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
            "name": "antibody-mlm-buckets",
            "title": "antibody-mlm-buckets",
            "train": str(d / "train.tsv"),
            "test": str(d / "mlm.tsv"),
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
    t0 = time.time()
    table = run_bench(
        make_tasks(job["tasks"], job["epochs"], job.get("l2", 1e-3)),
        [backbone],
        seeds=job["seeds"],
        progress=False,
    )
    rows = [attrs.asdict(r) for r in table.rows]
    for r in rows:
        r["arm"], r["pretrain_seed"] = job["arm"], job["pretrain_seed"]
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
        if name == "antibody-mlm-buckets":
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
    """Score the corpus with the original (or the weak) model; return timing and metadata."""
    import torch

    torch.set_num_threads(int(job.get("threads", 1)))
    from biocoreset import api
    from biocoreset.modelio import load_model

    out = Path(job["out"])
    info_path = out.with_suffix(".json")
    if out.exists() and info_path.exists():
        return _read_json(info_path)
    if job["model"] == ORIGINAL_MODEL:
        adapter = load_original()
    else:
        adapter = load_model(job["model"], adapter="esmc", device=None)
    t0 = time.time()
    result = api.score(
        adapter,
        job["corpus"],
        output=out,
        force=out.exists(),
        batch_size=job["batch_size"],
        mask_draws=job["mask_draws"],
        progress=False,
        **({} if job.get("subset") is None else {"subset": job["subset"]}),
    )
    info = {
        "model": job["model"],
        "mask_draws": job["mask_draws"],
        "n": len(result),
        "seconds": round(time.time() - t0, 1),
        "seconds_per_sequence": round((time.time() - t0) / max(1, len(result)), 4),
    }
    _write_json(info_path, info)
    return info


# -- the driver -----------------------------------------------------------------------------------


class Runner:
    """Runs the stages in order, recording the wall time of each."""

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

    def _stage(self, name: str, fn: Any, *a: Any) -> Any:
        t0 = time.time()
        print(f"[{name}]", flush=True)
        value = fn(*a)
        self.times[name] = round(self.times.get(name, 0.0) + time.time() - t0, 1)
        print(f"[{name}] {time.time() - t0:.0f} s", flush=True)
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
        jobs = []
        for arm, ids in arms.items():
            for seed in self.profile["seeds"]:
                jobs.append(
                    {
                        "out": str(self.out / "models" / f"{arm}-s{seed}"),
                        "corpus": str(self.corpus),
                        "ids": None if ids is None else str(ids),
                        "seed": seed,
                        "config": self.profile["pretrain"],
                        "adapter_options": adapter_options(self.profile),
                    }
                )
        return jobs

    def _eval_jobs(self, arms: list[str]) -> list[dict[str, Any]]:
        jobs = []
        for arm in arms:
            for seed in self.profile["seeds"]:
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
                    }
                )
        return jobs

    # stage 2
    def gate(self) -> dict[str, Any]:
        t0 = time.time()
        pre = self._map(pretrain_job, self._pretrain_jobs({"random-100": None}))
        pretrain_seconds = time.time() - t0
        evals = self._eval_jobs(["random-100", "untrained"])
        rows = [r for part in self._map(eval_job, evals) for r in part]
        gate = gate_figures(rows, "random-100")
        gate["pretrain_seconds"] = [p.get("wall_seconds", round(pretrain_seconds, 1)) for p in pre]
        gate["pretrain_steps"] = pre[0].get("steps", self.profile["pretrain"]["max_steps"])
        gate["final_train_loss"] = [p.get("final_loss") for p in pre]
        comp = composition_job({"tasks": str(self.tasks), "l2": self.profile["probe_l2"]})
        for key, value in comp.items():  # information beside the rule, not part of it
            gate["downstream"][key]["composition"] = value
        _write_json(self.out / "gate.json", gate)
        return gate

    # stage 3
    def score(self) -> dict[str, Any]:
        whole = self.out / "models" / f"random-100-s{self.profile['seeds'][0]}"
        jobs = [
            {"name": "antiberty", "model": ORIGINAL_MODEL, "mask_draws": 1},
            {"name": "antiberty-draws", "model": ORIGINAL_MODEL, "mask_draws": None},
            {"name": "weak", "model": str(whole), "mask_draws": 1},
        ]
        needed = {src for arm, src, *_ in SELECTION_PLAN if arm in self.arms}
        jobs = [j for j in jobs if j["name"] in needed]
        for j in jobs:
            j["mask_draws"] = j["mask_draws"] or self.profile["mask_draws"]
            j["out"] = str(self.out / "scores" / f"{j['name']}.parquet")
            j["corpus"] = str(self.corpus)
            j["batch_size"] = self.profile["score_batch_size"]
            j["subset"] = self.profile["score_subset"]
        (self.out / "scores").mkdir(parents=True, exist_ok=True)
        return dict(zip([j["name"] for j in jobs], self._map(score_job, jobs), strict=True))

    # stage 4
    def select(self) -> dict[str, Path | None]:

        from biocoreset import select
        from biocoreset.store.result import ScoreResult

        sel_dir = self.out / "selections"
        sel_dir.mkdir(parents=True, exist_ok=True)
        ids = [ln[1:].split()[0] for ln in self.corpus.read_text().splitlines() if ln[:1] == ">"]
        plan = [p for p in SELECTION_PLAN if p[0] in self.arms]
        scores = {
            n: ScoreResult.load(self.out / "scores" / f"{n}.parquet")
            for n in sorted({src for _, src, *_ in plan})
        }
        arms: dict[str, Path | None] = {"random-100": None}
        for frac in self.profile["budgets"]:
            if "random" in self.arms:
                self._random_draws(sel_dir, ids, frac)
                arms[f"random-{_pct(frac)}"] = sel_dir / f"random-{_pct(frac)}-draw{{seed}}.txt"
            for arm, source, method, debias in plan:
                path = sel_dir / f"{arm}-{_pct(frac)}.txt"
                if not path.exists():
                    sel = select(scores[source], method, budget=frac, debias=debias)
                    assert sel.ids is not None
                    path.write_text("".join(i + "\n" for i in sel.ids))
                arms[f"{arm}-{_pct(frac)}"] = path
        return arms

    def _random_draws(self, sel_dir: Path, ids: list[str], frac: float) -> None:
        import numpy as np

        from biocoreset import select

        for seed in self.profile["seeds"]:  # Random: a fresh draw per pretraining seed
            path = sel_dir / f"random-{_pct(frac)}-draw{seed}.txt"
            if not path.exists():
                sel = select(np.zeros(len(ids)), "random", budget=frac, seed=seed)
                path.write_text("".join(ids[i] + "\n" for i in sel.indices))

    # stage 5
    def train_and_eval(self, arms: dict[str, Path | None]) -> list[dict[str, Any]]:
        jobs = self._pretrain_jobs(arms)
        for j in jobs:
            if j["ids"] is not None and "{seed}" in j["ids"]:
                j["ids"] = j["ids"].replace("{seed}", str(j["seed"]))
        self._stage("pretrain", self._map, pretrain_job, jobs)
        evals = self._eval_jobs([*arms, "untrained"])
        parts = self._stage("evaluate", self._map, eval_job, evals)
        return [r for part in parts for r in part]

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
        gate = self._stage("gate", self.gate)
        result["gate"] = gate
        print(json.dumps(gate["summary"], indent=2), flush=True)
        if self.args.gate_only:
            result["stopped"] = "--gate-only"
        elif not gate["passed"] and not (self.args.ignore_gate or self.args.select_only):
            result["stopped"] = "the gate failed (see gate.json); rerun with --ignore-gate to go on"
        elif self.args.select_only:  # scores and coresets do not depend on the gate
            result["scoring"] = self._stage("score", self.score)
            self._stage("select", self.select)
            result["coverage"] = coverage(self.corpus, self.out / "selections")
            result["stopped"] = "--select-only"
        else:
            result["scoring"] = self._stage("score", self.score)
            arms = self._stage("select", self.select)
            rows = self.train_and_eval(arms)
            result["rows"] = rows
            result["summary"] = summarise(rows)
            result["coverage"] = coverage(self.corpus, self.out / "selections")
            result["pretrain_runs"] = {
                p.name: _read_json(p / "pretrain.json")
                for p in sorted((self.out / "models").iterdir())
                if (p / "pretrain.json").exists()
            }
        self.times["total"] = round(time.time() - t_all, 1)
        result["times"] = self.times
        _write_json(self.out / "results.json", result)
        if self.args.results:
            _write_json(Path(self.args.results), result)
        print(f"wrote {self.out / 'results.json'} ({self.times['total']:.0f} s)", flush=True)
        failed = not gate["passed"] and not (self.args.ignore_gate or self.args.select_only)
        return 3 if failed else 0


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
    return {
        "passed": bool(loss_ok and wins >= need),
        "loss_ok": bool(loss_ok),
        "downstream_ok": wins >= need,
        "downstream_needed": need,
        "summary": summary,
        "downstream": downstream,
    }


def coverage(corpus: Path, selections: Path) -> dict[str, Any]:
    """V genes of the corpus that each coreset contains, overall and per frequency bucket."""
    from biocoreset.bench.antibody.heldout import frequency_buckets
    from biocoreset.bench.antibody.repertoire import read_repertoire

    records = read_repertoire(corpus)
    buckets = frequency_buckets(records)
    gene = {r.id: (r.species, r.chain, r.v_gene) for r in records}
    per_bucket = {
        b: sum(1 for v in buckets.values() if v == b) for b in ("common", "medium", "rare")
    }
    out: dict[str, Any] = {"corpus": {"genes": len(buckets), **per_bucket}}
    for path in sorted(selections.glob("*.txt")):
        seen = {gene[i.strip()] for i in path.read_text().splitlines() if i.strip() in gene}
        row = {"size": len(path.read_text().splitlines()), "genes": len(seen)}
        for b in per_bucket:
            row[b] = sum(1 for g in seen if buckets[g] == b)
        out[path.stem] = row
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="run folder (resumable)")
    p.add_argument("--quick", action="store_true", help="tiny sizes, ~2 minutes (the test's run)")
    p.add_argument("--gate-only", action="store_true", help="stop after the gate")
    p.add_argument(
        "--select-only",
        action="store_true",
        help="score and select, write each coreset's V-gene coverage, train nothing (whatever the "
        "gate says: scores and coresets do not depend on it)",
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
    if args.gate_only and args.select_only:
        print("error: --gate-only and --select-only: choose one", file=sys.stderr)
        return 2
    args.arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = sorted(set(args.arms) - set(ARMS))
    if unknown or not args.arms:
        print(
            f"error: --arms {unknown or '(none)'}: choose from {', '.join(ARMS)}", file=sys.stderr
        )
        return 2
    try:
        return Runner(args).run()
    except ReplicationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

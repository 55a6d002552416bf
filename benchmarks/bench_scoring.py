"""Scoring benchmark: biocoreset's hook engine against the floor, a naive loop and kronfluence.

On the same model, data and batches, each method runs in its own fresh process (so its peak
resident memory is its own) and reports wall time and peak RSS:

(a) ``plain``      a plain batched forward + backward (``loss.sum().backward()``, gradients set to
                   ``None`` after each batch) over the N sequences — the floor;
(b) ``loop``       a naive per-sample loop: one forward + ``torch.autograd.grad`` per sequence;
(c) ``biocoreset`` diagonal empirical Fisher fit on ``D_sub`` and self-influence scores of the N
                   sequences with the hook engine (all trainable parameters, the library default),
    ``bc-linear``  the same on the Linear layers only (kronfluence's parameter set);
(d) ``kronfluence`` kronfluence's ``diagonal`` strategy with ``use_empirical_fisher=True``: factors
                   on ``D_sub`` + self-influence scores of the N sequences (when installed);
    ``paired``     plain fwd+bwd, biocoreset scoring and fitting alternating on the same batches in one
                   process: the per-pair time ratios are robust to load from other jobs.

Then it prints the ratios (per sequence, measured side by side in this run) and the agreement of
``bc-linear`` with ``kronfluence`` (Spearman, max relative difference) at the same absolute λ.

Models: ``small`` (EsmForMaskedLM 4 layers × 256, FFN 1024, 4 heads) and ``rnafm`` (the RNA-FM
architecture at its real size — 12 layers × 640, FFN 5120, 20 heads, 25-token alphabet, absolute
positions, layer norm before the encoder, no token dropout — as a transformers EsmForMaskedLM with
random weights). Data: real RNA from ``../shared/data/rna/corpus`` (Rfam 14.2 seed sequences of at
least 126 nt, shuffled with a fixed seed, cut to 126 nt, so T = 128 with ``<cls>``/``<eos>``),
batch size 16, float32.

Run::

    python -m benchmarks.bench_scoring                 # both models (~35 min on 2 CPU threads)
    python -m benchmarks.bench_scoring --quick         # a few minutes
    python -m benchmarks.bench_scoring --models small --n 512 --subset 128
    python -m benchmarks.bench_scoring --models antiberty --methods paired biocoreset --n 2000 \
        --subset 256 --threads 2     # AntiBERTy at K = 1 on 2,000 germlines (biocoreset[antibody])
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np

from benchmarks._common import cpu_name, esm_mlm, rss_mib
from benchmarks._common import peak_rss_mib as peak_mib
from biocoreset.stats import spearman

DATA = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "rna"
    / "corpus"
    / "rfam14.2_seed_sequences.fasta.gz"
)
RNAFM_TOKENS = [
    "<cls>",
    "<pad>",
    "<eos>",
    "<unk>",
    "A",
    "C",
    "G",
    "U",
    "R",
    "Y",
    "K",
    "M",
    "S",
    "W",
    "B",
    "D",
    "H",
    "V",
    "N",
    "-",
    "<null_1>",
    "<null_2>",
    "<null_3>",
    "<null_4>",
    "<mask>",
]
MODELS = {
    "small": {"layers": 4, "hidden": 256, "heads": 4, "ffn": 1024},
    "rnafm": {"layers": 12, "hidden": 640, "heads": 20, "ffn": 5120},
    # AntiBERTy (antiberty==0.1.3, biocoreset[antibody]): 8 layers x 512, trained weights, on
    # ANARCI germline V domains (91-102 residues; every allele, so repeats are kept).
    "antiberty": {"layers": 8, "hidden": 512, "heads": 8, "ffn": 2048},
}
METHODS = ("plain", "loop", "biocoreset", "bc-linear", "kronfluence", "paired")


# -- data and model (built identically in every worker) ---------------------------------------------


def read_records(
    n: int, length: int = 126, seed: int = 0, path: Path = DATA
) -> list[tuple[str, str]]:
    """``n`` Rfam seed sequences of at least ``length`` nt, shuffled with ``seed``, cut to ``length``."""
    import gzip
    import random

    recs: list[tuple[str, str]] = []
    name, parts = None, []
    with gzip.open(path, "rt") as fh:
        for line in fh:
            if line.startswith(">"):
                if name is not None and sum(map(len, parts)) >= length:
                    recs.append((name, "".join(parts)[:length]))
                name, parts = line[1:].split()[0], []
            else:
                parts.append(line.strip().upper().replace("T", "U"))
    if name is not None and sum(map(len, parts)) >= length:
        recs.append((name, "".join(parts)[:length]))
    random.Random(seed).shuffle(recs)
    if len(recs) < n:
        raise SystemExit(f"only {len(recs)} sequences of >= {length} nt in {path}")
    return recs[:n]


def germline_records(n: int) -> list[tuple[str, str]]:
    """``n`` ANARCI germline V domains (every allele, H/K/L, all species; cycled past 1,664)."""
    from biocoreset.bench.antibody.corpus import corpus_records, header_labels

    recs = [(header_labels(h)["id"], s) for h, s in corpus_records(keep_duplicates=True)]
    return [
        (f"{rid}#{i // len(recs)}", seq) for i, (rid, seq) in enumerate(recs * (n // len(recs) + 1))
    ][:n]


def build_adapter(model_name: str, seed: int = 0) -> Any:
    """The benchmark model (float32, eval mode) wrapped in the ``hf`` adapter."""
    if model_name == "antiberty":
        from biocoreset.modelio import load_model

        return load_model("antiberty", device="cpu")
    from biocoreset.adapters.hf import HFAdapter

    spec = MODELS[model_name]
    model, tokenizer = esm_mlm(
        RNAFM_TOKENS,
        **{k: spec[k] for k in ("hidden", "layers", "heads", "ffn")},
        seed=seed,
        pad_token_id=1,
        mask_token_id=24,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        tie_word_embeddings=True,
    )
    return HFAdapter(model, tokenizer, unknown="unk")


def linear_modules(model: Any) -> list[str]:
    """Linear layers kronfluence tracks: every ``nn.Linear`` the MLM loss uses, except the decoder
    (tied to the word embeddings; kronfluence would see only its decoder use)."""
    import torch

    return [
        n
        for n, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and (n.startswith("esm.encoder") or n == "lm_head.dense")
    ]


def linear_patterns(model: Any) -> list[str]:
    return [f"{m}.{p}" for m in linear_modules(model) for p in ("weight", "bias")]


def batches(adapter: Any, records: Sequence[tuple[str, str]], size: int) -> list[Any]:
    return [adapter.collate(records[i : i + size], seed=0) for i in range(0, len(records), size)]


# -- methods (each runs in a fresh process) ----------------------------------------------------------


def run_plain(adapter: Any, data: list[Any], _: Any, cfg: dict[str, Any]) -> dict[str, Any]:
    model = adapter.model
    per_batch = []
    for batch in data:
        t = time.perf_counter()
        adapter.per_sample_loss(batch).sum().backward()
        for p in model.parameters():
            p.grad = None
        per_batch.append(time.perf_counter() - t)
    return {"seconds": sum(per_batch), "per_batch": per_batch, "sequences": cfg["n"]}


def run_loop(adapter: Any, _: list[Any], records: Any, cfg: dict[str, Any]) -> dict[str, Any]:
    import torch

    params = list(adapter.scored_parameters().values())
    recs = records[: cfg["loop_n"]]
    t0 = time.perf_counter()
    norms = []
    for rec in recs:
        loss = adapter.per_sample_loss(adapter.collate([rec], seed=0))[0]
        grads = torch.autograd.grad(loss, params)
        norms.append(float(sum(g.pow(2).sum() for g in grads)))
    return {"seconds": time.perf_counter() - t0, "sequences": len(recs)}


def _biocoreset(
    adapter: Any, data: list[Any], cfg: dict[str, Any], patterns: list[str] | None
) -> dict[str, Any]:
    import torch

    from biocoreset.curvature.diagonal import DiagonalFisher
    from biocoreset.grads import make_engine
    from biocoreset.scorers.self_influence import SelfInfluenceScorer

    t0 = time.perf_counter()
    params = adapter.scored_parameters(patterns)
    engine = make_engine(adapter, params, engine="hooks")
    curvature = DiagonalFisher(
        damping=cfg.get("damping"), damping_relative=None if cfg.get("damping") else 0.1
    )
    t_setup = time.perf_counter() - t0
    subset = data[: cfg["subset_batches"]]
    t1 = time.perf_counter()
    curvature.fit_begin(engine.blocks)
    fit_batches = []
    for batch in subset:
        t = time.perf_counter()
        engine.run(batch, curvature.fit_accumulate)
        fit_batches.append(time.perf_counter() - t)
    curvature.fit_end(sum(len(b) for b in subset))
    t_fit = time.perf_counter() - t1
    scorer = SelfInfluenceScorer()
    scores, per_batch = [], []
    t2 = time.perf_counter()
    for batch in data:
        t = time.perf_counter()
        s, _ = scorer.score_batch(adapter, batch, engine, curvature)
        per_batch.append(time.perf_counter() - t)
        scores.append(s)
    t_score = time.perf_counter() - t2
    assert all(p.grad is None for p in adapter.model.parameters())
    out = Path(cfg["tmp"]) / f"{cfg['method']}-scores.npy"
    np.save(out, torch.cat(scores).numpy())
    return {
        "seconds": t_setup + t_fit + t_score,
        "setup": t_setup,
        "fit": t_fit,
        "score": t_score,
        "per_batch": per_batch,
        "fit_per_batch": fit_batches,
        "sequences": cfg["n"],
        "fit_sequences": sum(len(b) for b in subset),
        "damping": curvature.damping,
        "scores": str(out),
        "num_params": sum(p.numel() for p in params.values()),
        "engine": engine.describe(),
    }


def run_biocoreset(adapter: Any, data: list[Any], _: Any, cfg: dict[str, Any]) -> dict[str, Any]:
    return _biocoreset(adapter, data, cfg, None)


def run_bc_linear(adapter: Any, data: list[Any], _: Any, cfg: dict[str, Any]) -> dict[str, Any]:
    return _biocoreset(adapter, data, cfg, linear_patterns(adapter.model))


def run_kronfluence(
    adapter: Any, data: list[Any], records: Any, cfg: dict[str, Any]
) -> dict[str, Any]:
    import logging

    import torch
    from kronfluence.analyzer import Analyzer, prepare_model
    from kronfluence.arguments import FactorArguments, ScoreArguments
    from kronfluence.task import Task
    from kronfluence.utils.dataset import DataLoaderKwargs

    from biocoreset.protocols import Batch

    logging.disable(logging.WARNING)
    modules = linear_modules(adapter.model)

    def collate(recs: list[tuple[str, str]]) -> dict[str, torch.Tensor]:
        b = adapter.collate(recs, seed=0)
        return {"input_ids": b.input_ids, "attention_mask": b.attention_mask, "labels": b.labels}

    def as_batch(d: dict[str, torch.Tensor]) -> Batch:
        n = d["input_ids"].shape[0]
        return Batch(
            ids=tuple(map(str, range(n))),
            input_ids=d["input_ids"],
            attention_mask=d["attention_mask"],
            labels=d["labels"],
            lengths=d["attention_mask"].sum(1),
        )

    class MLMTask(Task):
        def compute_train_loss(self, batch: Any, model: Any, sample: bool = False) -> torch.Tensor:
            return adapter.per_sample_loss(as_batch(batch)).sum()

        def compute_measurement(self, batch: Any, model: Any) -> torch.Tensor:
            return adapter.per_sample_loss(as_batch(batch)).sum()

        def get_influence_tracked_modules(self) -> list[str]:
            return modules

    class Records(torch.utils.data.Dataset):
        def __init__(self, recs: Sequence[tuple[str, str]]) -> None:
            self.recs = list(recs)

        def __len__(self) -> int:
            return len(self.recs)

        def __getitem__(self, i: int) -> tuple[str, str]:
            return self.recs[i]

    t0 = time.perf_counter()
    task = MLMTask()
    adapter.model = prepare_model(adapter.model, task)
    out_dir = tempfile.mkdtemp(prefix="kronfluence-", dir=cfg["tmp"])
    analyzer = Analyzer(
        "bench", adapter.model, task, cpu=True, disable_tqdm=True, output_dir=out_dir
    )
    analyzer.set_dataloader_kwargs(DataLoaderKwargs(collate_fn=collate))
    t_setup = time.perf_counter() - t0
    subset = records[: cfg["subset"]]
    t1 = time.perf_counter()
    analyzer.fit_all_factors(
        "diag",
        dataset=Records(subset),
        per_device_batch_size=cfg["batch_size"],
        factor_args=FactorArguments(strategy="diagonal", use_empirical_fisher=True),
        overwrite_output_dir=True,
    )
    t_fit = time.perf_counter() - t1
    t2 = time.perf_counter()
    analyzer.compute_self_scores(
        "self",
        factors_name="diag",
        train_dataset=Records(records[: cfg["n"]]),
        per_device_train_batch_size=cfg["batch_size"],
        score_args=ScoreArguments(damping_factor=cfg["damping"]),
        overwrite_output_dir=True,
    )
    t_score = time.perf_counter() - t2
    scores = analyzer.load_self_scores("self")["all_modules"].to(torch.float64).numpy()
    out = Path(cfg["tmp"]) / "kronfluence-scores.npy"
    np.save(out, scores)
    return {
        "seconds": t_setup + t_fit + t_score,
        "setup": t_setup,
        "fit": t_fit,
        "score": t_score,
        "sequences": cfg["n"],
        "fit_sequences": len(subset),
        "scores": str(out),
    }


def run_paired(adapter: Any, data: list[Any], _: Any, cfg: dict[str, Any]) -> dict[str, Any]:
    """Side by side in one process: plain fwd+bwd and biocoreset scoring alternate on the same batches,
    so machine load affects both alike; the median of the per-pair ratios is robust to noise."""
    from biocoreset.curvature.diagonal import DiagonalFisher
    from biocoreset.grads import make_engine

    model = adapter.model
    engine = make_engine(adapter, adapter.scored_parameters(), engine="hooks")
    curvature = DiagonalFisher(damping_relative=0.1)
    curvature.fit_begin(engine.blocks)
    for batch in data[: cfg["subset_batches"]]:
        engine.run(batch, curvature.fit_accumulate)
    curvature.fit_end(cfg["subset"])

    def plain(batch: Any) -> None:
        adapter.per_sample_loss(batch).sum().backward()
        for p in model.parameters():
            p.grad = None

    def score(batch: Any) -> None:
        engine.run(batch, curvature.quadratic_form)

    def fit(batch: Any) -> None:
        engine.run(batch, lambda f: f.sum_squared_grads(curvature.acc_dtype))

    fns = {"plain": plain, "score": score, "fit": fit}
    times: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}  # process CPU s: what load cannot inflate
    for f in fns.values():
        f(data[0])
    for i in range(cfg["pairs"]):
        batch = data[i % len(data)]
        for k, f in fns.items():
            t, c = time.perf_counter(), time.process_time()
            f(batch)
            times[k].append(time.perf_counter() - t)
            cpu[k].append(time.process_time() - c)
    ratios = {
        k: statistics.median(a / b for a, b in zip(times[k], times["plain"], strict=True))
        for k in fns
    }
    return {
        "seconds": sum(map(sum, times.values())),
        "sequences": cfg["pairs"] * cfg["batch_size"],
        "times": times,
        "cpu": cpu,
        "cpu_ratios": {k: sum(cpu[k]) / sum(cpu["plain"]) for k in fns},
        "ratios": ratios,
    }


RUNNERS: dict[str, Callable[..., dict[str, Any]]] = {
    "paired": run_paired,
    "plain": run_plain,
    "loop": run_loop,
    "biocoreset": run_biocoreset,
    "bc-linear": run_bc_linear,
    "kronfluence": run_kronfluence,
}


def worker(method: str, cfg: dict[str, Any], queue: Any) -> None:
    """Build the model and batches, record the baseline memory, run ``method``, report."""
    try:
        import torch

        torch.set_num_threads(cfg["threads"])
        adapter = build_adapter(cfg["model"])
        if cfg["model"] == "antiberty":
            records = germline_records(max(cfg["n"], cfg["loop_n"]))
        else:
            records = read_records(max(cfg["n"], cfg["loop_n"]))
        data = batches(adapter, records[: cfg["n"]], cfg["batch_size"])
        adapter.scored_parameters()  # the adapter's own probe, outside the timings
        base_rss, base_peak = rss_mib(), peak_mib()
        result = RUNNERS[method](adapter, data, records, dict(cfg, method=method))
        result.update(
            method=method,
            baseline_rss_mib=base_rss,
            baseline_peak_mib=base_peak,
            peak_mib=peak_mib(),
            load=os.getloadavg()[0],
        )
        queue.put(result)
    except BaseException as exc:  # report, never hang the parent
        import traceback

        queue.put(
            {
                "method": method,
                "error": f"{type(exc).__name__}: {exc}",
                "trace": traceback.format_exc(),
            }
        )


def run_method(method: str, cfg: dict[str, Any]) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=worker, args=(method, cfg, queue))
    load = os.getloadavg()[0]
    proc.start()
    result = queue.get()
    proc.join()
    result["load_before"] = load
    if "error" in result:
        print(f"  {method}: FAILED {result['error']}\n{result.get('trace', '')}", file=sys.stderr)
    else:
        print(
            f"  {method}: {result['seconds']:.1f} s, peak {result['peak_mib']:.0f} MiB "
            f"(load {load:.1f} -> {result['load']:.1f})",
            flush=True,
        )
    return result


# -- report -----------------------------------------------------------------------------------------


def summarise(
    model: str, cfg: dict[str, Any], res: dict[str, dict[str, Any]]
) -> tuple[str, dict[str, Any]]:
    ok = {m: r for m, r in res.items() if "error" not in r}
    lines = [
        f"### `{model}` — N = {cfg['n']}, D_sub = {cfg['subset']}, B = {cfg['batch_size']}, T = {cfg.get('T', 128)}, "
        f"{cfg['threads']} threads",
        "",
    ]
    lines.append(
        "| method | total s | per sequence ms | vs plain | peak RSS MiB | peak / plain | (peak − base) / plain |"
    )
    lines.append("|---|---:|---:|---:|---:|---:|---:|")
    plain = ok.get("plain")
    summary: dict[str, Any] = {}

    def per_seq(r: dict[str, Any]) -> float:
        if "fit_sequences" in r:  # fit + score cost spread over the scored sequences
            return 1e3 * r["seconds"] / r["sequences"]
        return 1e3 * r["seconds"] / r["sequences"]

    for m in METHODS:
        r = ok.get(m)
        if r is None or m == "paired":
            continue
        ps = per_seq(r)
        ratio = ps / per_seq(plain) if plain else math.nan
        mem = r["peak_mib"] / plain["peak_mib"] if plain else math.nan
        work = (
            (r["peak_mib"] - r["baseline_rss_mib"])
            / (plain["peak_mib"] - plain["baseline_rss_mib"])
            if plain
            else math.nan
        )
        label = {
            "biocoreset": "biocoreset fit+score (all params)",
            "bc-linear": "biocoreset fit+score (Linear)",
            "kronfluence": "kronfluence diagonal fit+score (Linear)",
            "plain": "plain fwd+bwd",
            "loop": "naive per-sample loop",
        }[m]
        lines.append(
            f"| {label} | {r['seconds']:.1f} | {ps:.1f} | {ratio:.2f}× | {r['peak_mib']:.0f} | {mem:.2f} | {work:.2f} |"
        )
        summary[m] = {
            "per_sequence_ms": ps,
            "vs_plain": ratio,
            "peak_mib": r["peak_mib"],
            "peak_vs_plain": mem,
        }
    lines.append("")
    if plain:
        med_plain = statistics.median(plain["per_batch"])
        for m in ("biocoreset", "bc-linear"):
            r = ok.get(m)
            if r is None:
                continue
            med = statistics.median(r["per_batch"])
            fit = statistics.median(r["fit_per_batch"]) if r["fit_per_batch"] else math.nan
            lines.append(
                f"- `{m}` scoring, median per batch: {med:.2f} s = **{med / med_plain:.2f}×** plain fwd+bwd "
                f"({med_plain:.2f} s); fit per batch {fit:.2f} s = {fit / med_plain:.2f}×; "
                f"fit {r['fit']:.1f} s + score {r['score']:.1f} s + setup {r['setup']:.1f} s."
            )
            summary[m]["score_batch_vs_plain"] = med / med_plain
            summary[m]["fit_batch_vs_plain"] = fit / med_plain
        if "loop" in ok:
            lines.append(
                f"- naive loop per sequence / plain per sequence: {per_seq(ok['loop']) / per_seq(plain):.1f}×."
            )
    if "paired" in ok:
        r = ok["paired"]["ratios"]
        n = len(ok["paired"]["times"]["plain"])
        med = statistics.median(ok["paired"]["times"]["plain"])
        lines.append(
            f"- **paired** (alternating on the same batches in one process, median of {n} per-pair "
            f"ratios): scoring **{r['score']:.2f}×** plain fwd+bwd, fitting (Σ_b g²) {r['fit']:.2f}×; "
            f"plain median {med:.2f} s per batch."
        )
        summary["paired"] = r
        cpu = ok["paired"].get("cpu")
        if cpu:
            cr = ok["paired"]["cpu_ratios"]
            per_seq = {k: sum(v) / (len(v) * cfg["batch_size"]) for k, v in cpu.items()}
            lines.append(
                f"- paired, process CPU time: scoring {cr['score']:.2f}× plain, fitting "
                f"{cr['fit']:.2f}×; CPU s per sequence: plain {per_seq['plain']:.3f}, score "
                f"{per_seq['score']:.3f}, fit {per_seq['fit']:.3f}."
            )
            if cfg.get("project_n"):
                m, sub = cfg["project_n"], cfg.get("project_subset") or cfg["subset"]
                total = m * per_seq["score"] + sub * per_seq["fit"]
                lines.append(
                    f"- projected for N = {m:,}, D_sub = {sub} at K = 1 (fit + score, CPU time, "
                    f"model load excluded): {total:.0f} CPU s = {total / 60:.1f} min on one idle "
                    f"core; {total / 120:.1f} min if {cfg['threads']} threads used both cores fully."
                )
            summary["paired_cpu"] = {"ratios": cr, "per_sequence": per_seq}
    if "bc-linear" in ok and "kronfluence" in ok:
        a, b = np.load(ok["bc-linear"]["scores"]), np.load(ok["kronfluence"]["scores"])
        rho = spearman(a, b)
        rel = float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))
        speed = ok["kronfluence"]["seconds"] / ok["bc-linear"]["seconds"]
        lines.append(
            f"- kronfluence / biocoreset (Linear, fit + score, same N, D_sub, B, λ = "
            f"{ok['bc-linear']['damping']:.3g}): **{speed:.2f}×**; kronfluence fit {ok['kronfluence']['fit']:.1f} s "
            f"+ score {ok['kronfluence']['score']:.1f} s."
        )
        lines.append(
            f"- agreement biocoreset vs kronfluence (Linear): Spearman **{rho:.7f}**, max relative difference {rel:.2e}."
        )
        summary["agreement"] = {
            "spearman": rho,
            "max_rel_diff": rel,
            "kronfluence_over_biocoreset": speed,
        }
    if "biocoreset" in ok:
        e = ok["biocoreset"]["engine"]
        lines.append(
            f"- engine: blocks {e['blocks']}, bare addends {e['addends']}, fallback {list(e['fallback']) or 'none'}; "
            f"{ok['biocoreset']['num_params'] / 1e6:.1f}M scored parameters."
        )
    loads = [r.get("load_before", math.nan) for r in ok.values()] + [
        r.get("load", math.nan) for r in ok.values()
    ]
    lines.append(
        f"- 1-min load average during the runs: {min(loads):.1f}–{max(loads):.1f} "
        f"(the machine has {os.cpu_count()} CPUs; other jobs add noise)."
    )
    return "\n".join(lines) + "\n", summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=["small", "rnafm"], choices=sorted(MODELS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument(
        "--n", type=int, help="scored sequences (default: small 512, rnafm 256; --quick 64/32)"
    )
    parser.add_argument("--subset", type=int, help="D_sub size (default: N/4)")
    parser.add_argument(
        "--loop-n", type=int, help="sequences for the naive loop (default: small 64, rnafm 16)"
    )
    parser.add_argument(
        "--pairs", type=int, help="paired plain/scoring repetitions (default: small 8, rnafm 4)"
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--quick", action="store_true", help="small N: a few minutes in all")
    parser.add_argument(
        "--flat", action="store_true", help="also score N/4 with biocoreset to show flat memory"
    )
    parser.add_argument("--json", type=Path, help="write the raw results here")
    args = parser.parse_args(argv)

    have_kf = True
    try:
        import kronfluence  # noqa: F401
    except ImportError:
        have_kf = False
    methods = [m for m in args.methods if m != "kronfluence" or have_kf]
    if not have_kf and "kronfluence" in args.methods:
        print(
            "kronfluence is not installed: skipping (d). Install with `pip install --no-deps kronfluence` "
            "then `pip install accelerate einops einconv opt_einsum safetensors`.",
            file=sys.stderr,
        )
    import torch

    print(
        f"# bench_scoring: torch {torch.__version__}, {cpu_name()}, "
        f"{args.threads} threads, python {platform.python_version()}\n$ python -m benchmarks.bench_scoring "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        flush=True,
    )
    report, raw = [], {}
    with tempfile.TemporaryDirectory(prefix="bench-scoring-") as tmp:
        for model in args.models:
            default_n = {
                "small": 64 if args.quick else 512,
                "rnafm": 32 if args.quick else 256,
                "antiberty": 64 if args.quick else 2000,
            }[model]
            n = args.n or default_n
            subset = args.subset or max(args.batch_size, n // 4)
            subset = min(subset - subset % args.batch_size or args.batch_size, n)
            loop_n = args.loop_n or {"small": 16, "rnafm": 4, "antiberty": 4}[model] * (
                1 if args.quick else 4
            )
            cfg = {
                "model": model,
                "T": "93-104" if model == "antiberty" else 128,
                "project_n": 2000 if model == "antiberty" else None,
                "project_subset": 256,
                "n": n,
                "subset": subset,
                "subset_batches": subset // args.batch_size,
                "loop_n": loop_n,
                "batch_size": args.batch_size,
                "threads": args.threads,
                "tmp": tmp,
                "pairs": args.pairs
                or {"small": 4, "rnafm": 2, "antiberty": 8}[model] * (1 if args.quick else 2),
            }
            print(f"\n## {model}: N={n}, D_sub={subset}, loop on {loop_n}", flush=True)
            res: dict[str, dict[str, Any]] = {}
            order = [m for m in METHODS if m in methods]
            for m in order:
                if m == "kronfluence":
                    if "bc-linear" not in res or "error" in res["bc-linear"]:
                        res["bc-linear"] = run_method("bc-linear", cfg)
                    cfg = dict(cfg, damping=res["bc-linear"].get("damping"))
                if m == "bc-linear" and m in res:
                    continue
                res[m] = run_method(m, cfg)
            if args.flat and "biocoreset" in res:
                small = dict(cfg, n=max(args.batch_size, n // 4))
                r = run_method("biocoreset", small)
                res["biocoreset"]["flat"] = {"n": small["n"], "peak_mib": r.get("peak_mib")}
            text, summary = summarise(model, cfg, res)
            if "flat" in res.get("biocoreset", {}):
                f = res["biocoreset"]["flat"]
                text += (
                    f"- flat memory: biocoreset peak {f['peak_mib']:.0f} MiB at N = {f['n']} vs "
                    f"{res['biocoreset']['peak_mib']:.0f} MiB at N = {n}.\n"
                )
            print("\n" + text, flush=True)
            report.append(text)
            raw[model] = {
                "config": {k: v for k, v in cfg.items() if k != "tmp"},
                "results": res,
                "summary": summary,
            }
    if args.json:
        args.json.write_text(json.dumps(raw, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

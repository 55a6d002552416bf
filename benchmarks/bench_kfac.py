"""K-FAC / EK-FAC benchmark: time versus ``diagonal``, and agreement with kronfluence.

Two parts, each measured side by side in one run:

1. **Time** (float32): fit on ``D_sub`` + score every sequence with ``diagonal``, ``kfac`` and
   ``ekfac`` on the same model, engine and Linear parameters; the curvature's own time (its
   ``fit_*`` and ``quadratic_form`` calls) is reported separately from the engine's.
2. **Agreement with kronfluence** (float64, Linear layers of a small ESM): kronfluence 1.0.1
   ``kfac`` / ``ekfac`` self-influence with the conventions aligned to biocoreset's
   (``docs/curvature-kfac.md``): per-module token masks equal to biocoreset's token rule, the
   empirical Fisher, float64, the same absolute λ; for K-FAC kronfluence's per-token ``S`` is mapped
   to biocoreset's per-sequence ``S`` (``c_l = M / N_tokens,l``: run with λ·c_l, multiply by c_l).
   Also reported: kronfluence with its own defaults (padding mask only, per-module heuristic λ).

The per-sample factors come from the library's hook engine (``biocoreset.grads.engine``) when it is
installed, else from a small hook-based factor engine defined here (``--engine bench``), which
produces the ``"linear"`` :class:`~biocoreset.protocols.LayerFactors` the hook engine will.

Run::

    python -m benchmarks.bench_kfac --repeats 5   # both parts, ~3 min on one CPU thread
    python -m benchmarks.bench_kfac --skip-time
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import torch
from torch import nn

from biocoreset.adapters.hf import HFAdapter
from biocoreset.config import ScoreConfig
from biocoreset.curvature.diagonal import DiagonalFisher
from biocoreset.curvature.kfac import EKFAC, KFAC
from biocoreset.data.sources import as_source
from biocoreset.protocols import Batch, LayerFactors, ParamBlock
from biocoreset.scorers.self_influence import SelfInfluenceScorer
from biocoreset.scoring import fit_curvature
from biocoreset.stats import spearman
from biocoreset.testing import random_rna, tiny_esm

CURVATURES: dict[str, Callable[..., Any]] = {
    "diagonal": lambda **kw: DiagonalFisher(**kw),
    "kfac": lambda **kw: KFAC(**kw),
    "ekfac": lambda **kw: EKFAC(**kw),
}


# -- engines ------------------------------------------------------------------------------------


class BenchFactorEngine:
    """Kronecker factors of every scored ``nn.Linear`` from one batched forward/backward (hooks).

    Only Linear parameters may be scored (the benchmark scores exactly those), so no per-sample loop
    is needed: ``per_sample_grads()`` of a block is ``einsum(δ, x̃)``, as the hook engine does.
    """

    name = "bench-hooks"

    def __init__(self, adapter: HFAdapter, params: Mapping[str, nn.Parameter]) -> None:
        self.adapter = adapter
        by_id = {id(p): n for n, p in params.items()}
        self.linear: dict[str, nn.Linear] = {}
        self.blocks: list[ParamBlock] = []
        for mname, mod in adapter.model.named_modules():
            if isinstance(mod, nn.Linear) and by_id.get(id(mod.weight)) == f"{mname}.weight":
                self.linear[mname] = mod
                names = [f"{mname}.weight"] + ([f"{mname}.bias"] if mod.bias is not None else [])
                self.blocks.append(
                    ParamBlock(name=mname, kind="linear", params={n: params[n] for n in names})
                )
        covered = {n for b in self.blocks for n in b.params}
        if covered != set(params):
            raise SystemExit(
                f"bench engine scores Linear layers only; also got {sorted(set(params) - covered)}"
            )

    def run(
        self, batch: Batch, on_block: Callable[[LayerFactors], None] | None = None
    ) -> torch.Tensor:
        ins: dict[str, torch.Tensor] = {}
        outs: dict[str, torch.Tensor] = {}

        def hook(name: str) -> Callable[..., None]:
            def fn(module: nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
                ins[name], outs[name] = args[0].detach(), out

            return fn

        handles = [mod.register_forward_hook(hook(n)) for n, mod in self.linear.items()]
        try:
            with torch.enable_grad():
                loss = self.adapter.per_sample_loss(batch)
        finally:
            for h in handles:
                h.remove()
        if on_block is None:
            return loss.detach()
        names = list(outs)
        deltas = dict(
            zip(names, torch.autograd.grad(loss.sum(), [outs[n] for n in names]), strict=True)
        )
        for blk in self.blocks:
            name, d = blk.name, deltas[blk.name]
            x = ins[name]
            if self.linear[name].bias is not None:
                x = torch.cat([x, x.new_ones(*x.shape[:-1], 1)], -1)

            def per_sample(
                blk: ParamBlock = blk, x: torch.Tensor = x, d: torch.Tensor = d
            ) -> dict[str, torch.Tensor]:
                g = torch.bmm(d.transpose(1, 2), x)
                names_ = list(blk.params)
                out = {names_[0]: g[..., : blk.params[names_[0]].shape[1]]}
                if len(names_) > 1:
                    out[names_[1]] = g[..., -1]
                return out

            on_block(LayerFactors(blk, x.shape[0], per_sample, inputs=x, output_grads=d))
        return loss.detach()


def make_engine(kind: str, adapter: HFAdapter, params: Mapping[str, nn.Parameter]) -> Any:
    if kind == "hooks":
        from biocoreset.grads import make_engine as lib_make_engine

        return lib_make_engine(adapter, params, engine="hooks")
    return BenchFactorEngine(adapter, params)


def linear_params(model: nn.Module) -> dict[str, nn.Parameter]:
    """Weights and biases of every Linear layer that owns its weight (the tied decoder is excluded)
    and that the masked-LM loss uses (ESM's contact head is not)."""
    named = dict(model.named_parameters())
    out = {}
    for mname, mod in model.named_modules():
        if (
            isinstance(mod, nn.Linear)
            and f"{mname}.weight" in named
            and "contact_head" not in mname
        ):
            out[f"{mname}.weight"] = named[f"{mname}.weight"]
            if mod.bias is not None:
                out[f"{mname}.bias"] = named[f"{mname}.bias"]
    return out


class Timed:
    """Wraps a curvature and adds up the wall time of its calls."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seconds = 0.0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr) or name in ("metadata",):
            return attr

        def call(*a: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return attr(*a, **kw)
            finally:
                self.seconds += time.perf_counter() - t

        return call


def biocoreset_scores(
    adapter: HFAdapter,
    records: Sequence[tuple[str, str]],
    subset: np.ndarray,
    curvature: Any,
    engine: Any,
    batch_size: int,
    seed: int,
) -> tuple[np.ndarray, dict[str, float]]:
    """Fit on ``subset`` then score every record; returns scores and timings."""
    cfg = ScoreConfig(batch_size=batch_size, seed=seed, progress=False)
    timed = Timed(curvature)
    t0 = time.perf_counter()
    fit_curvature(timed, adapter, engine, as_source(list(records)), subset, cfg)  # type: ignore[arg-type]
    t1 = time.perf_counter()
    scorer = SelfInfluenceScorer()
    out = []
    for i in range(0, len(records), batch_size):
        batch = adapter.collate(records[i : i + batch_size], seed=seed)
        out.append(scorer.score_batch(adapter, batch, engine, timed)[0].numpy())  # type: ignore[arg-type]
    t2 = time.perf_counter()
    return np.concatenate(out), {
        "fit": t1 - t0,
        "score": t2 - t1,
        "total": t2 - t0,
        "curvature": timed.seconds,
    }


# -- part 1: time -------------------------------------------------------------------------------


def bench_time(args: argparse.Namespace, engine_kind: str) -> list[str]:
    torch.set_num_threads(args.threads)
    model, tok = tiny_esm(
        seed=0,
        dtype=torch.float32,
        hidden=args.hidden,
        layers=args.layers,
        heads=4,
        max_positions=args.max_len + 4,
    )
    adapter = HFAdapter(model, tok)
    params = linear_params(model)
    records = random_rna(args.sequences, seed=1, min_len=args.max_len // 3, max_len=args.max_len)
    subset = np.sort(np.random.default_rng(0).choice(len(records), size=args.subset, replace=False))
    engine = make_engine(engine_kind, adapter, params)

    # plain batched forward+backward of the same batches: the floor
    def floor() -> float:
        t = time.perf_counter()
        for i in range(0, len(records), args.batch_size):
            batch = adapter.collate(records[i : i + args.batch_size], seed=0)
            model.zero_grad(set_to_none=True)
            adapter.per_sample_loss(batch).sum().backward()
        model.zero_grad(set_to_none=True)
        return time.perf_counter() - t

    peer = not args.skip_kronfluence and _has_kronfluence()
    tracked = sorted({n.rpartition(".")[0] for n in params})
    fit_records = [records[i] for i in subset]

    def kron_run(kind: str, lam: float) -> dict[str, float]:
        # kronfluence on the same model, data and Linear layers, its default float32 dtypes and
        # padding masks, our λ; includes writing its factors and scores to a temporary folder
        t = time.perf_counter()
        with tempfile.TemporaryDirectory() as work:
            kronfluence_scores(
                model,
                tok,
                fit_records,
                records,
                tracked,
                None,
                kind,
                [lam],
                args.batch_size,
                0,
                work,
                dtype=torch.float32,
            )
        total = time.perf_counter() - t
        return {
            "fit": float("nan"),
            "score": float("nan"),
            "total": total,
            "curvature": float("nan"),
        }

    names = list(CURVATURES) + ([f"kronfluence {k}" for k in ("kfac", "ekfac")] if peer else [])
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in names}
    floors = []
    for _ in range(args.repeats):  # interleaved, so drift hits every curvature alike
        floors.append(floor())
        for name, factory in CURVATURES.items():
            est = factory()
            runs[name].append(
                biocoreset_scores(adapter, records, subset, est, engine, args.batch_size, 0)[1]
            )
            if peer and name in ("kfac", "ekfac"):
                runs[f"kronfluence {name}"].append(kron_run(name, est.damping))
    med = {k: {f: statistics.median(r[f] for r in v) for f in v[0]} for k, v in runs.items()}
    fl = statistics.median(floors)
    P = sum(p.numel() for p in params.values())
    lines = [
        f"model: tiny_esm(hidden={args.hidden}, layers={args.layers}) float32, {len(params) // 2} Linear layers "
        f"({P:,} parameters scored), {args.sequences} sequences of {args.max_len // 3}-{args.max_len} nt, "
        f"D_sub={args.subset}, batch {args.batch_size}, {args.threads} threads, engine={engine.name}, "
        f"median of {args.repeats}",
        "",
        "| curvature | fit (s) | score (s) | total (s) | total / diagonal | curvature's own time (s) | total / plain fwd+bwd of all batches |",
        "|---|---|---|---|---|---|---|",
    ]

    def fmt(v: float) -> str:
        return "-" if v != v else f"{v:.2f}"  # NaN: not measured

    for name, m in med.items():
        lines.append(
            f"| {name} | {fmt(m['fit'])} | {fmt(m['score'])} | {fmt(m['total'])} | "
            f"{m['total'] / med['diagonal']['total']:.2f} | {fmt(m['curvature'])} | {m['total'] / fl:.2f} |"
        )
    lines.append(
        f"\nplain batched forward+backward over all {args.sequences} sequences: {fl:.2f} s"
    )
    if peer:
        lines.append(
            "kronfluence rows: fit_all_factors + compute_self_scores on the same model, data and Linear "
            "layers with its default float32 factors and padding masks and biocoreset's λ, including "
            "its writes of factors and scores to a temporary folder."
        )
    return lines


# -- part 2: agreement with kronfluence ---------------------------------------------------------


def _has_kronfluence() -> bool:
    try:
        import kronfluence  # noqa: F401
    except ImportError:
        return False
    return True


def kronfluence_scores(
    model: nn.Module,
    tok: Any,
    fit_records: Sequence[tuple[str, str]],
    records: Sequence[tuple[str, str]],
    tracked: Sequence[str],
    masks: Callable[[Batch], dict[str, torch.Tensor]] | None,
    strategy: str,
    dampings: Sequence[float | None],
    batch_size: int,
    seed: int,
    workdir: str,
    dtype: torch.dtype = torch.float64,
) -> tuple[list[dict[str, np.ndarray]], dict[str, int]]:
    """kronfluence self-influence per module (float64, empirical Fisher), once per damping value.

    Returns the per-module scores of each run and the per-module activation token counts.
    """
    from kronfluence.analyzer import Analyzer, prepare_model
    from kronfluence.arguments import FactorArguments, ScoreArguments
    from kronfluence.task import Task
    from kronfluence.utils.dataset import DataLoaderKwargs

    model = copy.deepcopy(model)
    adapter = HFAdapter(model, tok)

    def to_batch(d: Mapping[str, torch.Tensor]) -> Batch:
        n = d["input_ids"].shape[0]
        return Batch(
            ids=tuple(map(str, range(n))),
            input_ids=d["input_ids"],
            attention_mask=d["attention_mask"],
            labels=d["labels"],
            lengths=d["lengths"],
        )

    class BenchTask(Task):
        def compute_train_loss(
            self, batch: Any, model: nn.Module, sample: bool = False
        ) -> torch.Tensor:
            assert not sample, "the empirical Fisher is compared"
            return adapter.per_sample_loss(to_batch(batch)).sum()

        def compute_measurement(self, batch: Any, model: nn.Module) -> torch.Tensor:
            return self.compute_train_loss(batch, model)

        def get_influence_tracked_modules(self) -> list[str]:
            return list(tracked)

        def get_attention_mask(self, batch: Any) -> Any:
            return batch["attention_mask"] if masks is None else masks(to_batch(batch))

    class Records(torch.utils.data.Dataset):
        def __init__(self, recs: Sequence[tuple[str, str]]) -> None:
            self.recs = list(recs)

        def __len__(self) -> int:
            return len(self.recs)

        def __getitem__(self, i: int) -> tuple[str, str]:
            return self.recs[i]

    def collate(recs: list[tuple[str, str]]) -> dict[str, torch.Tensor]:
        b = adapter.collate(recs, seed=seed)
        return {
            "input_ids": b.input_ids,
            "attention_mask": b.attention_mask,
            "labels": b.labels,
            "lengths": b.lengths,
        }

    task = BenchTask()
    model = prepare_model(model, task)
    analyzer = Analyzer(
        analysis_name=f"bench_{strategy}",
        model=model,
        task=task,
        cpu=True,
        disable_tqdm=True,
        output_dir=workdir,
        disable_model_save=True,
    )
    f64 = dtype
    factor_args = FactorArguments(
        strategy=strategy,
        use_empirical_fisher=True,
        activation_covariance_dtype=f64,
        gradient_covariance_dtype=f64,
        eigendecomposition_dtype=f64,
        per_sample_gradient_dtype=f64,
        lambda_dtype=f64,
    )
    loader = DataLoaderKwargs(collate_fn=collate)
    analyzer.fit_all_factors(
        factors_name=strategy,
        dataset=Records(fit_records),
        per_device_batch_size=batch_size,
        dataloader_kwargs=loader,
        factor_args=factor_args,
        overwrite_output_dir=True,
    )
    counts: dict[str, int] = {}
    cov = analyzer.load_covariance_matrices(factors_name=strategy)
    for mod, n in cov["num_activation_covariance_processed"].items():
        counts[mod] = int(n)
    out = []
    for i, lam in enumerate(dampings):
        score_args = ScoreArguments(
            damping_factor=lam,
            per_sample_gradient_dtype=f64,
            precondition_dtype=f64,
            score_dtype=f64,
            compute_per_module_scores=True,
        )
        name = f"{strategy}_{i}"
        analyzer.compute_self_scores(
            scores_name=name,
            factors_name=strategy,
            train_dataset=Records(records),
            per_device_train_batch_size=batch_size,
            dataloader_kwargs=loader,
            score_args=score_args,
            overwrite_output_dir=True,
        )
        scores = analyzer.load_self_scores(name)
        out.append({k: v.numpy().astype(np.float64) for k, v in scores.items()})
    return out, counts


def bench_agreement(args: argparse.Namespace, engine_kind: str) -> list[str]:
    torch.set_num_threads(args.threads)
    model, tok = tiny_esm(
        seed=0, dtype=torch.float64, hidden=args.agree_hidden, layers=args.agree_layers, heads=4
    )
    adapter = HFAdapter(model, tok)
    params = linear_params(model)
    tracked = sorted({n.rpartition(".")[0] for n in params})
    records = random_rna(args.agree_sequences, seed=2, min_len=10, max_len=50)
    subset = np.sort(
        np.random.default_rng(1).choice(len(records), size=args.agree_subset, replace=False)
    )
    fit_records = [records[i] for i in subset]
    engine = make_engine(engine_kind, adapter, params)
    bs, seed = 8, 0
    ours: dict[str, np.ndarray] = {}
    metas: dict[str, dict[str, Any]] = {}
    for kind in ("kfac", "ekfac"):
        est = CURVATURES[kind]()
        ours[kind], _ = biocoreset_scores(adapter, records, subset, est, engine, bs, seed)
        metas[kind] = est.metadata()
    M = len(subset)
    layers = metas["kfac"]["kfac_layers"]

    # biocoreset's token rule, as kronfluence masks: modules whose output reaches the loss only at
    # its own position after the last attention (the last layer's query/attention-output/FFN and the
    # head) see the masked positions; every other module sees every real token.
    probe = adapter.collate(fit_records, seed=seed)
    real, masked = int(probe.attention_mask.sum()), int((probe.labels != -100).sum())
    masked_only = {m for m, info in layers.items() if info["tokens"] == masked and masked != real}
    unexpected = {m for m, info in layers.items() if info["tokens"] not in (real, masked)}
    if unexpected:
        odd = {m: layers[m] for m in unexpected}
        raise SystemExit(f"unexpected token counts {odd}")

    def masks(b: Batch) -> dict[str, torch.Tensor]:
        lab = (b.labels != -100).to(b.attention_mask.dtype)
        return {m: (lab if m in masked_only else b.attention_mask) for m in tracked}

    lines = [
        f"model: tiny_esm(hidden={args.agree_hidden}, layers={args.agree_layers}) float64, {len(tracked)} Linear "
        f"layers, {len(records)} sequences of 10-50 nt, D_sub={M}; {real} real tokens and {masked} masked "
        f"positions in D_sub; {len(masked_only)} layers see only masked positions ({', '.join(sorted(masked_only))})",
        "",
        "| comparison | Spearman | max relative difference | kronfluence tokens = biocoreset tokens |",
        "|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as work:
        # EK-FAC: Λ is per sequence in both, the eigenbasis is scale-free: same absolute λ
        lam = metas["ekfac"]["damping"]
        runs, counts = kronfluence_scores(
            model, tok, fit_records, records, tracked, masks, "ekfac", [lam], bs, seed, work
        )
        kr = sum(runs[0].values())
        same = all(counts[m] == layers[m]["tokens"] for m in tracked)
        rel = float(np.max(np.abs(kr - ours["ekfac"]) / np.abs(ours["ekfac"])))
        lines.append(
            f"| ekfac, aligned conventions, λ={lam:.3e} | {spearman(kr, ours['ekfac']):.6f} | {rel:.1e} | {same} |"
        )
        # K-FAC: kronfluence's S is per token, Λ_k,l = c_l Λ_l with c_l = M / N_l; run with λ c_l, times c_l
        lam = metas["kfac"]["damping"]
        cs = sorted({M / layers[m]["tokens"] for m in tracked})
        runs, counts = kronfluence_scores(
            model,
            tok,
            fit_records,
            records,
            tracked,
            masks,
            "kfac",
            [c * lam for c in cs],
            bs,
            seed,
            work,
        )
        kr = np.zeros(len(records))
        for m in tracked:
            c = M / layers[m]["tokens"]
            kr += c * runs[cs.index(c)][m]
        same = all(counts[m] == layers[m]["tokens"] for m in tracked)
        rel = float(np.max(np.abs(kr - ours["kfac"]) / np.abs(ours["kfac"])))
        lines.append(
            f"| kfac, aligned conventions, λ={lam:.3e} | {spearman(kr, ours['kfac']):.6f} | {rel:.1e} | {same} |"
        )
        # the token rule alone: kronfluence's padding mask for every module, otherwise aligned
        for kind in ("kfac", "ekfac"):
            lam = metas[kind]["damping"]
            c = M / real if kind == "kfac" else 1.0
            runs, counts = kronfluence_scores(
                model, tok, fit_records, records, tracked, None, kind, [c * lam], bs, seed, work
            )
            kr = c * sum(runs[0].values())
            lines.append(
                f"| {kind}, padding-only token masks, otherwise aligned | {spearman(kr, ours[kind]):.6f} | "
                f"{float(np.max(np.abs(kr - ours[kind]) / np.abs(ours[kind]))):.1e} | False |"
            )
        # kronfluence's own defaults for a language model: padding mask for every module, per-module
        # heuristic λ = 0.1 × mean(Λ_module), per-token S — against biocoreset's defaults
        for kind in ("kfac", "ekfac"):
            runs, counts = kronfluence_scores(
                model, tok, fit_records, records, tracked, None, kind, [None], bs, seed, work
            )
            kr = sum(runs[0].values())
            same = all(counts[m] == layers[m]["tokens"] for m in tracked)
            lines.append(
                f"| {kind}, kronfluence defaults vs biocoreset defaults | {spearman(kr, ours[kind]):.6f} | "
                f"{float(np.max(np.abs(kr - ours[kind]) / np.abs(ours[kind]))):.1e} | {same} |"
            )
        lines.append(
            f"| (reference) biocoreset kfac vs ekfac | {spearman(ours['kfac'], ours['ekfac']):.6f} | | |"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--engine",
        choices=("auto", "hooks", "bench"),
        default="auto",
        help="factor engine: the library's hook engine, or this script's (auto: hooks if installed)",
    )
    p.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: robust on a shared machine)"
    )
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--sequences", type=int, default=256)
    p.add_argument("--subset", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--max-len", type=int, default=120)
    p.add_argument("--agree-sequences", type=int, default=96)
    p.add_argument("--agree-subset", type=int, default=48)
    p.add_argument("--agree-hidden", type=int, default=32)
    p.add_argument("--agree-layers", type=int, default=2)
    p.add_argument("--skip-time", action="store_true")
    p.add_argument("--skip-kronfluence", action="store_true")
    args = p.parse_args(argv)
    engine_kind = args.engine
    if engine_kind == "auto":
        try:
            import biocoreset.grads.engine  # noqa: F401
        except ImportError:
            engine_kind = "bench"
        else:
            engine_kind = "hooks"
    print(f"# bench_kfac  (torch {torch.__version__}, engine: {engine_kind})\n")
    if not args.skip_time:
        print("## Time versus diagonal\n")
        print("\n".join(bench_time(args, engine_kind)) + "\n")
    if not args.skip_kronfluence:
        try:
            import kronfluence
        except ImportError:
            print(
                "kronfluence is not installed: pip install --no-deps kronfluence && "
                "pip install accelerate einops einconv opt_einsum safetensors tqdm",
                file=sys.stderr,
            )
            return 1
        print(f"## Agreement with kronfluence {kronfluence.__version__}\n")
        print("\n".join(bench_agreement(args, engine_kind)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

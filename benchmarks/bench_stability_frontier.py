"""Stability per compute: parameter scope × mask draws, with real reruns (issue 34).

For each scope (all parameters; the last 4, 2 and 1 layers + the LM head; the LM head alone) and
each number of mask draws ``K`` (1, 2, 3, 4, 8), the two-seed Spearman ρ of the self-influence
score, its agreement with "the score" (the full-scope ``K = 8`` score, and the mean of the seeds'
full-scope ``K = 8`` scores), and its cost relative to the paper's score (all parameters, one
draw).

**Real reruns.** Seed ``s`` redraws everything a rerun with ``--seed s`` redraws: ``D_sub``
(``--subset`` ids drawn with seed ``s``), the fine-tune on it (the library's, defaults of the
paper) and the masks (draw ``k`` seeded by ``(s, id, k)``).

**One backward per draw for every setting.** Scoring every (scope, K) pair in its own run would
cost about 18 full passes per scope and seed. With the diagonal Fisher (the default curvature),
the score of scope ``S`` under the ``K``-draw Fisher ``F_K`` (the mean over draws ``0..K-1`` of
each draw's empirical Fisher on ``D_sub``, as ``mask_draws=K`` fits it) is
``I_{S,K}(z) = mean_{k<K} Σ_{j∈S} g_{z,k,j}² / (F_{K,j} + λ_{S,K})`` with
``λ_{S,K} = 0.1 · mean_{j∈S} F_{K,j}`` (the default damping, resolved over the scored
parameters). So each seed runs ``D_sub`` under 8 draws once (keeping the cumulative Fisher sums
at K = 1, 2, 3, 4, 8) and every sequence under 8 draws once, all parameters, and each block's
per-sample squared gradients are contracted with the 25 weight vectors
``1/(F_K + λ_{S,K})`` restricted to ``S`` in one matrix product. The ``K``-draw score is then
exactly what ``score(parameters=S, mask_draws=K)`` computes for these draws (checked below), up to
float32 rounding. ``K = 1`` uses draw 0 of the independent schedule, a single random mask with
the paper's distribution (the paper's own mask of a ``mask_draws=1`` run is another draw from it).

**Checks (seed 0, on the ``D_sub`` sequences).**

* *Equality*: ``score(parameters=S, mask_draws=2, subset=D_sub ids)`` on the ``D_sub`` records
  against the benchmark's ``K = 2`` score of those records, for every scope (max relative
  difference).
* *Cost*: the same real runs give each scope's CPU seconds (one thread, so other jobs on the
  machine do not count), split into fit and score by the run's wall-clock shares
  (``metadata["timing"]``); the cost of ``(S, K)`` on ``n`` sequences is
  ``fit_S + score_S · n / |D_sub|`` per draw, times ``K`` (fit and score are ``K`` passes per
  batch by construction; :func:`costs`), as a ratio to the all-parameter ``K = 1`` cost.
* *Where the backward stops*: a tensor hook on the output of the embeddings and of every layer
  records which of them the backward of one scoped batch reaches.

Run (1 thread, as measured in ``docs/trust.md``)::

    OMP_NUM_THREADS=1 python -m benchmarks.bench_stability_frontier --model antiberty \\
        --source repertoire --n 500 --out benchmarks/results/stability_frontier_antiberty.json
    OMP_NUM_THREADS=1 python -m benchmarks.bench_stability_frontier --model /tmp/stab/rna400 \\
        --source nrc --per-class 31 --out benchmarks/results/stability_frontier_rna.json
    python -m benchmarks.bench_stability_frontier --plot docs/_static/stability_frontier.png \\
        --report benchmarks/results/stability_frontier_antiberty.json \\
        benchmarks/results/stability_frontier_rna.json
"""

from __future__ import annotations

import argparse
import json
import re
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

SCOPES: dict[str, list[str] | None] = {
    "all": None,
    "last 4 + head": ["last:4", "lm head"],
    "last 2 + head": ["last:2", "lm head"],
    "last 1 + head": ["last:1", "lm head"],
    "head": ["lm head"],
}
KS = (1, 2, 3, 4, 8)
DRAWS = 8
RELATIVE_DAMPING = 0.1  # the default damping "0.1*mean"


def read_records(args) -> list[tuple[str, str]]:
    """The scored sequences: ``--n`` repertoire records, or the nRC sample of bench_trust.py."""
    if args.source == "repertoire":
        from biocoreset.bench.antibody.repertoire import RepertoireConfig, build_repertoire

        recs, _ = build_repertoire(RepertoireConfig(n=args.n, seed=0))
        return [(r.id, r.sequence) for r in recs]
    from benchmarks.bench_trust import read_source

    records, _ = read_source(args.source, None, args.per_class)
    return records[: args.n] if args.n else records


def batches(records: list[tuple[str, str]], size: int) -> list[list[tuple[int, str, str]]]:
    """Length-sorted batches of ``(row, id, sequence)`` (scores do not depend on companions)."""
    order = sorted(range(len(records)), key=lambda i: len(records[i][1]))
    rows = [(i, *records[i]) for i in order]
    return [rows[j : j + size] for j in range(0, len(rows), size)]


def multi_quadratic(factors, weights: dict[str, Any], M: int):
    """``[B, M]`` ``Σ_j W[j, m] g_{b,j}²`` over one block for ``M`` weight columns at once."""
    import torch

    from biocoreset.grads.factors import EmbeddingFactors, LinearFactors

    B = factors.batch_size
    acc = torch.zeros(B, M, dtype=torch.float64)
    if isinstance(factors, LinearFactors) and factors._grads is None:
        if factors._weight is not None:
            w = weights[factors._weight]  # [d_out, d_in, M]
            for samples, rows, G in factors._chunks(torch.float32):
                n = G.shape[0]
                acc[samples] += (G.square_().reshape(n, -1) @ w[rows].reshape(-1, M)).double()
        if factors._bias is not None:
            gb = factors._g.float().sum(1).square()
            acc += (gb @ weights[factors._bias].reshape(-1, M)).double()
        return acc
    if isinstance(factors, EmbeddingFactors):
        w = weights[factors._weight]  # [V, d, M]
        c = factors._compact.float().square()
        return (c.reshape(B, -1) @ w[factors._rows].reshape(-1, M)).double()
    for name, g in factors.per_sample_grads().items():
        acc += (g.float().flatten(1).square() @ weights[name].reshape(-1, M)).double()
    return acc


class Frontier:
    """One seed's fine-tuned model, its Fishers at every K and its per-draw scores."""

    def __init__(
        self, args, records, seed: int, adapter: Any = None, finetune: bool = True
    ) -> None:
        import torch

        from biocoreset.grads import make_engine
        from biocoreset.modelio import load_model
        from biocoreset.train.finetune import finetune as run_finetune

        self.args, self.records, self.seed = args, records, seed
        rng = np.random.default_rng(seed)
        self.dsub_rows = np.sort(rng.choice(len(records), size=args.subset, replace=False))
        self.dsub_ids = [records[i][0] for i in self.dsub_rows]
        self.adp = adapter if adapter is not None else load_model(args.model, device="cpu")
        t = time.perf_counter()
        self.finetune: dict[str, Any] = {"enabled": finetune}
        if finetune:
            ft = run_finetune(
                self.adp,
                records,
                subset=self.dsub_ids,
                seed=seed,
                progress=False,
                diagnostic_samples=16,
            )
            self.finetune.update(
                steps=ft.steps,
                loss_before=getattr(ft.before, "mean_loss", None),
                loss_after=getattr(ft.after, "mean_loss", None),
            )
        self.finetune_seconds = self.finetune["seconds"] = time.perf_counter() - t
        self.params = self.adp.scored_parameters(None)
        self.scope_names = {s: set(self.adp.scored_parameters(p)) for s, p in SCOPES.items()}
        self.engine = make_engine(self.adp, self.params)
        self.ks = [k for k in KS if k <= args.max_draws]
        self.ndraws = max(self.ks)
        self.combos = [(k, s) for k in self.ks for s in SCOPES]
        self.q = np.full((self.ndraws, len(records), len(self.combos)), np.nan)
        self.loss = np.full((self.ndraws, len(records)), np.nan)
        self._fit()
        self.draws_done = 0
        del torch

    def _fit(self) -> None:
        import torch

        t = time.perf_counter()
        sums = {
            k: {n: torch.zeros_like(p, dtype=torch.float32) for n, p in self.params.items()}
            for k in self.ks
        }
        recs = [self.records[i] for i in self.dsub_rows]
        for batch in batches(recs, self.args.batch_size):
            pairs = [(rid, seq) for _, rid, seq in batch]
            for d in range(self.ndraws):
                b = self.adp.collate(pairs, seed=self.seed, draw=d, draws=DRAWS)
                targets = [sums[k] for k in self.ks if k > d]

                def acc(factors, targets=targets):
                    for name, sq in factors.sum_squared_grads(torch.float32).items():
                        for t_ in targets:
                            t_[name] += sq

                self.engine.run(b, acc)
        m = len(recs)
        lam = {}
        W: dict[str, list[torch.Tensor]] = {n: [] for n in self.params}
        for k in self.ks:
            F = {n: s / (k * m) for n, s in sums[k].items()}
            for scope in SCOPES:
                names = self.scope_names[scope]
                mean = sum(float(F[n].sum()) for n in names) / sum(F[n].numel() for n in names)
                lam[(k, scope)] = RELATIVE_DAMPING * mean
                for n in self.params:
                    W[n].append(
                        1.0 / (F[n] + lam[(k, scope)]) if n in names else torch.zeros_like(F[n])
                    )
        self.weights = {n: torch.stack(ws, dim=-1).contiguous() for n, ws in W.items()}
        self.damping = {f"{k}|{s}": v for (k, s), v in lam.items()}
        self.fit_seconds = time.perf_counter() - t

    def score_draw(self, d: int) -> float:
        """Score every record under draw ``d`` for every (K, scope) column; seconds taken."""
        import torch

        t = time.perf_counter()
        M = len(self.combos)
        for batch in batches(self.records, self.args.batch_size):
            rows = [i for i, _, _ in batch]
            pairs = [(rid, seq) for _, rid, seq in batch]
            b = self.adp.collate(pairs, seed=self.seed, draw=d, draws=DRAWS)
            total = torch.zeros(len(rows), M, dtype=torch.float64)

            def on_block(factors, total=total):
                total.add_(multi_quadratic(factors, self.weights, M))

            losses = self.engine.run(b, on_block)
            self.q[d, rows] = total.numpy()
            self.loss[d, rows] = losses.detach().double().numpy()
        self.draws_done = d + 1
        return time.perf_counter() - t

    def score(self, k: int, scope: str) -> np.ndarray:
        """The K-draw score of ``scope``: mean over draws ``0..K-1``."""
        assert self.draws_done >= k
        return self.q[:k, :, self.combos.index((k, scope))].mean(0)


def backward_reach(adp, patterns, records, seed: int) -> dict[str, Any]:
    """Which of the embeddings and the layers the backward of one scoped batch reaches."""
    from biocoreset.grads import make_engine

    layer_re = re.compile(r"(?:^|\.)(?:layer|layers|blocks)\.(\d+)$")
    reached: set[str] = set()
    watched: list[str] = []
    handles = []
    for name, mod in adp.model.named_modules():
        if layer_re.search(name) or name.rsplit(".", 1)[-1] == "embeddings":
            watched.append(name)

            def hook(_m, _i, out, name=name):
                t = out[0] if isinstance(out, tuple) else out
                if hasattr(t, "requires_grad") and t.requires_grad:
                    t.register_hook(lambda g, name=name: reached.add(name))

            handles.append(mod.register_forward_hook(hook))
    try:
        engine = make_engine(adp, adp.scored_parameters(patterns))
        engine.run(adp.collate(records[:4], seed=seed, draw=0, draws=DRAWS), lambda f: None)
    finally:
        for h in handles:
            h.remove()
    lowest = [n for n in watched if n in reached]
    return {
        "watched": watched,
        "reached": lowest,
        "embeddings_reached": any(n.endswith("embeddings") for n in lowest),
    }


def checks(fr: Frontier, n: int, check_ks: list[int]) -> dict[str, Any]:
    """Real ``score`` runs on the D_sub records (seed 0) at each of ``check_ks``: equality with the
    benchmark's score of those records, CPU seconds, and where the backward stops."""
    from biocoreset import score
    from biocoreset.stats import spearman

    recs = [fr.records[i] for i in fr.dsub_rows]
    out: dict[str, Any] = {"records": len(recs), "check_ks": check_ks, "scopes": {}}
    rowpos = {rid: j for j, (rid, _) in enumerate(fr.records)}
    for scope, pats in SCOPES.items():
        row: dict[str, Any] = {"parameters": pats}
        for k in check_ks:
            t, c = time.perf_counter(), time.process_time()
            r = score(
                fr.adp,
                recs,
                subset=fr.dsub_ids,
                seed=fr.seed,
                mask_draws=k,
                parameters=pats,
                batch_size=fr.args.batch_size,
                progress=False,
            )
            row[f"wall_K{k}"] = time.perf_counter() - t
            row[f"cpu_K{k}"] = time.process_time() - c
            row[f"timing_K{k}"] = r.metadata.get("timing")
            row[f"damping_real_K{k}"] = r.metadata.get("damping")
            row[f"damping_bench_K{k}"] = fr.damping.get(f"{k}|{scope}")
            if fr.draws_done >= k:
                mine = fr.score(k, scope)[[rowpos[i] for i in r.ids]]
                sign = -1.0 if r.metadata.get("negated") else 1.0
                real = sign * np.asarray(r.scores, dtype=float)
                row[f"equal_max_rel_diff_K{k}"] = float(np.max(np.abs(mine - real) / np.abs(real)))
                row[f"equal_spearman_K{k}"] = spearman(mine, real)
        row["backward"] = backward_reach(fr.adp, pats, recs, fr.seed)
        row["scored_parameters"] = int(sum(fr.params[nm].numel() for nm in fr.scope_names[scope]))
        out["scopes"][scope] = row
        print(
            scope,
            {k: v for k, v in row.items() if k != "backward"},
            row["backward"]["reached"],
            flush=True,
        )
    out["cost_n"] = n
    out["cost"] = costs(out, fr.ks)
    return out


def costs(chk: dict[str, Any], ks: list[int]) -> dict[str, float]:
    """Cost of every (K, scope) at ``chk["cost_n"]`` sequences, as a multiple of all parameters at
    K = 1, from the checks' real runs.

    Each run's CPU seconds (one thread, so other jobs on a shared machine do not count) are split
    into fit and score by the run's own wall-clock shares; the score part is scaled by
    ``n / |D_sub|`` (the checks score the ``D_sub`` records). Fit and score are ``K`` passes per
    batch by construction, so each scope's cost is ``K × c``, with ``c`` the least-squares slope
    through the origin over the checked K (robust to the noise of single short runs).
    """
    n, m = chk["cost_n"], chk["records"]

    def at(r: dict[str, Any], k: int) -> float:
        tm = r[f"timing_K{k}"]
        share = tm["score"] / max(tm["fit"] + tm["score"], 1e-12)
        cpu = r[f"cpu_K{k}"]
        return cpu * (1 - share) + cpu * share * n / m

    slope = {}
    for scope, r in chk["scopes"].items():
        kk = chk["check_ks"]
        slope[scope] = sum(k * at(r, k) for k in kk) / sum(k * k for k in kk)
    return {f"{k}|{s}": k * slope[s] / slope["all"] for k in ks for s in slope}


def figures(frs: list[Frontier], ks: list[int]) -> list[dict[str, Any]]:
    """Two-seed ρ and agreement with the large-K full-scope score at each (scope, K)."""
    from biocoreset.stats import spearman

    a, b = frs
    rows = []
    done = [k for k in ks if a.draws_done >= k and b.draws_done >= k]
    kref = max(done)  # "the score": the full scope at the largest K measured so far
    ref_a, ref_b = a.score(kref, "all"), b.score(kref, "all")
    ref_mean = (_rank(ref_a) + _rank(ref_b)) / 2
    for k in done:
        for s in SCOPES:
            sa, sb = a.score(k, s), b.score(k, s)
            rows.append(
                {
                    "K": k,
                    "scope": s,
                    "spearman_two_seeds": spearman(sa, sb),
                    "spearman_same_seed_vs_all": [
                        spearman(sa, a.score(k, "all")),
                        spearman(sb, b.score(k, "all")),
                    ],
                    # agreement with "the score": the other seed's full-scope score at the
                    # largest K (independent of this run), and the mean rank of both seeds'
                    "reference_K": kref,
                    "agree_other_seed_all_Kref": [spearman(sa, ref_b), spearman(sb, ref_a)],
                    "agree_mean_all_Kref": [spearman(sa, ref_mean), spearman(sb, ref_mean)],
                }
            )
    return rows


def _rank(x: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(x)


def run(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    t0 = time.perf_counter()
    records = read_records(args)
    lengths = np.array([len(s) for _, s in records])
    print(f"{len(records)} records, median length {np.median(lengths):.0f}", flush=True)
    out: dict[str, Any] = {
        "args": vars(args),
        "num_sequences": len(records),
        "median_length": float(np.median(lengths)),
        "scopes": {k: v for k, v in SCOPES.items()},
        "ks": list(KS),
        "draws": DRAWS,
        "torch_threads": args.threads,
    }
    path = Path(args.out)

    def save() -> None:
        out["total_wall_seconds"] = time.perf_counter() - t0
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out, indent=1, default=float))

    seeds = [int(s) for s in args.seeds.split(",")]
    frs: list[Frontier] = []
    for seed in seeds:
        frs.append(Frontier(args, records, seed))
        print(
            f"seed {seed}: fine-tune {frs[-1].finetune_seconds:.0f} s, fit "
            f"{frs[-1].ndraws} draws {frs[-1].fit_seconds:.0f} s",
            flush=True,
        )
    check_ks = [int(k) for k in args.check_ks.split(",")]
    ks = frs[0].ks
    for d in range(frs[0].ndraws):  # rounds: draw d of every seed, then the figures so far
        for f in frs:
            sec = f.score_draw(d)
            out.setdefault("draw_seconds", {}).setdefault(str(f.seed), []).append(sec)
            print(
                f"seed {f.seed} draw {d}: {sec:.0f} s (elapsed {time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
        if d + 1 not in ks:
            continue
        out["frontier"] = figures(frs, ks)
        out["seeds"] = [
            {
                "seed": f.seed,
                "finetune": f.finetune,
                "fit_seconds": f.fit_seconds,
                "damping": f.damping,
                "mean_loss": float(np.nanmean(f.loss)),
            }
            for f in frs
        ]
        for r in out["frontier"]:
            if r["K"] == d + 1:
                print(r, flush=True)
        save()
        np.savez_compressed(
            path.with_suffix(".npz"),
            **{f"q_seed{f.seed}": f.q for f in frs},
            lengths=lengths,
            ids=np.array([i for i, _ in records]),
        )
        if d + 1 == max(check_ks) and not args.skip_checks:
            out["checks"] = checks(frs[0], len(records), check_ks)
            save()
    print(f"done in {time.perf_counter() - t0:.0f} s", flush=True)


def report(paths: list[str]) -> str:
    """Markdown tables of one or more results files."""
    lines = []
    for p in paths:
        res = json.loads(Path(p).read_text())
        cost = costs(res["checks"], res["ks"]) if "checks" in res else {}
        lines += [
            f"**{res['args']['model']}** ({res['num_sequences']} sequences, D_sub "
            f"{res['args']['subset']})",
            "",
            "| scope | K | cost (× all, K = 1) | ρ two seeds | ρ vs the other seed's all-parameter "
            f"K = {res['frontier'][-1]['reference_K']} | ρ vs both seeds' all-parameter "
            f"K = {res['frontier'][-1]['reference_K']} |",
            "|---|---|---|---|---|---|",
        ]
        for r in res["frontier"]:
            c = cost.get(f"{r['K']}|{r['scope']}")
            oth = r.get("agree_other_seed_all_Kref")
            mean = r.get("agree_mean_all_Kref")
            lines.append(
                f"| {r['scope']} | {r['K']} | {'–' if c is None else f'{c:.2f}'} | "
                f"{r['spearman_two_seeds']:.2f} | "
                f"{'–' if oth is None else f'{np.mean(oth):.2f}'} | "
                f"{'–' if mean is None else f'{np.mean(mean):.2f}'} |"
            )
        lines.append("")
    return "\n".join(lines)


def plot(paths: list[str], png: str) -> None:
    """Two-seed ρ against cost, one panel per model, one line per scope."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(paths), figsize=(5.5 * len(paths), 4.2), squeeze=False)
    for ax, p in zip(axes[0], paths, strict=True):
        res = json.loads(Path(p).read_text())
        cost = costs(res["checks"], res["ks"]) if "checks" in res else {}
        for s in SCOPES:
            pts = [
                (cost.get(f"{r['K']}|{s}"), r["spearman_two_seeds"], r["K"])
                for r in res["frontier"]
                if r["scope"] == s
            ]
            pts = [q for q in pts if q[0] is not None]
            if not pts:
                continue
            ax.plot([q[0] for q in pts], [q[1] for q in pts], marker="o", label=s)
            for c, rho, k in pts:
                ax.annotate(
                    f"K={k}", (c, rho), fontsize=7, xytext=(3, -9), textcoords="offset points"
                )
        ax.axvline(1.0, color="grey", lw=0.8, ls="--")
        ax.axvline(0.5, color="grey", lw=0.8, ls=":")
        ax.set_xscale("log")
        ticks = [0.25, 0.5, 1, 2, 4, 8]
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("cost (× all parameters, K = 1)")
        ax.set_ylabel("two-seed Spearman ρ")
        ax.set_title(f"{_label(res['args']['model'])}, {res['num_sequences']} sequences")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=120)


def _label(model: str) -> str:
    """A short model name for a plot title."""
    return "AntiBERTy" if model == "antiberty" else f"RNA model ({Path(model).name})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="antiberty")
    ap.add_argument("--source", choices=("repertoire", "nrc", "rfam"), default="repertoire")
    ap.add_argument("--n", type=int, default=500, help="sequences (repertoire), or a cap")
    ap.add_argument("--per-class", type=int, default=31, help="nrc/rfam: per class")
    ap.add_argument("--subset", type=int, default=64, help="D_sub size")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-checks", action="store_true")
    ap.add_argument("--max-draws", type=int, default=8, help="largest K (of 1, 2, 3, 4, 8)")
    ap.add_argument("--check-ks", default="1,2", help="K of the real score() runs (seed 0)")
    ap.add_argument("--out", default="stability_frontier.json")
    ap.add_argument("--report", nargs="+", help="print the tables of these results files")
    ap.add_argument("--plot", help="with --report: write the frontier plot here (png)")
    args = ap.parse_args()
    if args.report:
        print(report(args.report))
        if args.plot:
            plot(args.report, args.plot)
        return
    run(args)


if __name__ == "__main__":
    main()

"""``bench_trust.py --source antibody``: the trust figures on a strongly trained model (AntiBERTy).

``--n`` germline V domains are drawn (seed 0) from the ANARCI germline corpus
(:mod:`biocoreset.bench.antibody.corpus`: one record per distinct sequence; chains H, K, L; eight
species). ``--model antiberty`` is fine-tuned once on ``D_sub`` (``--subset`` sequences of the
sample, ``subset_seed=0``, no warm-up by default: ``--ft-warmup``), and that one model is scored with
``mask_draws=--draws`` under masking seeds 0 and 1: D_sub, the fine-tune and the Fisher's D_sub are
the same in both runs; only the masks differ.

Every draw's score is kept (the benchmark wraps :func:`biocoreset.scoring.draws.score_draws`), so
the K-draw score for K = 1, 2, 4, ... is the mean of a run's first K draws, all from one run per
seed. (The Fisher is the run's: averaged over all ``--draws`` masks of D_sub at every K. This
isolates the mask noise of the scores; a real K = 1 run also has a one-mask Fisher.)

Figures: two-seed Spearman at each K, raw and with length regressed out; the split-half projection
each run would report at that K (first K/2 draws against the next K/2, Spearman–Brown) against the
two-seed value; Spearman(score, length); coverage of chain × species and of gene families by Top-I
and CCI (± ``debias="length"``) at 5% and 10% against ``--random-draws`` random sets (mean ± sd);
the ``diagnose`` summary; and the same reliability figures without the fine-tune (``--wo-ft-draws``
draws, seeds 0 and 1).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

_PER_DRAW: dict[str, list[float]] = {}


def _recording_score_draws(
    scorer, adapter, records, engine, curvature, *, seed, draws=1, reduce="mean-score"
):
    """:func:`biocoreset.scoring.draws.score_draws`, keeping every draw's score by record id."""
    import torch

    from biocoreset.scoring.draws import DrawScores, score_draws

    if reduce != "mean-score":  # only the mean of per-draw scores is recorded draw by draw
        return score_draws(
            scorer, adapter, records, engine, curvature, seed=seed, draws=draws, reduce=reduce
        )

    def host(t: torch.Tensor) -> np.ndarray:
        return t.detach().to("cpu", torch.float64).numpy()

    half = draws // 2
    per = np.zeros((draws, len(records)))
    loss_sum = np.zeros(len(records))
    length = None
    for k in range(draws):
        if draws == 1:
            batch = adapter.collate(list(records), seed=seed)
        else:
            batch = adapter.collate(list(records), seed=seed, draw=k, draws=draws)
        s, loss = scorer.score_batch(adapter, batch, engine, curvature)
        per[k] = host(s)
        loss_sum += host(loss)
        length = batch.lengths.to("cpu").numpy()
    for j, (rid, _) in enumerate(records):
        _PER_DRAW[rid] = per[:, j].tolist()
    halves = None
    if draws > 1:
        halves = np.stack([per[:half].mean(0), per[half:].mean(0)])
    return DrawScores(scores=per.mean(0), loss=loss_sum / draws, length=length, halves=halves)


def _install() -> None:
    import biocoreset.scoring.run as run

    run.score_draws = _recording_score_draws  # type: ignore[assignment]


def sample(n: int, seed: int = 0) -> tuple[list[tuple[str, str]], dict[str, dict[str, str]]]:
    """``n`` records of the germline corpus (seeded, in corpus order) and their header labels."""
    from biocoreset.bench.antibody.corpus import corpus_records, header_labels

    corpus = corpus_records()
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(corpus), size=min(n, len(corpus)), replace=False))
    records, labels = [], {}
    for i in chosen:
        header, seq = corpus[i]
        lab = header_labels(header)
        records.append((lab["id"], seq))
        labels[lab["id"]] = lab
    return records, labels


def _run(adp, records, args, seed: int, draws: int) -> tuple[Any, np.ndarray, float]:
    from biocoreset import score

    _PER_DRAW.clear()
    t = time.perf_counter()
    r = score(
        adp,
        records,
        subset=args.subset,
        subset_seed=0,
        seed=seed,
        batch_size=args.batch_size,
        mask_draws=draws,
        progress=False,
    )
    wall = time.perf_counter() - t
    per = np.array([_PER_DRAW[i] for i in r.ids])  # (n, draws)
    sign = -1.0 if r.metadata.get("negated") else 1.0
    assert np.allclose(sign * r.scores, per.mean(1), rtol=1e-9, atol=0), "per-draw mismatch"
    return r, per, wall


def reliability(per0: np.ndarray, per1: np.ndarray, lengths: np.ndarray, ks) -> list[dict]:
    """Two-seed and split-half figures at each K from two runs' per-draw scores."""
    from biocoreset.scoring.draws import stability_figures
    from biocoreset.stats import length_control, spearman

    rows = []
    for k in ks:
        a, b = per0[:, :k].mean(1), per1[:, :k].mean(1)
        za, zb = length_control(a, lengths).z, length_control(b, lengths).z
        row: dict[str, Any] = {
            "K": k,
            "spearman": spearman(a, b),
            "spearman_length_regressed": spearman(za, zb),
            "spearman_length": [spearman(a, lengths), spearman(b, lengths)],
        }
        if k >= 2:
            own = []
            for per in (per0, per1):
                h = k // 2
                halves = np.stack([per[:, :h].mean(1), per[:, h:k].mean(1)])
                own.append(stability_figures(halves, lengths, draws=k))
            row["self_projected"] = [f.get("projected") for f in own]
            row["self_projected_length_regressed"] = [
                f.get("projected_length_regressed") for f in own
            ]
        rows.append(row)
    return rows


def coverage(result, labels: dict[str, dict[str, str]], args) -> list[dict]:
    """Top-I, CCI (± length debias) against random sets, at 5% and 10%, for two labelings."""
    from biocoreset import select
    from biocoreset.diagnose.composition import composition, random_baseline

    L = result.length
    n = len(result.ids)
    labelings = {
        "chain x species": np.array(
            [f"{labels[i]['chain']}/{labels[i]['species']}" for i in result.ids], dtype=object
        ),
        "gene family": np.array([labels[i]["family"] for i in result.ids], dtype=object),
    }
    rows = []
    for frac in (0.05, 0.10):
        budget = max(1, round(frac * n))
        sels = {
            (m, d): select(result, m, budget=budget, seed=0, debias=d).indices
            for m in ("topk", "cci")
            for d in (None, "length")
        }
        for name, lab in labelings.items():
            for (m, d), idx in sels.items():
                comp = composition(idx, lab, L)
                rows.append({"fraction": frac, "labeling": name, "method": m, "debias": d, **comp})
            base = random_baseline(n, budget, lab, L, draws=args.random_draws, seed=0)
            rows.append(
                {
                    "fraction": frac,
                    "labeling": name,
                    "method": "random",
                    "debias": None,
                    "labels_total": len(set(lab)),
                    **{f"{k}_mean": v["mean"] for k, v in base.items()},
                    **{f"{k}_sd": v["sd"] for k, v in base.items()},
                }
            )
    return rows


def run_antibody(args) -> dict:
    """All the figures of the module docstring, as one JSON-able dict."""
    from biocoreset.diagnose.report import diagnose
    from biocoreset.modelio import load_model
    from biocoreset.train.finetune import finetune

    _install()
    records, labels = sample(args.n)
    lengths = None
    ks = [int(k) for k in args.ks.split(",")]
    draws = max(ks)
    print(f"{len(records)} germlines; D_sub {args.subset}; K = {ks} from {draws} draws")
    t0 = time.perf_counter()
    adp = load_model(args.model, device="cpu")
    t = time.perf_counter()
    ft = finetune(
        adp,
        records,
        subset=args.subset,
        subset_seed=0,
        seed=0,
        progress=False,
        diagnostic_samples=16,
        warmup_steps=args.ft_warmup,
    )
    ft_seconds = time.perf_counter() - t
    runs = {s: _run(adp, records, args, s, draws) for s in (0, 1)}
    lengths = runs[0][0].length
    rows = reliability(runs[0][1], runs[1][1], lengths, ks)
    for row in rows:
        print(row)
    res0 = runs[0][0]
    cover = coverage(res0, labels, args)
    diag = diagnose(res0, labels={i: labels[i]["chain"] for i in res0.ids}, random_draws=20)
    print(diag.markdown())
    # w/o ft: the model as shipped, same D_sub for the Fisher
    base = load_model(args.model, device="cpu")
    wo_k = [k for k in ks if k <= args.wo_ft_draws]
    wo = {s: _run(base, records, args, s, args.wo_ft_draws) for s in (0, 1)}
    wo_rows = reliability(wo[0][1], wo[1][1], lengths, wo_k)
    from biocoreset.stats import spearman

    wo_rows.append(
        {
            "spearman_ft_vs_wo_ft_seed0_K": args.wo_ft_draws,
            "value": spearman(runs[0][1][:, : args.wo_ft_draws].mean(1), wo[0][1].mean(1)),
        }
    )
    return {
        "source": "antibody",
        "model": args.model,
        "num_sequences": len(records),
        "subset": args.subset,
        "draws": draws,
        "median_length": float(np.median(lengths)),
        "finetune": {
            "steps": ft.steps,
            "warmup_steps": args.ft_warmup,
            "seconds": ft_seconds,
            "loss_before": getattr(ft.before, "mean_loss", None),
            "loss_after": getattr(ft.after, "mean_loss", None),
            "grad_norm_before": getattr(ft.before, "mean_grad_norm", None),
            "grad_norm_after": getattr(ft.after, "mean_grad_norm", None),
        },
        "mean_loss": float(np.mean(res0.loss)),
        "run_wall_seconds": [runs[s][2] for s in (0, 1)],
        "run_timing": [runs[s][0].metadata.get("timing") for s in (0, 1)],
        "reliability": rows,
        "coverage": cover,
        "diagnose": {"summary": diag.summary, "warnings": diag.warnings},
        "wo_ft": {
            "draws": args.wo_ft_draws,
            "reliability": wo_rows,
            "run_wall_seconds": [wo[s][2] for s in (0, 1)],
            "mean_loss": float(np.mean(wo[0][0].loss)),
        },
        "total_wall_seconds": time.perf_counter() - t0,
    }


def report_antibody(results: dict) -> str:
    """Markdown tables of an antibody results file."""

    def f(v: Any, fmt: str = ".2f") -> str:
        return "–" if v is None else format(float(v), fmt)

    out = [
        f"{results['num_sequences']} germlines, D_sub {results['subset']}, "
        f"{results['draws']} draws per seed; mean loss {results['mean_loss']:.3f} nats",
        "",
        "| K | ρ two seeds | ρ length regressed out | split-half projection (seed 0 / 1) "
        "| projection, length regressed out | ρ(score, length) |",
        "|---|---|---|---|---|---|",
    ]
    for r in results["reliability"]:
        proj = r.get("self_projected") or []
        projl = r.get("self_projected_length_regressed") or []
        out.append(
            f"| {r['K']} | {f(r['spearman'])} | {f(r['spearman_length_regressed'])} | "
            f"{' / '.join(f(v) for v in proj) or '–'} | {' / '.join(f(v) for v in projl) or '–'} "
            f"| {' / '.join(f(v) for v in r['spearman_length'])} |"
        )
    out += ["", "w/o ft:", "", "| K | ρ two seeds | ρ length regressed out | ρ(score, length) |"]
    out.append("|---|---|---|---|")
    for r in results["wo_ft"]["reliability"]:
        if "K" in r:
            out.append(
                f"| {r['K']} | {f(r['spearman'])} | {f(r['spearman_length_regressed'])} | "
                f"{' / '.join(f(v) for v in r['spearman_length'])} |"
            )
        else:
            out.append(
                f"\nρ(ft, w/o ft) at K = {r['spearman_ft_vs_wo_ft_seed0_K']}: {f(r['value'])}"
            )
    out += [
        "",
        "| share | labels | selection | debias | covered | entropy | largest share |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results["coverage"]:
        if r["method"] == "random":
            cov = f"{r['covered_mean']:.1f} ± {r['covered_sd']:.1f} of {r['labels_total']}"
            ent = f"{r['entropy_mean']:.2f} ± {r['entropy_sd']:.2f}"
            big = f"{r['largest_share_mean']:.2f} ± {r['largest_share_sd']:.2f}"
        else:
            cov = f"{r['covered']} of {r['labels']}"
            ent, big = f(r["entropy"]), f(r["largest_share"])
        out.append(
            f"| {r['fraction']:.0%} | {r['labeling']} | {r['method']} | {r['debias'] or '–'} | "
            f"{cov} | {ent} | {big} |"
        )
    return "\n".join(out)

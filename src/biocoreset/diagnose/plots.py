"""Plots people would rather see than read: the score distribution with the selection.

>>> import os, tempfile, numpy as np
>>> from biocoreset import select
>>> scores = np.random.default_rng(0).normal(size=500)
>>> path = plot_selection(scores, select(scores, "cci", budget=50), os.path.join(tempfile.mkdtemp(), "s.png"))
>>> path.suffix
'.png'
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from biocoreset.selection import StrataPlan

__all__ = ["plot_loss_curve", "plot_selection", "plot_training_history"]


def plot_selection(
    scores: np.ndarray, selection: Any, path: str | os.PathLike[str], *, title: str = ""
) -> Path:
    """Histogram of ``scores`` with the selected part; for CCI the β cut, the strata and how many
    were taken from each; for Top-I the score threshold.

    Args:
        scores: All scores.
        selection: A :class:`biocoreset.selection.Selection`.
        path: PNG to write.
        title: Plot title.

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores = np.asarray(scores, dtype=np.float64)
    plan = selection.plan
    is_cci = isinstance(plan, StrataPlan)
    fig, (ax, ax2) = plt.subplots(
        2, 1, figsize=(9, 6.5), height_ratios=[3, 1.6], constrained_layout=True
    )
    lo, hi = float(scores.min()), float(scores.max())
    edges = np.linspace(lo, hi, 81) if hi > lo else np.array([lo - 0.5, lo + 0.5])
    all_counts, _ = np.histogram(scores, bins=edges)
    sel_counts, _ = np.histogram(scores[selection.indices], bins=edges)
    width = np.diff(edges)
    ax.bar(
        edges[:-1],
        all_counts,
        width=width,
        align="edge",
        color="#c8c8c8",
        label=f"all ({scores.size:,})",
    )
    ax.bar(
        edges[:-1],
        sel_counts,
        width=width,
        align="edge",
        color="#1f77b4",
        label=f"selected ({selection.budget:,})",
    )
    if is_cci:
        if plan.cut.size:
            low_end = selection.options.get("cut") == "lowest"
            cut_at = float(scores[plan.cut].max() if low_end else scores[plan.cut].min())
            ax.axvline(
                cut_at,
                color="#d62728",
                ls="--",
                lw=1.3,
                label=f"β cut at {cut_at:.3g} ({plan.cut.size:,} hardest removed)",
            )
        for e in plan.edges:
            ax.axvline(e, color="#888888", lw=0.3)
        centers = (plan.edges[:-1] + plan.edges[1:]) / 2
        swidth = np.diff(plan.edges)
        if not np.all(swidth > 0):
            swidth = np.ones_like(centers)
        ax2.bar(centers, plan.sizes, width=swidth * 0.95, color="#c8c8c8", label="stratum size")
        ax2.bar(centers, plan.taken, width=swidth * 0.95, color="#1f77b4", label="taken")
        if len(centers) <= 60:
            for x, t in zip(centers, plan.taken, strict=True):
                if t:
                    ax2.annotate(
                        f"{int(t)}",
                        (x, t),
                        textcoords="offset points",
                        xytext=(0, 2),
                        ha="center",
                        fontsize=6,
                        rotation=90,
                    )
        if (
            plan.sizes.max() > 0
            and plan.sizes.max() / max(1, plan.sizes[plan.sizes > 0].min()) > 50
        ):
            ax2.set_yscale("log")
        ax2.set_xlabel("score")
        ax2.set_ylabel("per stratum")
        ax2.set_title(
            f"{len(plan.sizes)} strata: {int((plan.taken > 0).sum())} contribute; "
            f"taken per stratum {int(plan.taken.min())}–{int(plan.taken.max())}",
            fontsize=9,
        )
        ax2.legend(fontsize=8, loc="upper right")
    else:
        if selection.method == "topk" and selection.budget < scores.size:
            thr = float(scores[selection.indices].min())
            ax.axvline(thr, color="#d62728", ls="--", lw=1.3, label=f"Top-I threshold {thr:.3g}")
        ax2.axis("off")
    ax.set_ylabel("sequences")
    ax.set_xlabel("score")
    ax.set_title(title or f"{selection.method}: {selection.budget:,} of {scores.size:,} selected")
    ax.legend(fontsize=8, loc="upper right")  # "best" is slow on large data
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_loss_curve(
    losses: Sequence[float], path: str | os.PathLike[str], *, title: str = "training loss"
) -> Path:
    """Line plot of a loss per step (with a moving average when long enough).

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y = np.asarray(losses, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(7, 3.5), constrained_layout=True)
    ax.plot(np.arange(1, y.size + 1), y, color="#c8c8c8", lw=0.8, label="per step")
    if y.size >= 20:
        k = max(5, y.size // 20)
        avg = np.convolve(y, np.ones(k) / k, mode="valid")
        ax.plot(np.arange(k, y.size + 1), avg, color="#1f77b4", lw=1.5, label=f"mean of {k}")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper right")  # "best" is slow on large data
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_training_history(
    history: Sequence[Sequence[Any]], path: str | os.PathLike[str], *, title: str = ""
) -> Path:
    """Write a training run's loss curve (raw and smoothed, epochs marked, learning rate on a
    second axis) as a PNG, e.g. ``loss.png`` of ``biocoreset pretrain``.

    Args:
        history: ``(step, epoch, loss, lr)`` rows.
        path: PNG to write.
        title: Plot title.

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = np.asarray([[r[0], r[1], r[2], r[3]] for r in history], dtype=np.float64).reshape(-1, 4)
    fig, ax = plt.subplots(figsize=(8, 4.5), constrained_layout=True)
    if len(rows):
        steps, epochs, loss, lr = rows.T
        ax.plot(steps, loss, color="#9ecae1", lw=0.8, label="loss")
        if len(loss) > 5:
            alpha = 2.0 / (min(100, max(5, len(loss) // 20)) + 1)
            smooth = np.empty_like(loss)
            acc = loss[0]
            for i, v in enumerate(loss):
                acc = alpha * v + (1 - alpha) * acc
                smooth[i] = acc
            ax.plot(steps, smooth, color="#08519c", lw=1.6, label="loss (EMA)")
        for b in np.flatnonzero(np.diff(epochs)) + 1:
            ax.axvline(steps[b], color="#cccccc", lw=0.6, zorder=0)
        ax2 = ax.twinx()
        ax2.plot(steps, lr, color="#e6550d", lw=1.0, ls="--", label="learning rate")
        ax2.set_ylabel("learning rate")
        ax2.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
        lines = ax.get_legend_handles_labels()
        lines2 = ax2.get_legend_handles_labels()
        ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=8, loc="upper right")
    ax.set_xlabel("optimizer step (grey lines: epoch boundaries)")
    ax.set_ylabel("masked-LM loss")
    ax.set_title(title or "pretraining loss")
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out

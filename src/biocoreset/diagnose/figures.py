"""The figures of a diagnosis, as matplotlib figures (``Diagnosis.figures()`` builds them all)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from biocoreset.stats import LengthControl, spearman, spearman_brown

__all__ = ["figure_coresets", "figure_length", "figure_loss", "figure_stability"]


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _scatter(ax: Any, x: np.ndarray, y: np.ndarray, *, log: bool) -> None:
    if x.size > 5000:
        ax.hexbin(
            x,
            y,
            gridsize=60,
            bins="log",
            cmap="Blues",
            xscale="log" if log else "linear",
            yscale="log" if log else "linear",
            mincnt=1,
        )
    else:
        ax.scatter(x, y, s=6, alpha=0.4, color="#1f77b4", linewidths=0)
        if log:
            ax.set_xscale("log")
            ax.set_yscale("log")


def figure_length(influence: np.ndarray, lengths: np.ndarray, control: LengthControl) -> Any:
    """Score against length (log–log) with the length fit's running median."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    log = control.transform == "log"
    _scatter(ax, lengths.astype(np.float64), influence, log=log)
    centers = np.exp(control.centers)
    curve = np.exp(control.medians) if log else control.medians
    ax.plot(centers, curve, color="#d62728", lw=2, label="median at that length")
    ax.set_xlabel("length (residues)")
    ax.set_ylabel("self-influence I(z)")
    ax.set_title(
        f"score vs length: Spearman ρ = {control.spearman_length:.2f}, "
        f"R² (log, length fit) = {control.r2_length:.2f}"
    )
    ax.legend(loc="upper right", fontsize=8)
    return fig


def figure_loss(influence: np.ndarray, loss: np.ndarray) -> Any:
    """Score against the sequence's masked-LM loss."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    _scatter(ax, loss, influence, log=False)
    if influence.size and float(influence.min()) > 0:
        ax.set_yscale("log")
    ax.set_xlabel("masked-LM loss of the sequence")
    ax.set_ylabel("self-influence I(z)")
    ax.set_title(f"score vs loss: Spearman ρ = {spearman(influence, loss):.2f}")
    return fig


def figure_stability(stability: Mapping[str, Any]) -> Any:
    """Projected run-to-run agreement against the number of mask draws (Spearman–Brown)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    ks = np.arange(1, 65)
    for key, label, color in (
        ("single_draw", "scores", "#1f77b4"),
        ("single_draw_length_regressed", "with length regressed out", "#ff7f0e"),
    ):
        r1 = stability.get(key)
        if r1 is None or not np.isfinite(r1):
            continue
        ax.plot(ks, [spearman_brown(r1, float(k)) for k in ks], color=color, label=label)
        draws = stability["draws"]
        proj = stability["projected" if key == "single_draw" else "projected_length_regressed"]
        ax.plot([draws], [proj], "o", color=color)
    ax.axhline(stability.get("target", 0.9), color="grey", ls="--", lw=1, label="target")
    ax.set_xscale("log", base=2)
    ax.set_ylim(0, 1)
    ax.set_xlabel("mask draws K")
    ax.set_ylabel("projected ρ between two runs (estimate; ran ≤ 0.1 high)")
    ax.set_title(f"stability: measured at K = {stability['draws']} (split half), projected")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def figure_coresets(
    lengths: np.ndarray,
    coresets: Mapping[str, np.ndarray],
    rows: Mapping[str, Mapping[str, Any]],
) -> Any:
    """Length distribution of each coreset against the corpus, and label coverage against random
    sets of the same size (when labels are known)."""
    plt = _plt()
    with_labels = any("coverage" in r["coreset"] for r in rows.values())
    fig, axes = plt.subplots(
        1, 2 if with_labels else 1, figsize=(12 if with_labels else 7, 4.5), constrained_layout=True
    )
    axes = np.atleast_1d(axes)
    ax = axes[0]
    grid = np.sort(lengths)
    ax.plot(grid, np.arange(1, grid.size + 1) / grid.size, color="black", lw=2, label="corpus")
    for name, idx in coresets.items():
        g = np.sort(lengths[idx])
        ax.plot(g, np.arange(1, g.size + 1) / max(g.size, 1), lw=1.5, label=name)
    ax.set_xscale("log")
    ax.set_xlabel("length (residues)")
    ax.set_ylabel("cumulative share")
    ax.set_title("length distribution")
    ax.legend(loc="lower right", fontsize=8)
    if with_labels:
        ax = axes[1]
        names = list(rows)
        mine = [rows[n]["coreset"]["covered"] for n in names]
        rand = [rows[n]["random"]["covered"]["mean"] for n in names]
        err = [rows[n]["random"]["covered"]["sd"] for n in names]
        x = np.arange(len(names))
        ax.bar(x - 0.2, mine, width=0.4, label="coreset", color="#1f77b4")
        ax.bar(x + 0.2, rand, width=0.4, yerr=err, label="random, same size", color="#c8c8c8")
        total = next(iter(rows.values()))["coreset"]["labels"]
        ax.axhline(total, color="black", lw=1, ls="--", label=f"labels in corpus ({total})")
        ax.set_xticks(x, names, rotation=20, ha="right", fontsize=8)
        ax.set_ylabel("labels covered")
        ax.set_title("label coverage")
        ax.legend(loc="lower right", fontsize=8)
    return fig

"""Plots people would rather see than read: the score distribution with the selection."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["plot_selection"]


def plot_selection(scores: np.ndarray, selection: Any, path: str | os.PathLike[str], *, title: str = "") -> Path:
    """Histogram of ``scores`` with the selected part, the CCI β cut and strata when present.

    Args:
        scores: All scores.
        selection: A :class:`biocoreset.api.Selection`.
        path: PNG to write.
        title: Plot title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores = np.asarray(scores, dtype=np.float64)
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(8, 6), height_ratios=[3, 1.3], constrained_layout=True)
    bins = np.linspace(scores.min(), scores.max(), 61) if scores.max() > scores.min() else 10
    ax.hist(scores, bins=bins, color="#c8c8c8", label=f"all ({scores.size})")
    ax.hist(scores[selection.indices], bins=bins, color="#1f77b4", label=f"selected ({selection.budget})")
    plan = selection.plan
    if plan is not None and hasattr(plan, "edges"):
        if plan.cut.size:
            cut_at = scores[plan.cut].min()
            ax.axvline(cut_at, color="#d62728", ls="--", lw=1.2, label=f"β cut ({plan.cut.size} hardest removed)")
        for e in plan.edges:
            ax.axvline(e, color="#888888", lw=0.3)
        centers = (plan.edges[:-1] + plan.edges[1:]) / 2
        width = np.diff(plan.edges)
        ax2.bar(centers, plan.sizes, width=width, color="#c8c8c8", label="stratum size")
        ax2.bar(centers, plan.taken, width=width, color="#1f77b4", label="taken")
        ax2.set_xlabel("score")
        ax2.set_ylabel("count per stratum")
        ax2.legend(fontsize=8)
    else:
        ax2.axis("off")
    ax.set_ylabel("sequences")
    ax.set_title(title or f"{selection.method}: {selection.budget} of {scores.size} selected")
    ax.legend(fontsize=8)
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out

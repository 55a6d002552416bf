"""``biocoreset demo``: the whole method on data and a model the project generates.

Generates a synthetic RNA corpus (motif/hairpin families with near-duplicates), builds a tiny
randomly initialised RNA masked LM, fits the diagonal Fisher on a random ``D_sub``, scores every
sequence, selects coresets with CCI and Top-I, and writes the files and a plot.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

from biocoreset.errors import OutputExistsError

__all__ = ["run_demo"]


def run_demo(output: str | os.PathLike[str] = "biocoreset-demo", *, force: bool = False, progress: bool = True,
             n: int = 400, seed: int = 0) -> Path:
    """Run the demo into ``output`` and return the folder.

    Raises:
        OutputExistsError: ``output`` exists and is not empty, and ``force`` is false.
    """
    from biocoreset import score, select
    from biocoreset.data.synthetic import synthetic_rna_corpus, write_fasta
    from biocoreset.plots import plot_selection
    from biocoreset.testing import tiny_esm

    out = Path(output)
    if out.exists() and any(out.iterdir()):
        if not force:
            raise OutputExistsError(f"{str(out)!r} exists and is not empty; pass --force to overwrite it.")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    records = synthetic_rna_corpus(n, seed=seed)
    corpus = write_fasta(records, out / "corpus.fasta")
    model, tokenizer = tiny_esm(seed=seed, dtype=torch.float32, layers=2, hidden=32, heads=4, max_positions=130)
    result = score(model, corpus, tokenizer=tokenizer, subset=0.25, batch_size=16, seed=seed, progress=progress)
    result.save(out / "scores.parquet", force=True)
    lines = [f"scored {len(result)} sequences (λ = {result.metadata['damping']:.3g}, "
             f"{result.metadata['num_scored_parameters']} parameters)"]
    for method in ("cci", "topk"):
        sel = select(result, method, budget=0.1, seed=seed)
        (out / f"coreset_{method}.txt").write_text("".join(f"{i}\n" for i in sel.ids or []), encoding="utf-8")
        plot_selection(result.scores, sel, out / f"coreset_{method}.png")
        lines.append(f"{method}: {sel.budget} sequences -> {out / f'coreset_{method}.txt'}")
    print("\n".join(lines))
    return out

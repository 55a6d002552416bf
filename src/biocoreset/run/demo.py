"""``biocoreset demo``: the whole method on data and a model the project generates, in about a minute.

1. generate an RNA corpus (motif/hairpin families with near-duplicates, :mod:`biocoreset.data.synthetic`);
2. pretrain a tiny RNA masked LM (an ``EsmForMaskedLM``) from scratch for a few hundred MLM steps —
   the "already pretrained model" the method starts from;
3. fine-tune it on a random ``D_sub`` (paper A.5, scaled down: the paper's lr 1e-5 with 50 warm-up steps
   would not move a model in the ~10 steps a demo ``D_sub`` allows), with the before/after diagnostic;
4. fit the diagonal Fisher on ``D_sub`` and score every sequence (written shard by shard, resumable);
5. select 10% with CCI and with Top-I, writing FASTA, id lists and plots.

Everything lands in one folder (default ``biocoreset-demo/``); ``summary.txt`` says what is where.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch

from biocoreset.errors import OutputExistsError
from biocoreset.protocols import ModelAdapter
from biocoreset.runtime.distributed import DistContext
from biocoreset.store.atomic import atomic_path
from biocoreset.train.core import Trainer, train_loop
from biocoreset.train.schedules import make_lr_scheduler

__all__ = ["pretrain_mlm", "run_demo"]


def pretrain_mlm(
    adapter: ModelAdapter,
    records: list[tuple[str, str]],
    *,
    steps: int = 300,
    batch_size: int = 32,
    lr: float = 2e-3,
    warmup_steps: int = 30,
    seed: int = 0,
    progress: bool | None = None,
) -> list[float]:
    """A short masked-LM pretraining run on the training core (AdamW, linear warm-up, then constant).

    Batches are drawn uniformly at random with a generator seeded by ``seed``; the masking of step
    ``s`` uses seed ``seed + s`` so each step sees fresh masks. The full pretraining command with
    the paper's schedule, checkpoints and resume is ``biocoreset pretrain``.

    Returns:
        The loss of every step.

    >>> from biocoreset.adapters.hf import HFAdapter
    >>> from biocoreset.testing import tiny_esm, random_rna
    >>> losses = pretrain_mlm(HFAdapter(*tiny_esm()), random_rna(8), steps=3, batch_size=4)
    >>> len(losses)
    3
    """
    model = adapter.model
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    sched = make_lr_scheduler(opt, "constant", warmup_steps=warmup_steps)
    rng = np.random.default_rng(seed)
    size = min(batch_size, len(records))

    def plan(step: int) -> tuple[int, list[int]]:  # called once per step, in order
        return 0, rng.choice(len(records), size=size, replace=False).tolist()

    def step_fn(module: torch.nn.Module, step: int, epoch: int, idx: list[int]) -> float:
        loss = module(adapter.collate([records[i] for i in idx], seed=seed + step)).mean()
        loss.backward()
        return float(loss.detach())

    losses: list[float] = []
    was_training = model.training
    model.train()
    trainer = Trainer(adapter, opt, sched, ctx=DistContext())
    try:
        train_loop(
            trainer,
            plan,
            total=steps,
            step_fn=step_fn,
            progress=progress,
            desc="pretrain",
            on_step=lambda record: losses.append(record.loss),
        )
    finally:
        trainer.close()
        model.train(was_training)
    return losses


def run_demo(
    output: str | os.PathLike[str] = "biocoreset-demo",
    *,
    force: bool = False,
    progress: bool | None = True,
    n: int = 600,
    seed: int = 0,
    pretrain_steps: int = 300,
) -> Path:
    """Run the demo into ``output`` and return the folder.

    Args:
        output: Folder to write.
        force: Replace an existing non-empty folder.
        progress: Progress bars (``None``: when stderr is a terminal).
        n: Corpus size.
        seed: Seed of everything.
        pretrain_steps: MLM steps of the from-scratch pretraining.

    Raises:
        OutputExistsError: ``output`` exists and is not empty, and ``force`` is false.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(
        1
    )  # the model is tiny: one thread is as fast, and immune to oversubscription
    try:
        return _run_demo(
            output, force=force, progress=progress, n=n, seed=seed, pretrain_steps=pretrain_steps
        )
    finally:
        torch.set_num_threads(threads)


#: What the demo writes into its folder; ``--force`` replaces these (each whole, when its new one
#: is complete) and nothing else.
DEMO_OUTPUTS = (
    "corpus.fasta",
    "pretrain_loss.png",
    "finetune",
    "scores.parquet",
    "scores.parquet.parts",
    "select-cci",
    "select-topk",
    "summary.txt",
)


def _check_demo_folder(out: Path, *, force: bool) -> None:
    """Refuse a file, a folder that is not a demo's, or an earlier demo without ``force``. Nothing
    is deleted: each old output stays until the new one replaces it (docs/reliability.md)."""
    if not out.exists():
        return
    if not out.is_dir():
        raise OutputExistsError(
            f"{str(out)!r} is a file, not a demo folder; choose another output folder."
        )
    entries = {p.name for p in out.iterdir()}
    if not entries:
        return
    own = entries & set(DEMO_OUTPUTS)
    if not own:
        raise OutputExistsError(
            f"{str(out)!r} is not empty and is not a biocoreset demo folder (it holds none of "
            f"{', '.join(DEMO_OUTPUTS[:3])}, ...); choose another output folder."
        )
    if not force:
        raise OutputExistsError(f"{str(out)!r} holds an earlier demo; pass --force to replace it.")


def _run_demo(
    output: str | os.PathLike[str],
    *,
    force: bool,
    progress: bool | None,
    n: int,
    seed: int,
    pretrain_steps: int,
) -> Path:

    from biocoreset.store.owned import OwnedOutput

    owned = OwnedOutput(output, own=DEMO_OUTPUTS, command="demo")
    out = owned.target  # a symbolic link is written through
    _check_demo_folder(out, force=force)
    out.mkdir(parents=True, exist_ok=True)
    with owned.locked():  # one demo at a time in a folder
        return _write_demo(
            out, force=force, progress=progress, n=n, seed=seed, pretrain_steps=pretrain_steps
        )


def _write_demo(
    out: Path, *, force: bool, progress: bool | None, n: int, seed: int, pretrain_steps: int
) -> Path:
    from biocoreset.adapters.hf import HFAdapter
    from biocoreset.api import score_to_file
    from biocoreset.data.synthetic import synthetic_rna_corpus, write_fasta
    from biocoreset.diagnose.plots import plot_loss_curve
    from biocoreset.selection.folder import select_to_folder
    from biocoreset.testing import tiny_esm
    from biocoreset.train.finetune import finetune, save_finetuned

    t0 = time.perf_counter()
    torch.manual_seed(seed)
    records = synthetic_rna_corpus(n, seed=seed)
    with atomic_path(out / "corpus.fasta", force=True) as tmp:
        write_fasta(records, tmp)
    corpus = out / "corpus.fasta"
    model, tokenizer = tiny_esm(
        seed=seed, dtype=torch.float32, layers=2, hidden=64, heads=4, max_positions=130
    )
    adapter = HFAdapter(model, tokenizer)
    lines = [f"corpus: {n} generated RNA sequences in 8 families -> {corpus}"]

    losses = pretrain_mlm(
        adapter, records, steps=pretrain_steps, batch_size=32, seed=seed, progress=progress
    )
    plot = out / f".pretrain_loss.{os.getpid()}.png"  # a PNG name for matplotlib, then renamed
    plot_loss_curve(losses, plot, title="demo pretraining (masked LM, from scratch)")
    os.replace(plot, out / "pretrain_loss.png")
    lines.append(
        f"pretrain: {pretrain_steps} MLM steps, loss {np.mean(losses[:10]):.3f} -> "
        f"{np.mean(losses[-10:]):.3f} (pretrain_loss.png)"
    )

    ft = finetune(
        adapter,
        corpus,
        subset=0.25,
        lr=1e-4,
        warmup_steps=5,
        batch_size=16,
        seed=seed,
        diagnostic_samples=None,
        progress=progress,
    )
    save_finetuned(out / "finetune", adapter, ft, force=force)
    lines.append(ft.summary().replace("\n", "\n  ") + " (finetune/)")

    meta = score_to_file(
        adapter,
        corpus,
        out / "scores.parquet",
        subset=0.25,
        batch_size=16,
        seed=seed,
        progress=progress,
        force=force,
    )
    lines.append(
        f"scores: {meta['num_sequences']} sequences, diagonal Fisher on D_sub = {meta['subset_size']}, "
        f"λ = {meta['damping']:.3g}, {meta['num_scored_parameters']:,} parameters -> scores.parquet"
    )
    for method, options in (("cci", {"beta": 0.05, "strata": 50}), ("topk", {})):
        summary = select_to_folder(
            out / "scores.parquet",
            out / f"select-{method}",
            method=method,
            budget=0.1,
            seed=seed,
            options=options,
            progress=progress,
            force=force,
        )
        lines.append(
            f"{method}: {summary['budget']} sequences -> select-{method}/ (coreset.fasta, "
            "coreset_ids.txt, selection.png)"
        )
    lines.append(f"done in {time.perf_counter() - t0:.1f} s")
    text = "\n".join(lines)
    with atomic_path(out / "summary.txt", force=True) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")
    print(text)
    return out

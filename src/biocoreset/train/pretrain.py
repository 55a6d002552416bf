"""Masked-LM pretraining from scratch on a coreset (paper §A.3/A.4).

The adapter's architecture is re-initialised (seeded) and trained on the coreset records with the
paper's recipe by default: AdamW (lr 1e-4, weight decay 0.01), linear warm-up over 2,000 steps then
inverse-square-root decay, 10 epochs, batch 16, seed 0 (:class:`PretrainConfig`).

Determinism and exact resume. Everything a step does is a function of ``(config, step)``: the epoch's
order is a permutation seeded by ``(seed, epoch)``, masking uses the adapter's deterministic collate
with a seed derived from ``(seed, epoch)`` (so a sequence is masked differently each epoch but
reproducibly), and the torch generator (dropout) is re-seeded from ``(seed, step, rank)`` before each
step. A checkpoint (model, optimizer, scheduler, RNG states, step, loss history) is written atomically
every ``checkpoint_every`` steps (:mod:`biocoreset.train.checkpoints`); rerunning the same command
resumes from the newest one and reaches the same weights as an uninterrupted run (bit-for-bit on
CPU).

The loop, data parallelism and progress are the training core's (:mod:`biocoreset.train.core`),
shared with fine-tuning. When :mod:`torch.distributed` is initialised (e.g. under ``torchrun``) the
model is wrapped in :class:`~torch.nn.parallel.DistributedDataParallel`; ``batch_size`` is the
*global* batch, split over ranks, and the loss is normalised by global counts, so the update equals
the single-process one.

The trained model is saved into ``<output>/final`` by :func:`biocoreset.modelio.save_model` (a
transformers folder, or ``model.pt`` for other models, with the manifest naming the adapter), so
``--model <output>`` loads it back in every command.

Example:
    >>> import tempfile, torch
    >>> from biocoreset.adapters.hf import HFAdapter
    >>> from biocoreset.testing import tiny_esm, random_rna
    >>> model, tok = tiny_esm(dtype=torch.float32)
    >>> cfg = PretrainConfig(epochs=1, batch_size=4, warmup_steps=2, progress=False)
    >>> out = pretrain(HFAdapter(model, tok), random_rna(8), tempfile.mkdtemp(), config=cfg)
    >>> out.steps
    2
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch

from biocoreset.data.batching import grouped_order
from biocoreset.diagnose.plots import plot_training_history
from biocoreset.errors import ConfigError, OutputExistsError
from biocoreset.modelio import FINAL_DIR, MODEL_MANIFEST, resolve_device, save_model
from biocoreset.protocols import ModelAdapter, capabilities
from biocoreset.runtime.distributed import DistContext, current
from biocoreset.store.atomic import atomic_path
from biocoreset.train.checkpoints import (
    CHECKPOINT_DIR,
    checkpoint_path,
    list_checkpoints,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
    write_history,
)
from biocoreset.train.core import EpochPlan, StepRecord, Trainer, local_share, train_loop
from biocoreset.train.coreset import (
    coreset_fingerprint,
    epoch_mask_seed,
    load_coreset,
    plan_steps,
    pretrain_order,
    read_id_list,
    seed_words,
)
from biocoreset.train.outdir import (
    PRETRAIN_FILES,
    check_own_folder,
    discard_own,
    write_model_folder,
)
from biocoreset.train.pretrain_config import PretrainConfig, load_pretrain_config
from biocoreset.train.reinit import reinitialise
from biocoreset.train.schedules import make_lr_scheduler

__all__ = [
    "CHECKPOINT_DIR",
    "MODEL_MANIFEST",
    "PretrainConfig",
    "PretrainResult",
    "StepInfo",
    "epoch_mask_seed",
    "load_coreset",
    "load_pretrain_config",
    "plan_steps",
    "pretrain",
    "read_id_list",
    "reinitialise",
]

# CHECKPOINT_DIR, MODEL_MANIFEST, PretrainConfig, load_pretrain_config, the coreset helpers and
# reinitialise live in their own modules and are re-exported here (the pretraining front door).


@attrs.frozen(kw_only=True)
class StepInfo:
    """What the ``callback`` of :func:`pretrain` receives after each optimizer step.

    Attributes:
        step: Optimizer steps done so far (1 after the first).
        total_steps: Steps the run will take.
        epoch: Epoch of the step (0-based).
        loss: Global batch loss of the step.
        lr: Learning rate used by the step.
        checkpoint: Path of the checkpoint written after this step, if any.
    """

    step: int
    total_steps: int
    epoch: int
    loss: float
    lr: float
    checkpoint: Path | None = None


@attrs.frozen(kw_only=True)
class PretrainResult:
    """Outcome of :func:`pretrain`.

    Attributes:
        output_dir: The run folder.
        final_dir: Folder with the trained model (``<output>/final``).
        steps: Optimizer steps taken in total (including those before a resume).
        epochs: Epochs started (a final partial epoch counts).
        num_sequences: Coreset size.
        history: ``(step, epoch, loss, lr)`` per logged step.
        resumed_from: Step of the checkpoint the run resumed from (``None``: fresh start).
        seconds: Wall time of this call.
    """

    output_dir: Path
    final_dir: Path
    steps: int
    epochs: int
    num_sequences: int
    history: tuple[tuple[int, int, float, float], ...]
    resumed_from: int | None
    seconds: float

    @property
    def final_loss(self) -> float:
        """Loss of the last logged step."""
        return self.history[-1][2] if self.history else float("nan")


def _param_groups(model: torch.nn.Module, config: PretrainConfig) -> list[dict[str, Any]]:
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        skip = any(fnmatch.fnmatchcase(name, pat) for pat in config.no_decay)
        (no_decay if skip else decay).append(p)
    groups = [{"params": decay, "weight_decay": config.weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def pretrain(
    adapter: ModelAdapter,
    corpus: Any,
    output_dir: str | os.PathLike[str],
    *,
    coreset: Sequence[str] | str | os.PathLike[str] | None = None,
    config: PretrainConfig | None = None,
    resume: bool = True,
    force: bool = False,
    callback: Callable[[StepInfo], None] | None = None,
    adapter_spec: dict[str, Any] | None = None,
    **options: Any,
) -> PretrainResult:
    """Pretrain ``adapter``'s architecture from scratch on a coreset.

    Args:
        adapter: A :class:`~biocoreset.protocols.ModelAdapter`; its model is re-initialised (unless
            ``config.reinit`` is false), moved to the device and trained in place.
        corpus: The corpus: a FASTA path or an iterable of ``(id, sequence)`` pairs.
        output_dir: Run folder: ``checkpoints/``, ``final/`` (the trained model and
            ``biocoreset-model.json``), ``loss.csv``, ``loss.png``, ``pretrain.json``.
        coreset: Id-list file or ids selecting the coreset from ``corpus`` (``None``: all of it).
        config: A :class:`PretrainConfig`; keyword ``options`` override its fields.
        resume: Continue from the newest checkpoint in ``output_dir`` if there is one.
        force: Delete ``output_dir`` first.
        callback: Called with a :class:`StepInfo` after every optimizer step (on every rank).
        adapter_spec: ``{"adapter": name, "adapter_options": {...}}`` recorded in the model manifest so
            the benchmark runner can rebuild the model.

    Returns:
        A :class:`PretrainResult`.

    Raises:
        ConfigError: Invalid options, or a resume with a different configuration or coreset.
        InputError: Coreset ids missing from the corpus, duplicates, empty coreset.
        OutputExistsError: ``output_dir`` holds a run and neither ``resume`` nor ``force`` allows reuse.
    """
    t0 = time.time()
    cfg = config or PretrainConfig()
    if options:
        valid = {f.name for f in attrs.fields(PretrainConfig)}
        unknown = sorted(set(options) - valid)
        if unknown:
            raise ConfigError(
                f"unknown pretrain option(s) {unknown}; valid: {', '.join(sorted(valid))}."
            )
        cfg = attrs.evolve(cfg, **options)
    if not isinstance(adapter, ModelAdapter):
        raise ConfigError(
            "pretrain() needs a ModelAdapter (e.g. HFAdapter(model, tokenizer)), got "
            f"{type(adapter).__name__}."
        )
    ctx = current()
    out = Path(output_dir)
    records = load_coreset(corpus, coreset)
    n = len(records)
    per_epoch, total = plan_steps(n, cfg)
    fingerprint = coreset_fingerprint(records)
    lengths = np.array([len(seq) for _, seq in records], dtype=np.int64)
    inputs: list[Any] = [x for x in (corpus, coreset) if isinstance(x, (str, os.PathLike))]
    inputs.append((adapter_spec or {}).get("model"))
    _prepare_output(out, resume=resume, force=force, ctx=ctx, inputs=inputs)
    ckpt_dir = out / CHECKPOINT_DIR

    device = resolve_device(cfg.device, ctx=ctx)
    model = adapter.model
    if cfg.reinit:
        reinitialise(model, cfg.seed)
    model.to(device)
    model.train()
    optimizer = torch.optim.AdamW(
        _param_groups(model, cfg), lr=cfg.lr, betas=cfg.betas, eps=cfg.eps
    )
    scheduler = make_lr_scheduler(
        optimizer, cfg.schedule, warmup_steps=cfg.warmup_steps, total_steps=total
    )
    start, history, resumed_from = 0, [], None
    existing = list_checkpoints(ckpt_dir)
    if resume and existing:
        step0, path = existing[-1]
        state = load_checkpoint(path)
        _check_resume(state, cfg, n, fingerprint, path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"], device)
        start, history, resumed_from = (
            int(state["step"]),
            [tuple(h) for h in state["history"]],
            step0,
        )
        if total < start:
            raise ConfigError(
                f"checkpoint {str(path)!r} is at step {start}, beyond this run's {total} steps."
            )
    trainer = Trainer(
        adapter,
        optimizer,
        scheduler,
        ctx=ctx,
        max_grad_norm=cfg.max_grad_norm,
        clip_parameters=list(model.parameters()),
        find_unused_parameters=cfg.ddp_find_unused_parameters,
    )
    plan = EpochPlan(
        n,
        batch_size=cfg.batch_size,
        order=lambda epoch: _epoch_order(n, cfg, epoch, lengths),
        steps_per_epoch=per_epoch,
    )

    def on_step(record: StepRecord) -> None:
        done = record.step
        if done % cfg.log_every == 0 or done == total:
            history.append((done, record.epoch, record.loss, record.lr))
        saved = None
        if done % cfg.checkpoint_every == 0 or done == total:
            saved = _checkpoint(ckpt_dir, done, trainer, history, cfg, n, fingerprint, device)
            if ctx.is_main:
                write_history(history, out)
        if callback is not None:
            callback(
                StepInfo(
                    step=done,
                    total_steps=total,
                    epoch=record.epoch,
                    loss=record.loss,
                    lr=record.lr,
                    checkpoint=saved,
                )
            )

    step_fn = functools.partial(
        _step, adapter=adapter, records=records, cfg=cfg, ctx=ctx, device=device
    )
    try:
        train_loop(
            trainer,
            plan,
            total=total,
            start=start,
            step_fn=step_fn,
            progress=cfg.progress,
            desc="pretrain",
            on_step=on_step,
        )
    finally:
        trainer.close()

    model.eval()
    final = out / FINAL_DIR
    if ctx.is_main:
        _save_final(adapter, final, adapter_spec)
        write_history(history, out)
        plot_training_history(history, out / "loss.png", title=f"pretraining on {n} sequences")
        meta = {
            "config": cfg.to_dict(),
            "num_sequences": n,
            "coreset_sha256": fingerprint,
            "steps": total,
            "steps_per_epoch": per_epoch,
            "epochs": math.ceil(total / per_epoch),
            "world_size": ctx.world_size,
            "resumed_from": resumed_from,
            "final_loss": history[-1][2] if history else None,
            "adapter": capabilities(adapter).name,
            "seconds": round(time.time() - t0, 3),
            "biocoreset_version": getattr(sys.modules.get("biocoreset"), "__version__", None),
        }
        with atomic_path(out / "pretrain.json", force=True) as tmp:
            tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    ctx.barrier()
    return PretrainResult(
        output_dir=out,
        final_dir=final,
        steps=total,
        epochs=math.ceil(total / per_epoch),
        num_sequences=n,
        history=tuple(history),
        resumed_from=resumed_from,
        seconds=time.time() - t0,
    )


def _save_final(adapter: ModelAdapter, final: Path, adapter_spec: dict[str, Any] | None) -> None:
    spec = dict(adapter_spec or {})
    write_model_folder(  # all-old or all-new
        final,
        lambda stage: save_model(
            adapter,
            stage,
            format="hf",
            spec={"adapter": spec.get("adapter"), "adapter_options": spec.get("adapter_options")},
            extra={"trained_from": spec["model"]} if spec.get("model") else None,
        ),
    )


def _step(
    module: torch.nn.Module,
    step: int,
    epoch: int,
    idx: list[int],
    *,
    adapter: ModelAdapter,
    records: Sequence[tuple[str, str]],
    cfg: PretrainConfig,
    ctx: DistContext,
    device: torch.device,
) -> float:
    """Forward and backward of one global batch; returns the global batch loss."""
    torch.manual_seed(seed_words(cfg.seed, step, ctx.rank, 0xD50))
    local, real = local_share(idx, ctx)
    batch = adapter.collate(
        [records[i] for i in local], seed=epoch_mask_seed(cfg.seed, epoch, vary=cfg.vary_masking)
    )
    if cfg.loss_reduction == "token":
        counts = (batch.labels != -100).sum(1).to(torch.float64)
    else:
        counts = torch.ones(len(local), dtype=torch.float64)
    if not real:
        counts = torch.zeros_like(counts)
    total_count = counts.sum().to(device)
    ctx.all_reduce_(total_count)
    total = total_count.item()
    with _autocast(cfg.precision, device):
        losses = module(batch)
    weights = (counts / total).to(device=losses.device, dtype=losses.dtype)
    loss = (losses * weights).sum()
    # DDP averages gradients over ranks; scale so the result is the global weighted mean.
    (loss * ctx.world_size).backward()
    report = loss.detach().to(torch.float64).clone()
    ctx.all_reduce_(report)
    return float(report.item())


def _check_resume(
    state: dict[str, Any], cfg: PretrainConfig, n: int, fingerprint: str, path: Path
) -> None:
    saved = state.get("config", {})
    now = cfg.trajectory_dict()
    diff = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
    if diff:
        shown = ", ".join(f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in diff[:5])
        raise ConfigError(
            f"cannot resume from {str(path)!r}: the configuration changed ({shown}). Use the original "
            "options, a new output folder, or force=True (--force) to start over."
        )
    if state.get("num_sequences") != n or state.get("coreset_sha256") != fingerprint:
        raise ConfigError(
            f"cannot resume from {str(path)!r}: it was trained on a different coreset "
            f"({state.get('num_sequences')} sequences then, {n} now). Use a new output folder or force=True."
        )


def _checkpoint(
    folder: Path,
    step: int,
    trainer: Trainer,
    history: list[Any],
    cfg: PretrainConfig,
    n: int,
    fingerprint: str,
    device: torch.device,
) -> Path:
    path = checkpoint_path(folder, step)
    ctx = trainer.ctx
    if ctx.is_main:
        payload = {
            "step": step,
            "model": trainer.adapter.model.state_dict(),
            "optimizer": trainer.optimizer.state_dict(),
            "scheduler": trainer.scheduler.state_dict(),
            "rng": rng_state(device),
            "history": [list(h) for h in history],
            "config": cfg.trajectory_dict(),
            "num_sequences": n,
            "coreset_sha256": fingerprint,
            "world_size": ctx.world_size,
        }
        save_checkpoint(path, payload)
        for _, old in list_checkpoints(folder)[: -cfg.keep_checkpoints]:
            old.unlink(missing_ok=True)
    ctx.barrier()
    return path


def _prepare_output(
    out: Path, *, resume: bool, force: bool, ctx: DistContext, inputs: list[Any]
) -> None:
    ckpts = list_checkpoints(out / CHECKPOINT_DIR)
    done = (out / "pretrain.json").exists()
    if ctx.is_main:
        ours = check_own_folder(out, PRETRAIN_FILES, command="pretrain", inputs=inputs)
        if force and ours:
            discard_own(out, PRETRAIN_FILES)  # only what pretrain wrote; pretrain.json last
        elif done and not resume:
            raise OutputExistsError(
                f"{str(out)!r} holds a finished run; pass force=True (--force) to redo it."
            )
        elif ckpts and not resume:
            raise OutputExistsError(
                f"{str(out)!r} holds checkpoints of an unfinished run; resume it (resume=True) or pass "
                "force=True (--force) to start over."
            )
        (out / CHECKPOINT_DIR).mkdir(parents=True, exist_ok=True)
    ctx.barrier()


def _autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def _epoch_order(n: int, cfg: PretrainConfig, epoch: int, lengths: np.ndarray) -> np.ndarray:
    """The records of epoch ``epoch`` in training order: the seeded permutation, grouped by length
    into shuffled batches when ``cfg.group_by_length``."""
    order = pretrain_order(n, cfg.seed, epoch)
    if not cfg.group_by_length:
        return order
    return grouped_order(order, lengths, cfg.batch_size, seed=(cfg.seed, epoch))

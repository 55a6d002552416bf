"""Post-hoc fine-tuning on ``D_sub`` (paper A.5, Assumption 1), with a before/after diagnostic.

The paper lightly fine-tunes the pretrained model on the random subset ``D_sub`` before computing
influence scores, so that the model is close to a minimum of the subset's loss (Assumption 1, which
justifies replacing the Hessian by the empirical Fisher). Defaults are the paper's: 1 epoch over
``D_sub``, AdamW (lr 1e-5, weight decay 0.01), linear warm-up over 50 steps, batch 16, 15% masking
(BERT 80/10/10), every parameter the loss uses trainable, seed 0. ``enabled=False`` is the paper's
"w/o ft" variant.

Details that the paper leaves open, as implemented:

* after the warm-up the learning rate decays linearly to 0 at the last step (``schedule="linear"``,
  the usual "linear schedule with warm-up"); ``schedule="constant"`` keeps it flat. Step ``s``
  (0-based) uses ``lr × (s+1)/W`` during warm-up, so no step is taken at learning rate 0;
* weight decay applies to matrices and embeddings, not to biases and normalisation scales (the
  BERT/Hugging Face convention);
* ``D_sub`` is shuffled each epoch with a generator seeded by ``(seed, epoch)``; masking of epoch
  ``e`` uses seed ``seed + e`` (so epoch 0 masks exactly as scoring with the same seed does);
* the fine-tuning loss is always the masked-LM loss (also under the ``paper-compat`` preset, whose
  unmasked loss applies to scoring only);
* ``D_sub`` (the small subset, e.g. 0.2M of 23M sequences) is held in memory; the corpus is streamed.

The diagnostic reports, before and after, the mean masked-LM loss and the mean per-sample gradient
norm (over the trained parameters, model in eval mode) on ``diagnostic_samples`` sequences of
``D_sub``: after a good fine-tune the loss is lower and gradients are smaller — how well Assumption 1
holds.

The loop, data parallelism and progress are the training core's (:mod:`biocoreset.train.core`),
shared with pretraining; the learning-rate rule is :class:`~biocoreset.train.schedules.FinetuneSchedule`.
Under ``torchrun`` each global batch is split over the ranks and trained with
DistributedDataParallel; every rank back-propagates ``Σ_local ℓ / batch_size`` (scaled by the
world size, as DDP averages), so the update equals the single-process one.

:func:`save_finetuned` writes the model with :func:`biocoreset.modelio.save_model` (``model.pt``
with its manifest), so the output folder loads back with ``--model FOLDER``.

Example:
    >>> from biocoreset.testing import tiny_esm, random_rna
    >>> model, tokenizer = tiny_esm()
    >>> result = finetune(model, random_rna(8), tokenizer=tokenizer, subset=8, batch_size=4,
    ...                   diagnostic_samples=4)
    >>> result.steps, result.before.samples
    (2, 4)
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch

from biocoreset.config import FinetuneConfig
from biocoreset.data.batching import grouped_order
from biocoreset.data.sources import as_source
from biocoreset.data.validation import Validator
from biocoreset.errors import ConfigError
from biocoreset.modelio import load_weights, save_model
from biocoreset.protocols import ModelAdapter, capabilities
from biocoreset.runtime.distributed import DistContext, current
from biocoreset.runtime.progress import progress_bar, progress_enabled
from biocoreset.store.atomic import atomic_path
from biocoreset.train.core import EpochPlan, StepRecord, Trainer, local_share, train_loop
from biocoreset.train.outdir import check_finetune_output, write_model_folder
from biocoreset.train.schedules import FinetuneSchedule, lr_factor, make_lr_scheduler

__all__ = [
    "Diagnostic",
    "FinetuneResult",
    "check_finetune_output",
    "diagnose",
    "finetune",
    "load_weights",
    "lr_factor",
    "save_finetuned",
]

# load_weights (biocoreset.modelio) and lr_factor (biocoreset.train.schedules) are re-exported here.


@attrs.frozen(kw_only=True)
class Diagnostic:
    """Mean masked-LM loss and mean per-sample gradient norm on a sample of ``D_sub``.

    Attributes:
        mean_loss: Mean per-sample loss.
        mean_grad_norm: Mean Euclidean norm of the per-sample gradients (trained parameters).
        samples: Number of sequences.
    """

    mean_loss: float
    mean_grad_norm: float
    samples: int


@attrs.frozen(kw_only=True)
class FinetuneResult:
    """What fine-tuning did.

    Attributes:
        enabled: ``False`` for the "w/o ft" variant (no step taken).
        steps: Optimizer steps taken.
        subset_size: ``|D_sub|``.
        subset_ids: ``D_sub`` ids in input order.
        losses: Training loss of every step (mean over the global batch).
        learning_rates: Learning rate of every step.
        before: Diagnostic before fine-tuning (``None`` when disabled).
        after: Diagnostic after fine-tuning (``None`` when disabled or "w/o ft").
        config: The configuration, as a dict.
        seconds: Wall time.
        world_size: Number of processes.
    """

    enabled: bool
    steps: int
    subset_size: int
    subset_ids: list[str]
    losses: list[float]
    learning_rates: list[float]
    before: Diagnostic | None
    after: Diagnostic | None
    config: dict[str, Any]
    seconds: float
    world_size: int

    def summary(self) -> str:
        """A few lines for logs.

        >>> r = FinetuneResult(enabled=False, steps=0, subset_size=3, subset_ids=[], losses=[],
        ...     learning_rates=[], before=None, after=None, config={}, seconds=0.0, world_size=1)
        >>> r.summary()
        'fine-tuning skipped (w/o ft); D_sub = 3 sequences'
        """
        if not self.enabled:
            return f"fine-tuning skipped (w/o ft); D_sub = {self.subset_size} sequences"
        lines = [f"fine-tuned {self.steps} steps on D_sub = {self.subset_size} sequences"]
        for name, d in (("before", self.before), ("after", self.after)):
            if d is not None:
                lines.append(
                    f"  {name:<6}: mean loss {d.mean_loss:.4f}, mean per-sample gradient norm "
                    f"{d.mean_grad_norm:.4g} ({d.samples} sequences)"
                )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (``subset_ids`` included)."""
        return attrs.asdict(self)


@contextlib.contextmanager
def _finetune_mode(adapter: ModelAdapter, masking: Any) -> Iterator[None]:
    """While the block runs: the masked-LM loss (a ``paper-compat`` adapter is switched back) and,
    when the adapter has its own masking, ``masking``; both restored after."""
    caps = capabilities(adapter)
    changes: dict[str, Any] = {}
    if caps.loss_mode != "masked":
        changes["loss_mode"] = "masked"
    if caps.masking is not None:
        changes["masking"] = masking
    saved = {name: getattr(caps, name) for name in changes}
    for name, value in changes.items():
        setattr(caps, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(caps, name, value)


def diagnose(
    adapter: ModelAdapter,
    records: list[tuple[str, str]],
    params: Mapping[str, torch.nn.Parameter],
    *,
    batch_size: int,
    seed: int,
    ctx: DistContext | None = None,
    progress: bool | None = None,
    desc: str = "diagnostic",
) -> Diagnostic:
    """Mean loss and mean per-sample gradient norm over ``records`` (model in eval mode).

    Under ``torchrun`` batch ``j`` goes to rank ``j mod world_size`` and the sums are all-reduced.
    """
    from biocoreset.grads import make_engine

    ctx = ctx or current()
    engine = make_engine(adapter, params, engine="auto")
    was_training = adapter.model.training
    adapter.model.eval()
    sums = torch.zeros(2, dtype=torch.float64)
    n_batches = math.ceil(len(records) / batch_size)
    mine = range(ctx.rank, n_batches, ctx.world_size)
    try:
        for j in progress_bar(
            mine, enabled=progress_enabled(progress) and ctx.is_main, desc=desc, unit="batch"
        ):
            recs = records[j * batch_size : (j + 1) * batch_size]
            batch = adapter.collate(recs, seed=seed)
            sq = torch.zeros(len(recs), dtype=torch.float64)

            def on_block(factors: Any, sq: torch.Tensor = sq) -> None:
                sq.add_(factors.squared_norms().detach().to("cpu", torch.float64))

            losses = engine.run(batch, on_block)
            sums[0] += losses.detach().to("cpu", torch.float64).sum()
            sums[1] += sq.sqrt().sum()
    finally:
        adapter.model.train(was_training)
    ctx.all_reduce_(sums)
    n = max(len(records), 1)
    return Diagnostic(
        mean_loss=float(sums[0]) / n, mean_grad_norm=float(sums[1]) / n, samples=len(records)
    )


def _decay_groups(
    params: Mapping[str, torch.nn.Parameter], weight_decay: float
) -> list[dict[str, Any]]:
    decay = [p for p in params.values() if p.ndim >= 2]
    no_decay = [p for p in params.values() if p.ndim < 2]
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


def finetune(
    model: Any,
    sequences: Any,
    *,
    tokenizer: Any = None,
    adapter: str = "auto",
    adapter_options: dict[str, Any] | None = None,
    config: FinetuneConfig | None = None,
    **options: Any,
) -> FinetuneResult:
    """Fine-tune the model in place on ``D_sub`` (paper A.5) and report the diagnostic.

    Args:
        model: An adapter, or a bare masked LM (wrapped as in :func:`biocoreset.score`).
        sequences: Sequence file path, :class:`~biocoreset.data.sources.SequenceSource`, or
            ``(id, sequence)`` pairs. ``D_sub`` is drawn from it as :func:`biocoreset.score` draws it
            (same ``subset`` and ``subset_seed`` give the same ``D_sub``).
        tokenizer: Tokenizer of a bare Hugging Face model.
        adapter: Adapter name for a bare model.
        adapter_options: Adapter options.
        config: A :class:`~biocoreset.config.FinetuneConfig`; keyword ``options`` override its fields.

    Returns:
        A :class:`FinetuneResult`. The adapter's model holds the fine-tuned weights.

    Raises:
        ConfigError: Unknown option or bad value.
        InputError: Bad input (validation, duplicate ids, subset larger than the data).

    Warns:
        QualityWarning: Fewer steps than the warm-up, or a small ``D_sub``
            (:mod:`biocoreset.diagnose.advice`).
    """
    from biocoreset.diagnose.advice import emit, finetune_advice
    from biocoreset.scoring import draw_subset, index_source, iter_rows, only_rows, resolve_adapter
    from biocoreset.scoring.subset import subset_order

    cfg = config or FinetuneConfig()
    names = [f.name for f in attrs.fields(FinetuneConfig)]
    unknown = set(options) - set(names)
    if unknown:
        raise ConfigError(
            f"unknown finetune() option(s) {sorted(unknown)}; valid: {', '.join(names)}."
        )
    cfg = attrs.evolve(cfg, **options)
    a_opts = dict(adapter_options or {})
    if not isinstance(model, ModelAdapter):
        a_opts.setdefault("masking", cfg.masking)
    adp = resolve_adapter(model, adapter=adapter, tokenizer=tokenizer, **a_opts)
    ctx = current(auto_init=True)
    show = progress_enabled(cfg.progress) and ctx.is_main
    t0 = time.perf_counter()
    source = as_source(sequences)

    def validator() -> Validator:
        return Validator.for_adapter(
            adp, policy=cfg.invalid, replacement=cfg.replacement, where=source.describe()
        )

    wanted = (
        None if cfg.subset is None or isinstance(cfg.subset, (int, float)) else list(cfg.subset)
    )
    index = index_source(source, validator(), wanted_ids=wanted, progress=show)
    subset_seed = cfg.seed if cfg.subset_seed is None else cfg.subset_seed
    rows = draw_subset(index, cfg.subset, subset_seed)
    found = [(rid, seq) for _, rid, seq in only_rows(iter_rows(source, validator()), rows)]
    records = [found[i] for i in subset_order([r for r, _ in found], cfg.subset, subset_seed)]
    params = adp.scored_parameters(None)
    config_dict = attrs.asdict(cfg)
    config_dict["masking"] = {
        "probability": cfg.masking.probability,
        "replacement": list(cfg.masking.replacement),
    }

    with _finetune_mode(adp, cfg.masking):
        diag_records: list[tuple[str, str]] = []
        if cfg.enabled and cfg.diagnostic_samples != 0:
            k = (
                len(records)
                if cfg.diagnostic_samples is None
                else min(cfg.diagnostic_samples, len(records))
            )
            pick = np.sort(
                np.random.default_rng([cfg.seed, 0xD1A6]).choice(
                    len(records), size=k, replace=False
                )
            )
            diag_records = [records[i] for i in pick.tolist()]

        def diagnostic(when: str) -> Diagnostic | None:
            if not diag_records:
                return None
            return diagnose(
                adp,
                diag_records,
                params,
                batch_size=cfg.batch_size,
                seed=cfg.seed,
                ctx=ctx,
                progress=show,
                desc=f"diagnostic ({when})",
            )

        before = diagnostic("before")
        losses: list[float] = []
        lrs: list[float] = []
        if cfg.enabled:
            losses, lrs = _train(adp, records, params, cfg, ctx, show)
        after = diagnostic("after")
    result = FinetuneResult(
        enabled=cfg.enabled,
        steps=len(losses),
        subset_size=len(records),
        subset_ids=[rid for rid, _ in records],
        losses=losses,
        learning_rates=lrs,
        before=before,
        after=after,
        config=config_dict,
        seconds=round(time.perf_counter() - t0, 3),
        world_size=ctx.world_size,
    )
    emit(finetune_advice(result))
    return result


def _train(
    adp: ModelAdapter,
    records: list[tuple[str, str]],
    params: Mapping[str, torch.nn.Parameter],
    cfg: FinetuneConfig,
    ctx: DistContext,
    show: bool,
) -> tuple[list[float], list[float]]:
    model = adp.model
    plist = list(params.values())
    optimizer = torch.optim.AdamW(_decay_groups(params, cfg.weight_decay), lr=cfg.lr)
    m = len(records)
    lengths = np.array([len(seq) for _, seq in records], dtype=np.int64)
    plan = EpochPlan(
        m,
        batch_size=cfg.batch_size,
        order=lambda epoch: _epoch_order(m, cfg, epoch, lengths),
    )
    total = plan.steps_per_epoch * cfg.epochs
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    scheduler = make_lr_scheduler(
        optimizer, FinetuneSchedule(cfg.warmup_steps, total, after=cfg.schedule)
    )

    def step_fn(module: torch.nn.Module, step: int, epoch: int, idx: list[int]) -> float:
        local, real = local_share(idx, ctx)
        per = module(adp.collate([records[i] for i in local], seed=cfg.seed + epoch))
        loss = per.sum() / len(idx)
        if not real:  # this rank has no sequence in a short final batch: take part with weight 0
            loss = loss * 0.0
        if ctx.is_distributed:  # DDP averages gradients over ranks; the update wants their sum
            loss = loss * ctx.world_size
        loss.backward()
        loss_sum = torch.zeros((), dtype=torch.float64)
        if real:
            loss_sum += per.detach().to("cpu", torch.float64).sum()
        for p in plist:  # every trained parameter takes part in every step
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        ctx.all_reduce_(loss_sum)
        return float(loss_sum) / len(idx)

    losses: list[float] = []
    lrs: list[float] = []

    def on_step(record: StepRecord) -> None:
        losses.append(record.loss)
        lrs.append(record.lr)

    was_training = model.training
    model.train(cfg.train_mode)
    trainer = Trainer(
        adp, optimizer, scheduler, ctx=ctx, max_grad_norm=cfg.max_grad_norm, clip_parameters=plist
    )
    try:
        train_loop(
            trainer,
            plan,
            total=total,
            step_fn=step_fn,
            progress=show,
            desc="fine-tune",
            on_step=on_step,
        )
    finally:
        trainer.close()
        model.train(was_training)
    return losses, lrs


def save_finetuned(
    folder: str | os.PathLike[str],
    adapter: ModelAdapter,
    result: FinetuneResult,
    *,
    force: bool = False,
    spec: Mapping[str, Any] | None = None,
    inputs: Sequence[str | os.PathLike[str] | None] = (),
) -> Path:
    """Write the fine-tuned model and ``finetune.json`` into ``folder``.

    The model is saved by :func:`biocoreset.modelio.save_model` in the ``"state-dict"`` format:
    ``model.pt`` (loadable with ``weights_only=True``), its manifest, and for transformers models
    ``config.json`` and the tokenizer, so ``--model FOLDER`` loads it back. Only rank 0 writes
    under ``torchrun``.

    Args:
        folder: Output folder.
        adapter: The fine-tuned adapter.
        result: What :func:`finetune` returned.
        force: Overwrite existing files.
        spec: Adapter name and options for the manifest (default: how the adapter was loaded).
        inputs: Paths the run read (sequences, model): ``folder`` must not be or hold one.

    The folder is written beside and swapped in whole (old or new model, never a mix); the user's
    files in an earlier output folder are kept. A non-empty folder that is not a ``finetune``
    output is refused, ``force`` or not.

    Raises:
        OutputExistsError: A file exists and ``force`` is false.
    """
    out = Path(folder)
    if not current().is_main:
        return out
    check_finetune_output(out, force=force, inputs=inputs)

    def write(stage: Path) -> None:
        save_model(adapter, stage, format="state-dict", spec=spec)
        with atomic_path(stage / "finetune.json", force=True) as tmp:
            tmp.write_text(json.dumps(result.to_dict(), indent=1, default=str), encoding="utf-8")

    return write_model_folder(out, write)  # all-old or all-new


def _epoch_order(m: int, cfg: FinetuneConfig, epoch: int, lengths: np.ndarray) -> np.ndarray:
    """``D_sub`` in the training order of epoch ``epoch``: a seeded permutation, grouped by length
    into shuffled batches when ``cfg.group_by_length``."""
    order = np.random.default_rng([cfg.seed, epoch]).permutation(m)
    if not cfg.group_by_length:
        return order
    return grouped_order(order, lengths, cfg.batch_size, seed=(cfg.seed, epoch))

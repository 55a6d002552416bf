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

Under ``torchrun`` each global batch is split over the ranks; every rank back-propagates
``Σ_local ℓ / batch_size`` and gradients are summed over ranks before the identical AdamW step, so
the update equals the single-process one (see :mod:`biocoreset.train.distributed`).

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
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch

from biocoreset.config import FinetuneConfig
from biocoreset.data.sources import as_source
from biocoreset.data.validation import Validator
from biocoreset.errors import ConfigError
from biocoreset.progress import progress_bar, progress_enabled
from biocoreset.protocols import ModelAdapter
from biocoreset.store.atomic import atomic_path, check_output
from biocoreset.train.distributed import (
    DistContext,
    allreduce_gradients,
    broadcast_parameters,
    current,
)

__all__ = [
    "Diagnostic",
    "FinetuneResult",
    "diagnose",
    "finetune",
    "load_weights",
    "lr_factor",
    "save_finetuned",
]


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


def lr_factor(step: int, *, warmup_steps: int, total_steps: int, schedule: str = "linear") -> float:
    """Multiplier of the base learning rate at 0-based optimizer step ``step``.

    Warm-up: ``(step+1)/W`` for the first ``W = warmup_steps`` steps; then ``"constant"`` stays at
    1 and ``"linear"`` decays to 0 at ``total_steps``: ``(T - step)/(T - W)``.

    >>> [round(lr_factor(s, warmup_steps=2, total_steps=4), 2) for s in range(4)]
    [0.5, 1.0, 1.0, 0.5]
    """
    w = max(1, warmup_steps)
    t = step + 1
    if t <= w or warmup_steps >= total_steps:
        return min(1.0, t / w)
    if schedule == "constant":
        return 1.0
    return max(0.0, (total_steps - step) / (total_steps - warmup_steps))


@contextlib.contextmanager
def _masked_loss(adapter: ModelAdapter) -> Iterator[None]:
    """Use the masked-LM loss while the block runs (a ``paper-compat`` adapter is switched back)."""
    mode = getattr(adapter, "loss_mode", None)
    if mode is None or mode == "masked":
        yield
        return
    adapter.loss_mode = "masked"  # type: ignore[attr-defined]
    try:
        yield
    finally:
        adapter.loss_mode = mode  # type: ignore[attr-defined]


@contextlib.contextmanager
def _masking(adapter: ModelAdapter, masking: Any) -> Iterator[None]:
    old = getattr(adapter, "masking", None)
    if old is None:
        yield
        return
    adapter.masking = masking  # type: ignore[attr-defined]
    try:
        yield
    finally:
        adapter.masking = old  # type: ignore[attr-defined]


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
    """
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

    with _masked_loss(adp), _masking(adp, cfg.masking):
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
    return FinetuneResult(
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


def _train(
    adp: ModelAdapter,
    records: list[tuple[str, str]],
    params: Mapping[str, torch.nn.Parameter],
    cfg: FinetuneConfig,
    ctx: DistContext,
    show: bool,
) -> tuple[list[float], list[float]]:
    model = adp.model
    broadcast_parameters(model, ctx)
    plist = list(params.values())
    optimizer = torch.optim.AdamW(_decay_groups(params, cfg.weight_decay), lr=cfg.lr)
    m = len(records)
    per_epoch = math.ceil(m / cfg.batch_size)
    total = per_epoch * cfg.epochs
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)

    def factor(step: int) -> float:
        return lr_factor(
            step, warmup_steps=cfg.warmup_steps, total_steps=total, schedule=cfg.schedule
        )

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    was_training = model.training
    model.train(cfg.train_mode)
    losses: list[float] = []
    lrs: list[float] = []
    step = 0
    try:
        with progress_bar(enabled=show, total=total, desc="fine-tune", unit="step") as bar:
            for epoch in range(cfg.epochs):
                order = np.random.default_rng([cfg.seed, epoch]).permutation(m)
                for b in range(per_epoch):
                    if step >= total:
                        break
                    idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
                    local = idx[ctx.rank :: ctx.world_size]
                    optimizer.zero_grad(set_to_none=True)
                    loss_sum = torch.zeros((), dtype=torch.float64)
                    if local.size:
                        batch = adp.collate(
                            [records[i] for i in local.tolist()], seed=cfg.seed + epoch
                        )
                        per = adp.per_sample_loss(batch)
                        (per.sum() / len(idx)).backward()
                        loss_sum += per.detach().to("cpu", torch.float64).sum()
                    for (
                        p
                    ) in plist:  # every trained parameter takes part in every step, on every rank
                        if p.grad is None:
                            p.grad = torch.zeros_like(p)
                    allreduce_gradients(plist, ctx)
                    ctx.all_reduce_(loss_sum)
                    if cfg.max_grad_norm is not None:
                        torch.nn.utils.clip_grad_norm_(plist, cfg.max_grad_norm)
                    lrs.append(float(optimizer.param_groups[0]["lr"]))
                    optimizer.step()
                    scheduler.step()
                    losses.append(float(loss_sum) / len(idx))
                    step += 1
                    bar.update(1)
                    bar.set_postfix(loss=f"{losses[-1]:.4f}", refresh=False)
    finally:
        model.train(was_training)
        optimizer.zero_grad(set_to_none=True)
    return losses, lrs


def save_finetuned(
    folder: str | os.PathLike[str],
    adapter: ModelAdapter,
    result: FinetuneResult,
    *,
    force: bool = False,
) -> Path:
    """Write ``model.pt`` (the state dict, loadable with ``weights_only=True``) and ``finetune.json``.

    Only rank 0 writes under ``torchrun``.

    Raises:
        OutputExistsError: A file exists and ``force`` is false.
    """
    out = Path(folder)
    if not current().is_main:
        return out
    for name in ("model.pt", "finetune.json"):
        check_output(out / name, force=force)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "model.pt", force=force) as tmp:
        torch.save({k: v.detach().to("cpu") for k, v in adapter.model.state_dict().items()}, tmp)
    with atomic_path(out / "finetune.json", force=force) as tmp:
        tmp.write_text(json.dumps(result.to_dict(), indent=1, default=str), encoding="utf-8")
    return out


def load_weights(model: torch.nn.Module, path: str | os.PathLike[str]) -> None:
    """Load a state dict written by :func:`save_finetuned` (``weights_only=True``) into ``model``.

    Raises:
        ConfigError: The file is missing or does not match the model (names the keys).
    """
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"weights file {str(p)!r} does not exist.")
    state = torch.load(p, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ConfigError(f"{str(p)!r} does not hold a state dict (got {type(state).__name__}).")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ConfigError(
            f"{str(p)!r} does not fit the model: missing {list(missing)[:5]}, unexpected "
            f"{list(unexpected)[:5]}. Was it written for another architecture?"
        )

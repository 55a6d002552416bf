"""The training core shared by fine-tuning (:mod:`~biocoreset.train.finetune`) and pretraining
(:mod:`~biocoreset.train.pretrain`): the optimizer step, the loop, data parallelism, progress.

A run is a sequence of optimizer steps ``start .. total - 1``. Step ``s`` trains on the global batch
an :class:`EpochPlan` gives (batch ``s mod P`` of epoch ``s div P`` in a seeded order), through a
``step_fn`` that forwards and back-propagates it and returns the global batch loss; the
:class:`Trainer` then clips, steps the optimizer and the learning-rate schedule.

Data parallel. Under ``torchrun`` the loss module is wrapped in
:class:`~torch.nn.parallel.DistributedDataParallel` (both fine-tuning and pretraining): each rank
forwards its share of the global batch (:func:`local_share`), the step function scales its loss by
the world size (DDP averages gradients over ranks), so the update equals the single-process one up
to the order of floating-point sums. A rank without a sequence in a short final batch forwards one
with weight 0, so every rank takes part in every gradient all-reduce.

Example:
    >>> import torch
    >>> from biocoreset.adapters.hf import HFAdapter
    >>> from biocoreset.testing import tiny_esm, random_rna
    >>> adapter = HFAdapter(*tiny_esm())
    >>> records = random_rna(6)
    >>> optimizer = torch.optim.AdamW(adapter.model.parameters(), lr=1e-3)
    >>> trainer = Trainer(adapter, optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0))
    >>> def step_fn(module, step, epoch, idx):
    ...     loss = module(adapter.collate([records[i] for i in idx], seed=epoch)).mean()
    ...     loss.backward()
    ...     return float(loss.detach())
    >>> plan = EpochPlan(6, batch_size=3, order=lambda epoch: list(range(6)))
    >>> seen = []
    >>> train_loop(trainer, plan, total=4, step_fn=step_fn, progress=False, on_step=seen.append)
    >>> [(r.step, r.epoch) for r in seen]
    [(1, 0), (2, 0), (3, 1), (4, 1)]
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import attrs
import numpy as np
import torch

from biocoreset.protocols import ModelAdapter
from biocoreset.runtime.distributed import DistContext, current
from biocoreset.runtime.progress import progress_bar, progress_enabled

__all__ = ["EpochPlan", "LossModule", "StepRecord", "Trainer", "local_share", "train_loop"]

StepFn = Callable[[torch.nn.Module, int, int, list[int]], float]


class LossModule(torch.nn.Module):
    """One module whose forward is the adapter's per-sample loss (what DDP wraps).

    Args:
        adapter: The adapter; its model becomes this module's only child.
    """

    def __init__(self, adapter: ModelAdapter) -> None:
        super().__init__()
        self.model = adapter.model
        self._adapter = adapter

    def forward(self, batch: Any) -> torch.Tensor:
        """``[B]`` per-sample losses of ``batch``."""
        return self._adapter.per_sample_loss(batch)


@attrs.frozen(kw_only=True)
class StepRecord:
    """One optimizer step as the loop reports it.

    Attributes:
        step: Optimizer steps done (1 after the first).
        epoch: Epoch of the step (0-based).
        loss: Global batch loss.
        lr: Learning rate the step used.
    """

    step: int
    epoch: int
    loss: float
    lr: float


class EpochPlan:
    """Which records optimizer step ``s`` trains on: ``order(e)[b·B : (b+1)·B]`` with
    ``e, b = divmod(s, steps_per_epoch)`` (each epoch's order computed once).

    Args:
        n: Number of records.
        batch_size: Global batch size ``B``.
        order: ``epoch -> permutation of range(n)`` (seeded by the caller).
        steps_per_epoch: Batches per epoch (default ``ceil(n / B)``; ``n // B`` drops the last).
    """

    def __init__(
        self,
        n: int,
        *,
        batch_size: int,
        order: Callable[[int], Sequence[int] | np.ndarray],
        steps_per_epoch: int | None = None,
    ) -> None:
        self.n, self.batch_size, self.order = n, batch_size, order
        self.steps_per_epoch = steps_per_epoch or math.ceil(n / batch_size)
        self._epoch: int | None = None
        self._order: np.ndarray = np.empty(0, dtype=np.int64)

    def __call__(self, step: int) -> tuple[int, list[int]]:
        """``(epoch, global batch indices)`` of 0-based step ``step``."""
        epoch, pos = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            self._order, self._epoch = np.asarray(self.order(epoch)), epoch
        b = self.batch_size
        return epoch, self._order[pos * b : (pos + 1) * b].tolist()


def local_share(idx: Sequence[int], ctx: DistContext) -> tuple[list[int], bool]:
    """This rank's part of a global batch: ``idx[rank::world]``, and whether it is real.

    A rank with nothing gets ``idx[:1]`` and ``False``: forward it with weight 0.

    >>> local_share([4, 5, 6], DistContext(rank=1, world_size=2))
    ([5], True)
    >>> local_share([4], DistContext(rank=1, world_size=2))
    ([4], False)
    """
    local = list(idx[ctx.rank :: ctx.world_size])
    if local:
        return local, True
    return list(idx[:1]), False


class Trainer:
    """An optimizer, its learning-rate scheduler and the (DDP-wrapped) loss module: one step at a time.

    Args:
        adapter: The adapter whose model is trained (in place).
        optimizer: Optimizer over the trained parameters.
        scheduler: Learning-rate scheduler, stepped after every optimizer step.
        ctx: Distributed context (default: :func:`~biocoreset.runtime.current`).
        max_grad_norm: Clip the global gradient norm to this (``None``: no clipping).
        clip_parameters: Parameters whose norm is clipped (default: the optimizer's).
        find_unused_parameters: Passed to DDP (models with parameters the loss never uses, such
            as ESM's contact head, need ``True``).
    """

    def __init__(
        self,
        adapter: ModelAdapter,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        *,
        ctx: DistContext | None = None,
        max_grad_norm: float | None = None,
        clip_parameters: Iterable[torch.nn.Parameter] | None = None,
        find_unused_parameters: bool = True,
    ) -> None:
        self.adapter = adapter
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.ctx = ctx or current()
        self.max_grad_norm = max_grad_norm
        self.clip_parameters = (
            [p for g in optimizer.param_groups for p in g["params"]]
            if clip_parameters is None
            else list(clip_parameters)
        )
        module: torch.nn.Module = LossModule(adapter)
        if self.ctx.is_distributed:
            from torch.nn.parallel import DistributedDataParallel

            device = next(adapter.model.parameters()).device
            module = DistributedDataParallel(
                module,
                device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=find_unused_parameters,
            )
        self.module: torch.nn.Module | None = module

    @property
    def lr(self) -> float:
        """The learning rate the next step uses."""
        return float(self.optimizer.param_groups[0]["lr"])

    def step(self, backward: Callable[[torch.nn.Module], float]) -> tuple[float, float]:
        """One optimizer step: ``backward(module)`` forwards and back-propagates the global batch
        and returns its loss; then clip, ``optimizer.step()``, ``scheduler.step()``.

        Returns:
            ``(loss, learning rate used)``.
        """
        if self.module is None:
            raise RuntimeError("this Trainer is closed.")
        lr = self.lr
        self.optimizer.zero_grad(set_to_none=True)
        loss = backward(self.module)
        if self.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.clip_parameters, self.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss, lr

    def close(self) -> None:
        """Drop the DDP wrapper (and its gradient hooks) so the model can be used on its own."""
        distributed = isinstance(self.module, torch.nn.parallel.DistributedDataParallel)
        self.module = None
        self.optimizer.zero_grad(set_to_none=True)
        if distributed:
            gc.collect()


def train_loop(
    trainer: Trainer,
    plan: Callable[[int], tuple[int, list[int]]],
    *,
    total: int,
    step_fn: StepFn,
    start: int = 0,
    progress: bool | str | None = None,
    desc: str = "train",
    on_step: Callable[[StepRecord], None] | None = None,
) -> None:
    """Run optimizer steps ``start .. total - 1``.

    Args:
        trainer: The trainer.
        plan: ``step -> (epoch, global batch indices)``, called once per step in order (e.g.
            an :class:`EpochPlan`).
        total: Steps of the whole run.
        step_fn: ``(module, step, epoch, global indices) -> loss``: forward and back-propagate
            this rank's share (see :func:`local_share`) and return the global batch loss.
        start: First step (a resumed run).
        progress: Progress reporting (see :mod:`biocoreset.runtime.progress`; rank 0 only), with the
            loss, learning rate and epoch.
        desc: Name shown with the progress.
        on_step: Called with a :class:`StepRecord` after every step (on every rank).
    """
    show = progress_enabled(progress) and trainer.ctx.is_main
    with progress_bar(enabled=show, total=total, initial=start, desc=desc, unit="step") as bar:
        for step in range(start, total):
            epoch, idx = plan(step)

            def backward(module: torch.nn.Module, s: int = step, e: int = epoch) -> float:
                return step_fn(module, s, e, idx)  # noqa: B023 - called within this iteration

            loss, lr = trainer.step(backward)
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", epoch=epoch, refresh=False)
            if on_step is not None:
                on_step(StepRecord(step=step + 1, epoch=epoch, loss=loss, lr=lr))

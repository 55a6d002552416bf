"""Distributed helpers: ``torchrun`` (torch.distributed) for fine-tuning, the Fisher and scoring.

Launch any biocoreset command under ``torchrun --nproc_per_node N`` (one or many nodes). Every
rank reads the input itself; work is split deterministically:

* **fine-tune** — each global batch of ``batch_size`` sequences is split over the ranks; each rank
  back-propagates ``Σ_local ℓ / batch_size`` and the gradients are summed over ranks (one bucketed
  all-reduce per step, what DDP does) before the identical optimizer step on every rank, so the
  update equals the single-process one;
* **Fisher** — batch ``j`` of ``D_sub`` goes to rank ``j mod N``; the curvature's statistics are
  summed over ranks through ``fit_end(num_samples, reduce=...)``;
* **scoring** — shard ``k`` of the rows goes to rank ``k mod N``; rank 0 merges the shards.

Masking depends only on (seed, sequence id), so scores equal a single-process run's up to the
order of floating-point sums (≤ 1e-6 relative in float32; the tests check float64).

``gloo`` is used on CPU and ``nccl`` on CUDA; statistics held on a GPU are reduced through the CPU
with ``gloo``.

Example:
    >>> ctx = current()
    >>> ctx.world_size, ctx.is_main
    (1, True)
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import attrs
import torch

from biocoreset.errors import ConfigError

__all__ = [
    "DistContext",
    "allreduce_gradients",
    "broadcast_parameters",
    "current",
    "init_distributed",
]

_BUCKET = 1 << 24  # elements per all-reduce bucket
_T = TypeVar("_T")


@attrs.frozen
class DistContext:
    """Where this process stands in a distributed run (a single process is rank 0 of 1).

    Attributes:
        rank: Global rank.
        world_size: Number of processes.
        local_rank: Rank on this node (the GPU index under ``torchrun``).
        backend: The process-group backend, ``None`` when not distributed.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_distributed(self) -> bool:
        """More than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 (writes files, shows progress bars)."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait for every rank (no-op in a single process)."""
        if self.is_distributed:
            torch.distributed.barrier()

    def all_reduce_(self, tensor: torch.Tensor) -> None:
        """Sum ``tensor`` over ranks, in place (through the CPU when ``gloo`` meets a GPU tensor)."""
        if not self.is_distributed:
            return
        if self.backend == "gloo" and tensor.device.type != "cpu":
            tmp = tensor.detach().to("cpu")
            torch.distributed.all_reduce(tmp)
            tensor.copy_(tmp)
        else:
            torch.distributed.all_reduce(tensor)

    def all_gather_object(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order."""
        if not self.is_distributed:
            return [obj]
        out: list[Any] = [None] * self.world_size
        torch.distributed.all_gather_object(out, obj)
        return out

    def broadcast_object(self, obj: Any, src: int = 0) -> Any:
        """``obj`` from rank ``src`` on every rank."""
        if not self.is_distributed:
            return obj
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=src)
        return box[0]

    def main_only(self, fn: Callable[[], _T]) -> _T:
        """Run ``fn`` on rank 0 and return its result on every rank.

        An exception on rank 0 is raised on every rank (biocoreset errors with their type and
        message; others as :class:`RuntimeError`), so no rank is left waiting in a collective.
        """
        if not self.is_distributed:
            return fn()
        result: Any = None
        error: BaseException | None = None
        if self.is_main:
            try:
                result = fn()
            except Exception as exc:  # re-raised below, on every rank
                error = exc
        payload = self.broadcast_object(
            (result, None if error is None else (type(error), str(error)))
        )
        if error is not None:
            raise error
        if payload[1] is not None:
            from biocoreset.errors import BioCoresetError

            cls, message = payload[1]
            if isinstance(cls, type) and issubclass(cls, BioCoresetError):
                raise cls(message)
            raise RuntimeError(f"rank 0 failed: {message}")
        return payload[0]

    def device(self) -> torch.device:
        """``cuda:<local_rank>`` when CUDA is available, else the CPU."""
        if torch.cuda.is_available():
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")


def _env_world() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise ConfigError(
            f"WORLD_SIZE must be an integer, got {os.environ.get('WORLD_SIZE')!r}."
        ) from None


def init_distributed(backend: str | None = None, *, timeout_s: float = 1800.0) -> DistContext:
    """Join the process group ``torchrun`` describes in the environment (idempotent).

    Args:
        backend: ``"gloo"``, ``"nccl"`` or ``None`` (nccl with CUDA, else gloo).
        timeout_s: Collective timeout.

    Returns:
        The context; a single-process context when ``WORLD_SIZE`` is unset or 1.
    """
    dist = torch.distributed
    if not dist.is_available():
        return DistContext()
    if dist.is_initialized():
        return current()
    if _env_world() <= 1:
        return DistContext()
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))
    return current()


def current(*, auto_init: bool = False) -> DistContext:
    """The context of this process.

    Args:
        auto_init: Join the process group first when launched by ``torchrun`` (``WORLD_SIZE > 1``)
            and not yet joined.
    """
    dist = torch.distributed
    if not dist.is_available():
        return DistContext()
    if not dist.is_initialized():
        if auto_init and _env_world() > 1:
            return init_distributed()
        return DistContext()
    return DistContext(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        backend=str(dist.get_backend()),
    )


def broadcast_parameters(module: torch.nn.Module, ctx: DistContext) -> None:
    """Copy rank 0's parameters and buffers to every rank (as DDP does at construction)."""
    if not ctx.is_distributed:
        return
    with torch.no_grad():
        for t in [*module.parameters(), *module.buffers()]:
            if ctx.backend == "gloo" and t.device.type != "cpu":
                tmp = t.detach().to("cpu")
                torch.distributed.broadcast(tmp, src=0)
                t.copy_(tmp)
            else:
                torch.distributed.broadcast(t.data, src=0)


def allreduce_gradients(params: Iterable[torch.nn.Parameter], ctx: DistContext) -> None:
    """Sum ``.grad`` over ranks in place, in flat buckets per dtype and device.

    A parameter without a gradient on this rank contributes zeros (every rank still takes part, so
    the collectives line up even when a rank had no sequence in a step).
    """
    if not ctx.is_distributed:
        return
    groups: dict[tuple[torch.dtype, torch.device], list[torch.nn.Parameter]] = {}
    for p in params:
        if p.requires_grad:
            groups.setdefault((p.dtype, p.device), []).append(p)
    for ps in groups.values():
        for p in ps:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        start = 0
        while start < len(ps):
            bucket: list[torch.nn.Parameter] = []
            count = 0
            while start < len(ps) and (not bucket or count + ps[start].numel() <= _BUCKET):
                bucket.append(ps[start])
                count += ps[start].numel()
                start += 1
            flat = torch.cat([p.grad.reshape(-1) for p in bucket])  # type: ignore[union-attr]
            ctx.all_reduce_(flat)
            offset = 0
            for p in bucket:
                n = p.numel()
                p.grad.copy_(flat[offset : offset + n].view_as(p))  # type: ignore[union-attr]
                offset += n

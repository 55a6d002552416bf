"""The distributed context: where this process stands under ``torchrun`` (torch.distributed).

The lowest layer of the library (it imports only torch): the facade, the scoring engine, the training
core and the model-I/O layer all ask :func:`current` for the rank and world size.

Launch any biocoreset command under ``torchrun --nproc_per_node N`` (one or many nodes). Every
rank reads the input itself; work is split deterministically:

* **fine-tune and pretrain** — each global batch of ``batch_size`` sequences is split over the
  ranks and trained with :class:`~torch.nn.parallel.DistributedDataParallel` (see
  :mod:`biocoreset.train.core`), so the update equals the single-process one;
* **Fisher** — batch ``j`` of ``D_sub`` goes to rank ``j mod N``; the curvature's statistics are
  summed over ranks through ``fit_end(num_samples, reduce=...)``;
* **scoring** — shard ``k`` of the rows goes to rank ``k mod N``; rank 0 merges the shards.

Masking depends only on (seed, sequence id), so scores equal a single-process run's up to the
order of floating-point sums (≤ 1e-6 relative in float32; the tests check float64).

``gloo`` is used on CPU and ``nccl`` on CUDA; statistics held on a GPU are reduced through the CPU
with ``gloo``. The device of a rank is chosen by :func:`biocoreset.modelio.resolve_device`.

Example:
    >>> ctx = current()
    >>> ctx.world_size, ctx.is_main
    (1, True)
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable
from typing import Any, TypeVar

import attrs
import torch

from biocoreset.errors import ConfigError

__all__ = ["DistContext", "current", "init_distributed"]

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

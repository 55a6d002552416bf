"""Row streaming: validated rows in input order, the rows of a subset, batches split over ranks,
and shards.

A *row* is a record kept by validation, numbered from 0 in input order; results are always
returned in row order. Batches are formed by :func:`~biocoreset.data.batching.length_batches`
(records of similar length together, within a bounded window), so per-row results are written back
by row number (:class:`OpenShards`). Shards are ranges of rows (``[kS, (k+1)S)``): shard ``k`` goes
to rank ``k mod R``; a rank's window may span several of its shards, and each shard is written
whole once its last row is scored, so a resumed run may use another number of ranks.

Example:
    >>> from biocoreset.data.sources import as_source
    >>> from biocoreset.data.validation import Validator
    >>> rows = iter_rows(as_source([("a", "ACGU"), ("b", ""), ("c", "GG")]), Validator(policy="skip"))
    >>> list(only_rows(rows, np.array([1])))
    [(1, 'c', 'GG')]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from biocoreset.data.batching import length_batches
from biocoreset.data.sources import SequenceSource
from biocoreset.data.validation import Validator
from biocoreset.errors import InputError
from biocoreset.protocols import capabilities
from biocoreset.runtime.distributed import DistContext
from biocoreset.store.shard_parts import ShardRecord

__all__ = [
    "MAX_SHARD_BATCHES",
    "SHARDS_PER_RANK",
    "OpenShards",
    "Row",
    "auto_shard_size",
    "batch_owner",
    "composition_free",
    "grouping_window",
    "iter_rows",
    "length_key",
    "only_rows",
    "pending_rows",
    "rank_batches",
]

Row = tuple[int, str, str]
"""``(row, id, sequence)``."""

MAX_SHARD_BATCHES = 256
"""The default shard is at most this many batches (4,096 rows at batch size 16)."""

SHARDS_PER_RANK = 8
"""Under ``torchrun`` the default shard size aims at this many shards per rank (more shards even
out ranks whose shards differ in cost; a rank's batches span its shards, so small shards cost no
packing)."""


def iter_rows(source: SequenceSource, validator: Validator) -> Iterator[Row]:
    """``(row, id, sequence)`` of the records the validator keeps, in input order."""
    return ((row, rid, seq) for row, (rid, seq) in enumerate(validator.iter(source.iter())))


def only_rows(stream: Iterable[Row], rows: np.ndarray | None) -> Iterator[Row]:
    """The items of ``stream`` whose row is in the sorted ``rows`` (stops after the last); every
    item when ``rows`` is ``None``.

    >>> list(only_rows([(0, "a", "A"), (1, "b", "C"), (2, "c", "G")], np.array([0, 2])))
    [(0, 'a', 'A'), (2, 'c', 'G')]
    """
    if rows is None:
        yield from stream
        return
    wanted = rows.tolist()
    j = 0
    if not wanted:
        return
    for item in stream:
        if item[0] == wanted[j]:
            yield item
            j += 1
            if j == len(wanted):
                return


def length_key(adapter: Any) -> Callable[[tuple[Any, ...]], int]:
    """The length batches are grouped by: the residues the model sees, ``min(len(sequence),
    adapter.max_length)`` (longer sequences are truncated to the same width), or ``len(sequence)``.

    >>> class A: max_length = 4
    >>> length_key(A())((0, "id", "ACGUACGU")), length_key(object())((0, "id", "ACGUACGU"))
    (4, 8)
    """
    cap = capabilities(adapter).max_length
    if isinstance(cap, int) and not isinstance(cap, bool):
        return lambda item: min(len(item[-1]), cap)
    return lambda item: len(item[-1])


def rank_batches(
    stream: Iterable[Row],
    batch_size: int,
    ctx: DistContext,
    *,
    window: int | None = None,
    max_tokens: int | None = None,
    length: Callable[[tuple[Any, ...]], int] = lambda item: len(item[-1]),
) -> Iterator[list[Row]]:
    """Length-grouped batches of ``stream``, dealt to the ranks in snake order: batches
    ``0..R-1`` go to ranks ``0..R-1``, the next ``R`` to ranks ``R-1..0``, and so on — the
    batches of a window come shortest first, so plain round robin would give the last rank the
    longest batch of every round.

    Every rank reads the same stream, so every rank forms the same batches.

    >>> [[r for r, _, _ in b] for b in rank_batches(
    ...     [(0, "a", "AAA"), (1, "b", "A"), (2, "c", "AA")], 2, DistContext())]
    [[1, 2], [0]]
    >>> [batch_owner(j, 2) for j in range(8)]
    [0, 1, 1, 0, 0, 1, 1, 0]
    """
    batches = length_batches(
        stream, batch_size=batch_size, window=window, max_tokens=max_tokens, length=length
    )
    for j, batch in enumerate(batches):
        if batch_owner(j, ctx.world_size) == ctx.rank:
            yield batch


def batch_owner(j: int, world_size: int) -> int:
    """The rank that takes batch ``j`` (snake order over the ranks)."""
    p = j % world_size
    return p if (j // world_size) % 2 == 0 else world_size - 1 - p


def composition_free(adapter: Any) -> bool:
    """Whether a sequence's loss and gradient do not depend on its batch companions (then batches
    may be formed in any way): an adapter's own ``composition_free`` flag when it has one, else
    true unless the loss or the attention sees the batch's padded width — ``loss_mode =
    "paper-compat"`` or ``attend_to_padding`` without a fixed ``pad_to``.

    >>> class A: loss_mode, attend_to_padding, pad_to = "paper-compat", True, None
    >>> composition_free(A()), composition_free(type("B", (A,), {"pad_to": 1024})())
    (False, True)
    """
    caps = capabilities(adapter)
    if isinstance(caps.composition_free, bool):
        return caps.composition_free
    if caps.pad_to is not None:
        return True
    return caps.loss_mode == "masked" and not caps.attend_to_padding


def grouping_window(adapter: Any, batch_size: int, length_window: int) -> int:
    """Records per length-grouping window: ``length_window`` batches, or one batch (consecutive
    batches in input order, as the adapter's results then depend on the batch) when the adapter is
    not :func:`composition_free`."""
    return (length_window if composition_free(adapter) else 1) * batch_size


def auto_shard_size(num_rows: int, world_size: int, batch_size: int) -> int:
    """The default rows per shard: :data:`MAX_SHARD_BATCHES` batches for one process; under
    ``torchrun``, about :data:`SHARDS_PER_RANK` shards per rank so that every rank gets work — a
    whole number of batches, at least one batch and at most :data:`MAX_SHARD_BATCHES` batches.

    Batches are length-grouped inside a shard, so one process keeps the largest shards.

    >>> auto_shard_size(1500, 2, 16), auto_shard_size(1500, 1, 16), auto_shard_size(10**6, 8, 16)
    (96, 4096, 4096)
    >>> auto_shard_size(10, 4, 16)
    16
    """
    if world_size <= 1:
        return MAX_SHARD_BATCHES * batch_size
    per = math.ceil(num_rows / (SHARDS_PER_RANK * world_size))
    batches = min(MAX_SHARD_BATCHES, max(1, math.ceil(per / batch_size)))
    return batches * batch_size


class OpenShards:
    """The shards a rank is filling: results go in by row, full shards come out.

    >>> shards = OpenShards(num_rows=3, shard_size=2)
    >>> [k for k, _ in shards.put([(1, "b", "G"), (0, "a", "A")], [2.0, 1.0], [0.0, 0.0], [1, 1])]
    [0]
    >>> [(k, s.ids) for k, s in shards.put([(2, "c", "C")], [3.0], [0.0], [1])]
    [(1, ['c'])]
    """

    def __init__(self, num_rows: int, shard_size: int) -> None:
        self.n, self.size = num_rows, shard_size
        self.open: dict[int, ShardRecord] = {}

    def put(
        self,
        batch: list[Row],
        scores: Any,
        loss: Any,
        length: Any,
        hashes: dict[int, int] | None = None,
        halves: Any = None,
        draws: Any = None,
    ) -> list[tuple[int, ShardRecord]]:
        """Record a batch's results; return the shards it completed. ``hashes`` maps rows to the
        hash of their sequence as read (each entry is removed when used); ``halves``:
        ``(2, len(batch))`` half-means of the mask draws, and ``draws``: ``(K, len(batch))``
        per-draw scores, or ``None``."""
        finished = []
        for j, ((row, rid, _), s, l_, n_) in enumerate(
            zip(batch, scores, loss, length, strict=True)
        ):
            k = row // self.size
            shard = self.open.get(k)
            if shard is None:
                start = k * self.size
                shard = self.open[k] = ShardRecord(
                    k,
                    start,
                    min(self.size, self.n - start),
                    halves=halves is not None,
                    draws=0 if draws is None else len(draws),
                    hashes=hashes is not None,
                )
            h = hashes.pop(row, 0) if hashes is not None else 0
            shard.put(
                row,
                rid,
                float(s),
                float(l_),
                int(n_),
                h,
                None if halves is None else halves[:, j],
                None if draws is None else draws[:, j],
            )
            if shard.full:
                finished.append((k, self.open.pop(k)))
        return finished

    def check_closed(self) -> None:
        """Every shard that was opened was completed (an internal check).

        Raises:
            InputError: A shard was left incomplete.
        """
        if self.open:
            raise InputError(
                f"internal error: shard(s) {sorted(self.open)} left incomplete; please report this."
            )


def pending_rows(n: int, size: int, done: set[int], ctx: DistContext) -> int:
    """Rows this rank still has to score: its shards (``k mod R == rank``) not in ``done``."""
    total = 0
    for k in range(ctx.rank, math.ceil(n / size), ctx.world_size):
        if k not in done:
            total += min(size, n - k * size)
    return total

"""The pieces of a score store: the shard record, file checksums, and the in-memory sink.

A shard is the results of a range of rows (``[k·S, k·S + m)``), one :class:`ShardRecord`: per row
its number, id, score, loss and length, the hash of its sequence as read, and optionally the two
half-means of the mask draws (:data:`HALF_COLUMNS`) and every draw's own score
(:func:`draw_columns`, with ``keep_draws``). A :class:`Sink` keeps the shards of a scoring pass:
the score store (:class:`~biocoreset.store.shards.ScoreStore`, a resumable file) or
:class:`MemorySink` (scoring without an output file). Both implement every phase a run needs —
which shards exist, writing one, the curvature of a resumed run, the half-means for the stability
figures, and the finish — so the run never asks which one it has.

Example:
    >>> sink = MemorySink(2)
    >>> sink.write_shard(ShardRecord.of(0, rows=[1, 0], ids=["b", "a"], scores=[2.0, 1.0],
    ...                                 loss=[0.1, 0.2], length=[3, 4]))
    >>> from biocoreset.runtime.distributed import DistContext
    >>> cols = sink.finish(lambda: {}, DistContext())
    >>> cols.ids, cols.scores.tolist()
    (['a', 'b'], [1.0, 2.0])
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import attrs
import numpy as np

from biocoreset.errors import InputError

if TYPE_CHECKING:  # torch-free at import: ``select`` reads score files without torch
    from biocoreset.runtime.distributed import DistContext

__all__ = [
    "DRAW_COLUMN_RE",
    "HALF_COLUMNS",
    "MemorySink",
    "ScoreColumns",
    "ShardRecord",
    "Sink",
    "draw_columns",
    "file_sha256",
    "fingerprint_hash",
]


def fingerprint_hash(fingerprint: Mapping[str, Any]) -> str:
    """A stable hex hash of a JSON-serialisable fingerprint.

    >>> fingerprint_hash({"a": 1}) == fingerprint_hash({"a": 1}) != fingerprint_hash({"a": 2})
    True
    """
    text = json.dumps(fingerprint, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _diff(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, "<absent>"), new.get(key, "<absent>")
        if isinstance(a, dict) and isinstance(b, dict):
            out.extend(_diff(a, b, f"{prefix}{key}."))
        elif json.dumps(a, sort_keys=True, default=str) != json.dumps(
            b, sort_keys=True, default=str
        ):
            sa, sb = json.dumps(a, default=str), json.dumps(b, default=str)
            if len(sa) > 40:
                sa = sa[:37] + "..."
            if len(sb) > 40:
                sb = sb[:37] + "..."
            out.append(f"{prefix}{key}: {sa} -> {sb}")
    return out


HALF_COLUMNS = ("half_1", "half_2")
"""Shard-table columns of the two half-means of the mask draws (``mask_draws >= 2`` only; the
final score file keeps just the stability figures in its metadata)."""

DRAW_COLUMN_RE = re.compile(r"^score_draw_(\d+)$")
"""The name of a per-draw score column (``score_draw_0``, ``score_draw_1``, ...)."""


def draw_columns(draws: int) -> list[str]:
    """The column names of ``draws`` per-draw scores, in draw order (``keep_draws``).

    >>> draw_columns(3)
    ['score_draw_0', 'score_draw_1', 'score_draw_2']
    """
    return [f"score_draw_{k}" for k in range(draws)]


class ShardRecord:
    """The results of one shard (rows ``[start, start + size)``), filled row by row in any order.

    Args:
        k: Shard number.
        start: Its first row.
        size: Its number of rows.
        halves: Whether it keeps the two half-means of the mask draws.
        draws: How many per-draw scores it keeps (0: none).
        hashes: Whether it keeps the hash of each row's sequence as read.

    Attributes:
        rows: Row numbers (``start .. start + size - 1``).
        ids: Sequence ids.
        scores: float64 scores (as stored: negated where the run negates).
        loss: float64 per-sample loss.
        length: Residues per sequence.
        sequence_hash: Hash of each row's sequence as read (kept in the final file so ``select``
            can check the corpus), or ``None``.
        halves: ``(2, size)`` half-means of the mask draws, or ``None``.
        draws: ``(K, size)`` per-draw scores (oriented as ``scores``), or ``None``.
    """

    def __init__(
        self,
        k: int,
        start: int,
        size: int,
        *,
        halves: bool = False,
        draws: int = 0,
        hashes: bool = True,
    ) -> None:
        self.k, self.start, self.filled = k, start, 0
        self.rows = np.arange(start, start + size, dtype=np.int64)
        self.ids: list[str] = [""] * size
        self.scores = np.empty(size, dtype=np.float64)
        self.loss = np.empty(size, dtype=np.float64)
        self.length = np.empty(size, dtype=np.int64)
        self.sequence_hash = np.zeros(size, dtype=np.int64) if hashes else None
        self.halves = np.empty((2, size), dtype=np.float64) if halves else None
        self.draws = np.empty((draws, size), dtype=np.float64) if draws else None

    @classmethod
    def of(
        cls,
        k: int,
        *,
        rows: Sequence[int],
        ids: Sequence[str],
        scores: Any,
        loss: Any,
        length: Any,
        sequence_hash: Any = None,
        halves: Any = None,
        draws: Any = None,
    ) -> ShardRecord:
        """A complete record from whole columns (rows in any order; tests and tools).

        >>> ShardRecord.of(3, rows=[6, 7], ids=["a", "b"], scores=[1, 2], loss=[0, 0],
        ...                length=[5, 5]).full
        True
        """
        row_arr = np.asarray(rows, dtype=np.int64)
        rec = cls(
            k,
            int(row_arr.min()) if row_arr.size else 0,
            int(row_arr.size),
            halves=halves is not None,
            draws=0 if draws is None else int(np.shape(draws)[0]),
            hashes=sequence_hash is not None,
        )
        rec.rows = row_arr
        rec.ids = list(ids)
        rec.scores = np.asarray(scores, dtype=np.float64)
        rec.loss = np.asarray(loss, dtype=np.float64)
        rec.length = np.asarray(length, dtype=np.int64)
        if sequence_hash is not None:
            rec.sequence_hash = np.asarray(sequence_hash, dtype=np.int64)
        if halves is not None:
            rec.halves = np.asarray(halves, dtype=np.float64)
        if draws is not None:
            rec.draws = np.asarray(draws, dtype=np.float64)
        rec.filled = int(row_arr.size)
        return rec

    @property
    def full(self) -> bool:
        """Whether every row has its result."""
        return self.filled == self.rows.size

    def put(
        self,
        row: int,
        rid: str,
        score: float,
        loss: float,
        length: int,
        seq_hash: int = 0,
        halves: Any = None,
        draws: Any = None,
    ) -> None:
        """Record one row's result, the hash of its sequence as read, its two half-means of the
        mask draws and its per-draw scores (each when kept)."""
        i = row - self.start
        self.ids[i] = rid
        self.scores[i], self.loss[i], self.length[i] = score, loss, length
        if self.sequence_hash is not None:
            self.sequence_hash[i] = seq_hash
        if self.halves is not None:
            self.halves[:, i] = halves
        if self.draws is not None:
            self.draws[:, i] = draws
        self.filled += 1

    def table(self) -> Any:
        """The shard as a :mod:`pyarrow` table (the optional columns only when kept)."""
        import pyarrow as pa

        columns = {
            "row": pa.array(self.rows),
            "id": pa.array(self.ids, pa.string()),
            "score": pa.array(self.scores),
            "loss": pa.array(self.loss),
            "length": pa.array(self.length),
        }
        if self.sequence_hash is not None:
            columns["sequence_hash"] = pa.array(self.sequence_hash)
        if self.halves is not None:
            for name, h in zip(HALF_COLUMNS, self.halves, strict=True):
                columns[name] = pa.array(h)
        if self.draws is not None:
            for name, d in zip(draw_columns(len(self.draws)), self.draws, strict=True):
                columns[name] = pa.array(d)
        return pa.table(columns)


@attrs.frozen(kw_only=True, eq=False)
class ScoreColumns:
    """Every row's results in row order: what a :class:`MemorySink` finishes with.

    Attributes:
        ids: Sequence ids.
        scores: float64 scores.
        loss: float64 losses.
        length: Residues per sequence.
        draws: ``(K, n)`` per-draw scores, or ``None``.
    """

    ids: list[str]
    scores: np.ndarray
    loss: np.ndarray
    length: np.ndarray
    draws: np.ndarray | None = None


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Sink(Protocol):
    """Where a scoring pass keeps its shards, phase by phase: the score store (a file,
    :class:`~biocoreset.store.shards.ScoreStore`) or :class:`MemorySink`."""

    def completed_shards(self) -> set[int]:
        """Indices of the shards already written before this run (resuming skips them)."""
        ...

    def write_shard(self, record: ShardRecord) -> None:
        """Keep one complete shard."""
        ...

    def save_curvature(self, curvature: Any) -> bool:
        """Keep the fitted curvature for a resumed run; whether it was kept."""
        ...

    def load_curvature(self, curvature: Any, device: Any = "cpu") -> bool:
        """Restore the curvature of the run being resumed; whether it was restored."""
        ...

    def gather_halves(self, ctx: DistContext) -> tuple[np.ndarray, np.ndarray] | None:
        """Every row's ``(2, n)`` half-means of the mask draws and lengths, in row order, on
        rank 0 (other ranks may get ``None``). Called by every rank (it may be a collective).

        Raises:
            InputError: The shards have no half-means.
        """
        ...

    def finish(
        self,
        metadata: Callable[[], dict[str, Any]],
        ctx: DistContext,
        *,
        force: bool = False,
        progress: Callable[[int], Any] | None = None,
    ) -> Any:
        """End the run (called by every rank): the store merges its shards with
        ``metadata()`` into the final file and returns its path; memory returns the
        :class:`ScoreColumns`. ``metadata`` is called once all results are in."""
        ...


class MemorySink:
    """Collects shards in memory (scoring without an output file); a :class:`Sink`.

    Args:
        num_rows: Rows to score.
    """

    def __init__(self, num_rows: int) -> None:
        self.records: list[ShardRecord] = []
        self.num_rows = num_rows

    def completed_shards(self) -> set[int]:
        """Nothing is ever completed before the run."""
        return set()

    def write_shard(self, record: ShardRecord) -> None:
        """Keep one shard."""
        self.records.append(record)

    def save_curvature(self, curvature: Any) -> bool:
        """Nothing to resume in memory: ``False``."""
        return False

    def load_curvature(self, curvature: Any, device: Any = "cpu") -> bool:
        """Nothing to resume in memory: ``False``."""
        return False

    def _gathered(self, ctx: DistContext) -> list[ShardRecord]:
        if not ctx.is_distributed:
            return list(self.records)
        return [r for part in ctx.all_gather_object(self.records) for r in part]

    def gather_halves(self, ctx: DistContext) -> tuple[np.ndarray, np.ndarray]:
        """Every rank's half-means and lengths, gathered on every rank, in row order."""
        records = self._gathered(ctx)
        if any(r.halves is None for r in records):
            raise InputError("internal error: a shard has no half-means; please report this.")
        order = _row_order(records, self.num_rows)
        halves = np.concatenate([r.halves for r in records if r.halves is not None], axis=1)
        return halves[:, order], np.concatenate([r.length for r in records])[order]

    def finish(
        self,
        metadata: Callable[[], dict[str, Any]],
        ctx: DistContext,
        *,
        force: bool = False,
        progress: Callable[[int], Any] | None = None,
    ) -> ScoreColumns:
        """Gather every rank's shards and return them in row order (``metadata`` is not needed:
        the caller keeps it)."""
        return assemble(self._gathered(ctx), self.num_rows)


def _row_order(records: list[ShardRecord], n: int) -> np.ndarray:
    """The permutation that puts the records' rows in order, checked to be ``0..n-1`` once."""
    rows = np.concatenate([r.rows for r in records]) if records else np.empty(0, np.int64)
    order = np.argsort(rows, kind="stable")
    if rows.size != n or not np.array_equal(rows[order], np.arange(n)):
        raise InputError(
            f"internal error: scored rows do not cover 0..{n - 1} exactly once; please report this."
        )
    return order


def assemble(records: list[ShardRecord], n: int) -> ScoreColumns:
    """Merge shard records (of any ranks, in any order) into row order, checking that the rows
    are ``0..n-1`` exactly once.

    Raises:
        InputError: Rows missing or duplicated (an internal error).

    >>> a = ShardRecord.of(1, rows=[1], ids=["b"], scores=[2.0], loss=[0.0], length=[1])
    >>> b = ShardRecord.of(0, rows=[0], ids=["a"], scores=[1.0], loss=[0.0], length=[1])
    >>> assemble([a, b], 2).ids
    ['a', 'b']
    """
    order = _row_order(records, n)
    ids_all = [i for r in records for i in r.ids]
    with_draws = [r.draws for r in records if r.draws is not None]
    if with_draws and len(with_draws) != len(records):
        raise InputError("internal error: some shards kept their draws, others not.")

    def cat(name: str, dtype: Any) -> np.ndarray:
        parts = [getattr(r, name) for r in records]
        return np.concatenate(parts).astype(dtype)[order] if parts else np.empty(0, dtype)

    return ScoreColumns(
        ids=[ids_all[i] for i in order.tolist()],
        scores=cat("scores", np.float64),
        loss=cat("loss", np.float64),
        length=cat("length", np.int64),
        draws=np.concatenate(with_draws, axis=1)[:, order] if with_draws else None,
    )

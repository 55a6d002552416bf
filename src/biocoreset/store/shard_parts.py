"""The pieces of a score store: shard tables, file checksums, and the in-memory sink.

A shard is a Parquet table with one row per scored sequence (``row``, ``id``, ``score``, ``loss``,
``length``; optionally ``sequence_hash`` and the :data:`HALF_COLUMNS` of the mask draws). Scoring
without an output file collects the same shards in a :class:`MemorySink`.

Example:
    >>> sink = MemorySink(2)
    >>> sink.write_shard(0, [1, 0], ["b", "a"], [2.0, 1.0], [0.1, 0.2], [3, 4])
    >>> sink.local_parts()[1]
    ['b', 'a']
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

__all__ = ["HALF_COLUMNS", "MemorySink", "Sink", "file_sha256", "fingerprint_hash", "shard_table"]


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


def shard_table(
    rows: np.ndarray,
    ids: list[str],
    scores: np.ndarray,
    loss: np.ndarray,
    length: np.ndarray,
    sequence_hash: Any = None,
    halves: np.ndarray | None = None,
) -> Any:
    """One shard as a :mod:`pyarrow` table (the optional columns only when given)."""
    import pyarrow as pa

    columns = {
        "row": pa.array(np.asarray(rows, dtype=np.int64)),
        "id": pa.array(ids, pa.string()),
        "score": pa.array(np.asarray(scores, dtype=np.float64)),
        "loss": pa.array(np.asarray(loss, dtype=np.float64)),
        "length": pa.array(np.asarray(length, dtype=np.int64)),
    }
    if sequence_hash is not None:
        columns["sequence_hash"] = pa.array(np.asarray(sequence_hash, dtype=np.int64))
    if halves is not None:
        for name, h in zip(HALF_COLUMNS, np.asarray(halves, dtype=np.float64), strict=True):
            columns[name] = pa.array(h)
    return pa.table(columns)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Sink(Protocol):
    """Where a scoring pass writes its shards: the score store (a file,
    :class:`~biocoreset.store.shards.ScoreStore`) or :class:`MemorySink`."""

    def completed_shards(self) -> set[int]:
        """Indices of the shards already written before this run (resuming skips them)."""
        ...

    def write_shard(self, k: int, *columns: Any, **optional: Any) -> None:
        """Keep shard ``k``: ``rows, ids, scores, loss, length`` (and, by keyword,
        ``sequence_hash`` of each row's sequence as read and the ``(2, m)`` ``halves`` of the mask
        draws)."""
        ...


class MemorySink:
    """Collects shards in memory (scoring without an output file); a :class:`Sink`.

    Args:
        num_rows: Rows to score.
    """

    def __init__(self, num_rows: int) -> None:
        self.rows: list[np.ndarray] = []
        self.ids: list[list[str]] = []
        self.scores: list[np.ndarray] = []
        self.loss: list[np.ndarray] = []
        self.length: list[np.ndarray] = []
        self.halves: list[np.ndarray] = []
        self.num_rows = num_rows

    def completed_shards(self) -> set[int]:
        """Nothing is ever completed before the run."""
        return set()

    def write_shard(self, k: int, *columns: Any, **optional: Any) -> None:
        """Keep one shard: ``rows, ids, scores, loss, length`` (of the optional ``sequence_hash``
        and ``halves``, only ``halves``: ``sequence_hash`` is not needed in memory)."""
        rows, ids, scores, loss, length = columns
        halves = optional.get("halves")
        self.rows.append(np.asarray(rows, dtype=np.int64))
        self.ids.append(list(ids))
        self.scores.append(np.asarray(scores, dtype=np.float64))
        self.loss.append(np.asarray(loss, dtype=np.float64))
        self.length.append(np.asarray(length, dtype=np.int64))
        if halves is not None:
            self.halves.append(np.asarray(halves, dtype=np.float64))

    def local_halves(self) -> tuple[np.ndarray, np.ndarray]:
        """This process's rows and ``(2, m)`` half-means of the mask draws (empty without)."""
        rows = np.concatenate(self.rows) if self.rows else np.empty(0, np.int64)
        halves = np.concatenate(self.halves, axis=1) if self.halves else np.empty((2, 0))
        return rows, halves

    def local_parts(self) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray, np.ndarray]:
        """This process's rows, ids, scores, losses and lengths."""

        def cat(xs: list[np.ndarray], dtype: Any) -> np.ndarray:
            return np.concatenate(xs) if xs else np.empty(0, dtype=dtype)

        ids = [i for part in self.ids for i in part]
        return (
            cat(self.rows, np.int64),
            ids,
            cat(self.scores, np.float64),
            cat(self.loss, np.float64),
            cat(self.length, np.int64),
        )

"""Reading a score store's shards back: in row order, checked, and merged into the final file.

The work folder itself (its manifest, lock, shards and curvature) is
:class:`~biocoreset.store.shards.ScoreStore`'s; these functions read what it wrote.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from biocoreset.errors import InputError
from biocoreset.store.atomic import atomic_path
from biocoreset.store.result import METADATA_KEY
from biocoreset.store.shard_parts import DRAW_COLUMN_RE, HALF_COLUMNS

__all__ = ["ShardFolder", "iter_shards", "merge_shards", "read_halves"]


class ShardFolder(Protocol):
    """What these functions read of a :class:`~biocoreset.store.shards.ScoreStore`."""

    output: Path
    parts: Path
    manifest: dict[str, Any] | None

    def shard_path(self, k: int) -> Path: ...

    def verify_shard(self, k: int) -> None: ...


def iter_shards(store: ShardFolder) -> Iterator[Any]:
    """Shard tables in row order, checked to cover every row exactly once.

    Raises:
        InputError: A shard is missing, unreadable, or its rows are not the expected range.
    """
    import pyarrow.parquet as pq

    assert store.manifest is not None
    n, size = int(store.manifest["num_rows"]), int(store.manifest["shard_size"])
    shards = (n + size - 1) // size
    for k in range(shards):
        path = store.shard_path(k)
        if not path.exists():
            raise InputError(
                f"shard {k} ({str(path)!r}) is missing; rerun the same command to finish it."
            )
        store.verify_shard(k)
        try:
            table = pq.read_table(path)
        except Exception as exc:
            raise InputError(
                f"shard {str(path)!r} is unreadable ({exc}); delete it and rerun."
            ) from exc
        rows = table.column("row").to_numpy()
        expected = np.arange(k * size, min((k + 1) * size, n), dtype=np.int64)
        if rows.shape != expected.shape or not np.array_equal(rows, expected):
            raise InputError(
                f"shard {str(path)!r} holds rows {rows[:3].tolist()}... but should hold "
                f"{expected[0]}..{expected[-1]}; delete it and rerun."
            )
        yield table


def read_halves(store: ShardFolder) -> tuple[np.ndarray, np.ndarray]:
    """The half-means of the mask draws (``(2, n)``) and the lengths of every row, in row order.

    Raises:
        InputError: A shard lacks the :data:`HALF_COLUMNS` (written without mask draws).
    """
    halves, lengths = [], []
    for table in iter_shards(store):
        if not set(HALF_COLUMNS) <= set(table.column_names):
            raise InputError(
                "a score shard has no half-mean columns; rerun with --force to rescore."
            )
        halves.append(np.stack([table.column(c).to_numpy() for c in HALF_COLUMNS]))
        lengths.append(table.column("length").to_numpy())
    return np.concatenate(halves, axis=1), np.concatenate(lengths)


def merge_shards(
    store: ShardFolder, metadata: Mapping[str, Any], *, force: bool = False, progress: Any = None
) -> Path:
    """Merge the shards into the final file (atomically) and remove the work folder.

    Args:
        metadata: Stored in the Parquet schema (as :meth:`ScoreResult.save` does).
        force: Overwrite an existing final file.
        progress: Optional callable ``update(rows)`` for a progress bar.

    Returns:
        The final file.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = [
        ("id", pa.string()),
        ("score", pa.float64()),
        ("loss", pa.float64()),
        ("length", pa.int64()),
    ]
    if _shards_have(store, "sequence_hash"):
        columns.append(("sequence_hash", pa.int64()))
    columns.extend((name, pa.float64()) for name in _draw_columns(store))
    schema = pa.schema(
        columns,
        metadata={
            METADATA_KEY: json.dumps(dict(metadata), sort_keys=True, default=str).encode("utf-8")
        },
    )
    with (
        atomic_path(store.output, force=force, fsync=True) as tmp,
        pq.ParquetWriter(tmp, schema) as writer,
    ):
        for table in iter_shards(store):
            writer.write_table(table.select(schema.names).cast(schema))
            if progress is not None:
                progress(table.num_rows)
    shutil.rmtree(store.parts, ignore_errors=True)
    return store.output


def _draw_columns(store: ShardFolder) -> list[str]:
    """The per-draw score columns of the shards (``keep_draws``, in the run's fingerprint, so
    every shard has the same), in draw order."""
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(store.shard_path(0)).names
    except Exception:  # a missing or unreadable shard: iter_shards names it
        return []
    return sorted((n for n in names if DRAW_COLUMN_RE.match(n)), key=lambda n: int(n[11:]))


def _shards_have(store: ShardFolder, column: str) -> bool:
    import pyarrow.parquet as pq

    assert store.manifest is not None
    n, size = int(store.manifest["num_rows"]), int(store.manifest["shard_size"])
    paths = [store.shard_path(k) for k in range((n + size - 1) // size)]
    try:
        return all(column in pq.read_schema(p).names for p in paths)
    except Exception:  # a missing or unreadable shard: iter_shards names it
        return False

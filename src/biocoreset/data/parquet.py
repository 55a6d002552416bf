"""Parquet input: ``(id, sequence)`` records streamed row group by row group.

Large corpora are often Parquet (Hugging Face ``datasets`` writes it). The reader opens the file
with :class:`pyarrow.parquet.ParquetFile` and reads one row group at a time, only the id and
sequence columns, in record batches of 8,192 rows (``iter_batches``), each turned into Python
strings in turn: memory grows with the row-group size (pyarrow holds a row group's column chunks
while it decodes them), never with the number of records. The columns are named as for tables (``id_column``,
``sequence_column``; ``id_column="@row"`` numbers the rows ``<file stem>:<row>`` over the whole
file) and may be ``string``, ``large_string``, ``string_view`` or dictionary-encoded strings.

Errors name the row group (and the row, counted from 0 in the group and from 1 in the file): a
missing column, a column that is not a string, a null id or sequence, an empty id.

Example:
    >>> import os, tempfile
    >>> import pyarrow as pa, pyarrow.parquet as pq
    >>> path = os.path.join(tempfile.mkdtemp(), "c.parquet")
    >>> pq.write_table(pa.table({"id": ["a", "b"], "sequence": ["ACGU", "GG"]}), path)
    >>> list(iter_parquet(path))
    [('a', 'ACGU'), ('b', 'GG')]
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from biocoreset.data.tables import ROW_IDS, file_stem, row_id
from biocoreset.data.textio import check_exists
from biocoreset.errors import InputError

__all__ = ["PARQUET_MAGIC", "iter_parquet"]

PARQUET_MAGIC = b"PAR1"
"""The first (and last) four bytes of a Parquet file."""

_SLICE = 8192
"""Rows turned into Python strings at a time."""


def _is_text(kind: Any) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(kind):
        return _is_text(kind.value_type)
    view = getattr(pa.types, "is_string_view", None)
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind) or (view and view(kind)))


def _first_null(column: Any) -> int:
    import numpy as np
    import pyarrow.compute as pc

    mask = pc.is_null(column).to_numpy(zero_copy_only=False)
    return int(np.flatnonzero(mask)[0])


def iter_parquet(
    path: str | os.PathLike[str],
    *,
    id_column: str | None = None,
    sequence_column: str | None = None,
    counter: Any = None,
) -> Iterator[tuple[str, str]]:
    """Stream ``(id, sequence)`` from a Parquet file, one row group at a time.

    Args:
        path: The Parquet file.
        id_column: Id column, or ``"@row"`` for ``<file stem>:<row>`` ids (``None``: ``id``).
        sequence_column: Sequence column (``None``: ``sequence``). Whitespace inside a sequence
            is removed, as for CSV/TSV.
        counter: Optional :class:`~biocoreset.data.textio.ByteCounter`; receives each row
            group's compressed size once it is read.

    Raises:
        InputError: The file is missing or not Parquet; a column is missing or not a string, or
            an id or sequence is null (the message names the row group and the row).
    """
    p = Path(path)
    check_exists(p)
    id_col, seq_col = id_column or "id", sequence_column or "sequence"

    def gen() -> Iterator[tuple[str, str]]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(p)
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{str(p)!r} is not a valid Parquet file: {exc}") from exc
        with pf:
            names = pf.schema_arrow.names
            by_row = id_col == ROW_IDS
            columns = [seq_col] if by_row else [id_col, seq_col]
            stem, number = file_stem(p), 0
            for group in range(pf.num_row_groups):
                where = f"{str(p)!r} row group {group} (of {pf.num_row_groups})"
                missing = [c for c in columns if c not in names]
                if missing:
                    raise InputError(
                        f"{where}: no column(s) {missing}; its columns are {names}. Name the "
                        "columns with id_column= and sequence_column= (--id-column, "
                        f"--sequence-column), or number the rows with --id-column {ROW_IDS}."
                    )
                for name in columns:
                    kind = pf.schema_arrow.field(name).type
                    if not _is_text(kind):
                        raise InputError(
                            f"{where}: column {name!r} is {kind}, not a string column; name the "
                            "text columns with --id-column / --sequence-column."
                        )
                batches = pf.iter_batches(
                    batch_size=_SLICE, row_groups=[group], columns=columns, use_threads=False
                )
                start = 0  # the batch's first row in the group
                while True:
                    try:
                        batch = next(batches, None)
                    except (pa.ArrowException, OSError) as exc:
                        raise InputError(f"{where} cannot be read: {exc}") from exc
                    if batch is None:
                        break
                    for name in columns:
                        column = batch.column(name)
                        if column.null_count:
                            row = start + _first_null(column)
                            what = "sequence" if name == seq_col else "id"
                            raise InputError(
                                f"{where}, row {row} (row {number + row + 1} of the file): null "
                                f"{what} in column {name!r}; drop or fill the nulls first."
                            )
                    chunk = batch.column(seq_col).to_pylist()
                    rids = (
                        [row_id(stem, number + start + j + 1) for j in range(len(chunk))]
                        if by_row
                        else [str(r).strip() for r in batch.column(id_col).to_pylist()]
                    )
                    for j, (rid, seq) in enumerate(zip(rids, chunk, strict=True)):
                        if not rid:
                            raise InputError(
                                f"{where}, row {start + j} (row {number + start + j + 1} of the "
                                f"file): empty id in column {id_col!r}."
                            )
                        yield rid, "".join(seq.split())
                    start += len(chunk)
                    del batch, chunk, rids
                number += start
                if counter is not None:
                    meta = pf.metadata.row_group(group)
                    counter.bytes_read += sum(
                        meta.column(c).total_compressed_size for c in range(meta.num_columns)
                    )

    return gen()

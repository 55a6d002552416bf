"""Table readers: CSV/TSV with a header row, AIRR rearrangement TSVs, and OAS data units.

A table names its id and sequence columns (``id_column``, ``sequence_column``; ``--id-column``,
``--sequence-column``). A table without an id column can id its rows by number with
``id_column="@row"`` (:data:`ROW_IDS`): the id of the ``n``-th record is ``<file stem>:<n>``
(``n`` from 1; the header, an OAS metadata line and blank lines are not counted), so ids are the
same on every read and whatever order the files are given in. Row ids are never a silent default
for CSV/TSV: a table without the named id column is an error that names the header.

An **OAS data unit** (Observed Antibody Space, ``.csv.gz``) starts with one line holding a JSON
metadata object written as one quoted CSV field, then the AIRR header row. It is read as it is
(``format="oas"``, or detected from that line): the sequence column is ``sequence_alignment_aa``
unless named (paired units: ``sequence_alignment_aa_heavy`` / ``_light``), the id is
``sequence_id`` where the unit has one, else the row id. The metadata is returned by
:func:`read_oas_unit` and recorded with the scores.

Example:
    >>> import os, tempfile
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "SRR1_Heavy_IGHM.csv"
    >>> _ = path.write_text('"{""Species"": ""human"", ""Chain"": ""Heavy""}"\\n'
    ...                     'v_call,sequence_alignment_aa\\nIGHV1-2*02,QVQLV\\nIGHV3-23*01,EVQLL\\n')
    >>> list(iter_table(path, oas=True))
    [('SRR1_Heavy_IGHM:1', 'QVQLV'), ('SRR1_Heavy_IGHM:2', 'EVQLL')]
    >>> read_oas_unit(path)[0]
    {'Species': 'human', 'Chain': 'Heavy'}
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from biocoreset.data.textio import first_line, open_text, wrap_errors
from biocoreset.errors import InputError

__all__ = [
    "OAS_ID_COLUMN",
    "OAS_SEQUENCE_COLUMN",
    "ROW_IDS",
    "file_stem",
    "iter_table",
    "oas_columns",
    "parse_oas_metadata",
    "read_oas_unit",
    "row_id",
]

ROW_IDS = "@row"
"""``id_column`` value that ids each row by number: ``<file stem>:<row number>``."""

OAS_SEQUENCE_COLUMN = "sequence_alignment_aa"
"""Default sequence column of an OAS data unit."""

OAS_ID_COLUMN = "sequence_id"
"""Id column of an OAS data unit, where it has one (else rows are numbered)."""

_COLUMN_HINT = (
    "Name the columns with id_column= and sequence_column= (--id-column, --sequence-column); "
    f"a table without ids can number its rows with id_column={ROW_IDS!r} (--id-column {ROW_IDS})."
)


def file_stem(path: str | os.PathLike[str]) -> str:
    """The file name without ``.gz`` and its last extension: ``SRR1_Heavy.csv.gz`` → ``SRR1_Heavy``.

    >>> file_stem("units/SRR1_Heavy_IGHG.csv.gz"), file_stem("c.parquet")
    ('SRR1_Heavy_IGHG', 'c')
    """
    name = Path(path).name
    for ext in (".gz", ".gzip", ".bgz"):
        if name.lower().endswith(ext):
            name = name[: -len(ext)]
            break
    return Path(name).stem or name


def row_id(stem: str, number: int) -> str:
    """The id of record ``number`` (from 1) of a file whose :func:`file_stem` is ``stem``.

    >>> row_id("SRR1_Heavy_IGHG", 3)
    'SRR1_Heavy_IGHG:3'
    """
    return f"{stem}:{number}"


def parse_oas_metadata(line: str) -> dict[str, Any] | None:
    """The JSON object of an OAS metadata line (one quoted CSV field), or ``None`` if it is not one.

    >>> parse_oas_metadata('"{""Run"": ""SRR1""}"')
    {'Run': 'SRR1'}
    >>> parse_oas_metadata("id,sequence") is None
    True
    """
    text = line.strip()
    if not text.startswith(('"{', "{")):
        return None
    try:
        return _metadata(next(csv.reader([text])))
    except (csv.Error, StopIteration):
        return None


def _metadata(fields: list[str]) -> dict[str, Any] | None:
    """The JSON object in the fields of a table's first record (``None``: not OAS metadata)."""
    text = ",".join(fields).strip()
    if not text.startswith("{"):
        return None
    try:
        meta = json.loads(text)
    except ValueError:
        return None
    return meta if isinstance(meta, dict) else None


def _reader(fh: Any, delimiter: str) -> Any:
    limit = csv.field_size_limit()
    if limit < 1 << 30:  # sequences can be longer than csv's default 128 KiB field limit
        csv.field_size_limit(1 << 30)
    return csv.reader(fh, delimiter=delimiter)


def _next_record(reader: Any) -> list[str] | None:
    """The next non-blank record of a CSV reader (``None`` at the end)."""
    for row in reader:
        if row and any(f.strip() for f in row):
            return row
    return None


def _head(reader: Any, p: Path, oas: bool) -> tuple[dict[str, Any] | None, list[str]]:
    """Consume the OAS metadata line (``oas``) and the header row of a table's CSV reader."""
    meta = None
    if oas:
        first = _next_record(reader)
        meta = None if first is None else _metadata(first)
        if meta is None:
            shown = ",".join(first or [])[:60]
            raise InputError(
                f"{str(p)!r} is not an OAS data unit: its first line {shown!r} is not a JSON "
                "metadata object. Pass format='csv' (--format csv) for a plain table."
            )
    header = _next_record(reader)
    if header is None:
        raise InputError(f"{str(p)!r} is empty: it holds no header row.")
    return meta, [h.strip() for h in header]


def oas_columns(
    path: str | os.PathLike[str],
    header: list[str],
    id_column: str | None,
    sequence_column: str | None,
) -> tuple[str, str]:
    """The id and sequence columns of an OAS unit with ``header``, defaults resolved.

    Raises:
        InputError: The sequence column is missing (a paired unit is told its chain columns).

    >>> oas_columns("u.csv.gz", ["v_call", "sequence_alignment_aa"], None, None)
    ('@row', 'sequence_alignment_aa')
    >>> oas_columns("u.csv.gz", ["sequence_id", "sequence_alignment_aa"], None, None)
    ('sequence_id', 'sequence_alignment_aa')
    """
    seq = sequence_column or OAS_SEQUENCE_COLUMN
    rid = id_column or (OAS_ID_COLUMN if OAS_ID_COLUMN in header else ROW_IDS)
    if seq not in header:
        paired = [c for c in header if c.startswith(OAS_SEQUENCE_COLUMN + "_")]
        hint = (
            f"it is a paired unit: choose a chain with --sequence-column {' or '.join(paired)}"
            if paired and sequence_column is None
            else f"its columns are {header}"
        )
        raise InputError(f"OAS unit {str(path)!r} has no column {seq!r}; {hint}.")
    if rid != ROW_IDS and rid not in header:
        raise InputError(
            f"OAS unit {str(path)!r} has no column {rid!r}; its columns are {header}. {_COLUMN_HINT}"
        )
    return rid, seq


def read_oas_unit(path: str | os.PathLike[str]) -> tuple[dict[str, Any], list[str]]:
    """The metadata object and the header row of an OAS data unit (plain or gzip).

    Raises:
        InputError: The file is missing, or its first line is not OAS metadata.
    """
    p = Path(path)

    def gen() -> Iterator[tuple[dict[str, Any] | None, list[str]]]:
        with open_text(p) as fh:
            yield _head(_reader(fh, ","), p, oas=True)

    ((meta, header),) = list(wrap_errors(p, "OAS", gen()))  # read through: the file is closed
    assert meta is not None
    return meta, header


def iter_table(
    path: str | os.PathLike[str],
    *,
    id_column: str | None = None,
    sequence_column: str | None = None,
    delimiter: str = ",",
    counter: Any = None,
    oas: bool = False,
) -> Iterator[tuple[str, str]]:
    """Stream ``(id, sequence)`` from a CSV/TSV file with a header row, or an OAS unit (``oas``).

    Args:
        path: The table (plain or gzip).
        id_column: Header of the id column, or :data:`ROW_IDS` (``None``: ``id``; OAS:
            ``sequence_id`` where present, else row ids).
        sequence_column: Header of the sequence column (``None``: ``sequence``; OAS:
            ``sequence_alignment_aa``).
        delimiter: ``","`` (CSV) or ``"\\t"`` (TSV).
        counter: Optional :class:`~biocoreset.data.textio.ByteCounter` for progress bars.
        oas: The file is an OAS data unit (its first line is metadata).

    Raises:
        InputError: The file is missing or empty, a column is missing (the message lists the header),
            or a row has too few fields or an empty id (the message gives the line).
    """
    p = Path(path)
    if not first_line(p):
        raise InputError(f"{str(p)!r} is empty: it holds no header row and no record.")

    def gen() -> Iterator[tuple[str, str]]:
        with open_text(p, counter) as fh:
            reader = _reader(fh, delimiter)
            _meta, names = _head(reader, p, oas)
            if oas:
                id_col, seq_col = oas_columns(p, names, id_column, sequence_column)
            else:
                id_col, seq_col = id_column or "id", sequence_column or "sequence"
            by_row = id_col == ROW_IDS
            wanted = (seq_col,) if by_row else (id_col, seq_col)
            missing = [c for c in wanted if c not in names]
            if missing:
                oas_hint = (
                    " Its first line is an OAS metadata line: pass format='oas' (--format oas)."
                    if _metadata(names) is not None
                    else ""
                )
                raise InputError(
                    f"{str(p)!r} has no column(s) {missing}; its header is {names}. "
                    + _COLUMN_HINT
                    + oas_hint
                )
            i_seq = names.index(seq_col)
            i_id = i_seq if by_row else names.index(id_col)
            need = max(i_id, i_seq) + 1
            stem = file_stem(p)
            number = 0
            while (row := _next_record(reader)) is not None:
                number += 1
                if len(row) < need:
                    raise InputError(
                        f"{str(p)!r} line {reader.line_num}: {len(row)} field(s), but the "
                        f"{seq_col!r}/{id_col!r} columns need {need}."
                    )
                rid = row_id(stem, number) if by_row else row[i_id].strip()
                if not rid:
                    raise InputError(
                        f"{str(p)!r} line {reader.line_num}: empty id in column {id_col!r}."
                    )
                yield rid, "".join(row[i_seq].split())

    return wrap_errors(p, "OAS" if oas else "CSV/TSV", gen())

"""Sequence sources: re-iterable streams of ``(id, sequence)`` records.

Scoring reads the corpus more than once (an index pass, then ``D_sub``, then every sequence), so a
source must be re-iterable. A file is re-opened and streamed on each pass and never loaded whole; a
list is used as is; a one-shot iterator (e.g. a generator) is materialised once.

Example:
    >>> src = as_source([("a", "ACGU"), ("b", "GG")])
    >>> [rid for rid, _ in src], src.describe()
    (['a', 'b'], '<2 in-memory records>')
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from biocoreset.data.readers import (
    FORMATS,
    ByteCounter,
    detect_format,
    iter_fasta,
    read_records,
)
from biocoreset.data.tables import oas_columns, read_oas_unit
from biocoreset.errors import ConfigError, InputError

__all__ = ["ConcatSource", "SequenceSource", "as_source", "iter_fasta", "open_sequences"]


class SequenceSource:
    """A re-iterable source of ``(id, sequence)`` records.

    Args:
        records: A list/tuple of pairs, or ``None`` with ``path``.
        path: A sequence file: FASTA, FASTQ, CSV, TSV or OAS unit (plain or gzip), or Parquet.
        format: File format, one of :data:`~biocoreset.data.readers.FORMATS` (``"auto"``: from the
            name, else the content).
        id_column: Id column of a table or Parquet file (``None``: ``id``; OAS: ``sequence_id``
            where present, else row ids); ``"@row"`` ids rows ``<file stem>:<row number>``.
        sequence_column: Sequence column (``None``: ``sequence``; OAS: ``sequence_alignment_aa``).
    """

    def __init__(
        self,
        records: list[tuple[str, str]] | None = None,
        path: Path | None = None,
        *,
        format: str = "auto",
        id_column: str | None = None,
        sequence_column: str | None = None,
    ) -> None:
        if (records is None) == (path is None):
            raise ConfigError("a SequenceSource needs exactly one of records= or path=.")
        if format not in FORMATS:
            raise ConfigError(f"format must be one of {', '.join(FORMATS)}, got {format!r}.")
        self.records = records
        self.path = None if path is None else Path(path)
        self.format = format
        self.id_column = id_column
        self.sequence_column = sequence_column

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return self.iter()

    def iter(self, counter: ByteCounter | None = None) -> Iterator[tuple[str, str]]:
        """Iterate the records; ``counter`` (files only) receives the bytes read from disk."""
        if self.path is not None:
            return self._read(self.path, counter, headers=False)
        return self._iter_records()

    def iter_with_headers(
        self, counter: ByteCounter | None = None
    ) -> Iterator[tuple[str, str, str]]:
        """Iterate ``(id, sequence, header)``: the header is a FASTA/FASTQ record's whole title
        line (id and description, as in the file), or the id for tables and in-memory records.

        >>> list(SequenceSource(records=[("r1", "ACGU")]).iter_with_headers())
        [('r1', 'ACGU', 'r1')]
        """
        if self.path is not None:
            return self._read(self.path, counter, headers=True)
        return ((rid, seq, rid) for rid, seq in self._iter_records())

    def _read(self, path: Any, counter: ByteCounter | None, *, headers: bool) -> Iterator[Any]:
        """The records of the file ``path`` with this source's reader options."""
        return read_records(
            path,
            format=self.format,
            id_column=self.id_column,
            sequence_column=self.sequence_column,
            counter=counter,
            headers=headers,
        )

    def _iter_records(self) -> Iterator[tuple[str, str]]:
        assert self.records is not None
        for i, rec in enumerate(self.records):
            try:
                rid, seq = rec
            except (TypeError, ValueError):
                raise InputError(
                    f"record {i} is {rec!r}; sequences must be (id, sequence) pairs or a file path."
                ) from None
            yield str(rid), str(seq)

    @property
    def size_bytes(self) -> int | None:
        """Size of the file on disk (``None`` for in-memory records)."""
        return self.path.stat().st_size if self.path is not None and self.path.exists() else None

    @property
    def num_records(self) -> int | None:
        """Number of in-memory records (``None`` for a file: it is only known after a pass)."""
        return None if self.records is None else len(self.records)

    def describe(self) -> str:
        """A short description for metadata and error messages."""
        return (
            str(self.path)
            if self.path is not None
            else f"<{len(self.records or [])} in-memory records>"
        )

    def reader_options(self) -> dict[str, Any]:
        """How to re-open the same data (recorded in score metadata; ``{}`` for in-memory records).

        The format is the one read (``"auto"`` resolved) and the columns are the ones used; an OAS
        data unit adds its metadata object (``"unit_metadata"``).
        """
        if self.path is None:
            return {}
        fmt = detect_format(self.path) if self.format == "auto" else self.format
        options: dict[str, Any] = {
            "path": str(self.path.resolve()),
            "format": fmt,
            "id_column": self.id_column or "id",  # the table default; FASTA/FASTQ ignore it
            "sequence_column": self.sequence_column or "sequence",
        }
        if fmt == "oas":
            meta, header = read_oas_unit(self.path)
            id_col, seq_col = oas_columns(self.path, header, self.id_column, self.sequence_column)
            options.update(id_column=id_col, sequence_column=seq_col, unit_metadata=meta)
        return options


class ConcatSource(SequenceSource):
    """Several sources read one after another as one corpus (e.g. a corpus split into files).

    Scores do not depend on how a corpus is split or ordered (``D_sub`` is drawn from the ids), so
    ``score(model, ["part1.fa", "part2.fa"])`` gives the scores of the concatenated file.

    Args:
        parts: The sources, in reading order.

    Raises:
        ConfigError: No part.

    >>> src = ConcatSource([as_source([("a", "AC")]), as_source([("b", "GU")])])
    >>> list(src), src.describe()
    ([('a', 'AC'), ('b', 'GU')], '<1 in-memory records> + <1 in-memory records>')
    """

    def __init__(self, parts: list[SequenceSource]) -> None:
        if not parts:
            raise ConfigError("a ConcatSource needs at least one part.")
        self.parts = list(parts)
        self.records = None
        self.path = None
        self.format = "auto"
        self.id_column = None
        self.sequence_column = None

    def iter(self, counter: ByteCounter | None = None) -> Iterator[tuple[str, str]]:
        """Iterate the parts' records in order."""
        for part in self.parts:
            yield from part.iter(counter)

    @property
    def size_bytes(self) -> int | None:
        """Total size on disk (``None`` unless every part is a file)."""
        sizes = [p.size_bytes for p in self.parts]
        known = [s for s in sizes if s is not None]
        return sum(known) if len(known) == len(sizes) else None

    @property
    def num_records(self) -> int | None:
        """Total in-memory records (``None`` when a part is a file)."""
        counts = [p.num_records for p in self.parts]
        known = [c for c in counts if c is not None]
        return sum(known) if len(known) == len(counts) else None

    def describe(self) -> str:
        """The parts' descriptions joined with ``+``."""
        return " + ".join(p.describe() for p in self.parts)

    def reader_options(self) -> dict[str, Any]:
        """``{"parts": [...]}`` with each part's options (``{}`` when a part is in memory)."""
        parts = [p.reader_options() for p in self.parts]
        return {"parts": parts} if all(parts) else {}


def open_sequences(
    path: str | os.PathLike[str],
    *,
    format: str = "auto",
    id_column: str | None = None,
    sequence_column: str | None = None,
) -> SequenceSource:
    """A streaming source over a sequence file.

    Args:
        path: FASTA, FASTQ, CSV, TSV or OAS unit (plain or gzip), or Parquet.
        format: One of :data:`~biocoreset.data.readers.FORMATS` (``"auto"``: from the name, else
            the content).
        id_column: Id column of a table or Parquet file (``None``: ``id``; OAS: ``sequence_id``
            where present, else row ids); ``"@row"`` ids rows ``<file stem>:<row number>``.
        sequence_column: Sequence column (``None``: ``sequence``; OAS: ``sequence_alignment_aa``).

    Example:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "x.tsv")
        >>> _ = Path(path).write_text("acc\\tsequence\\nA1\\tACGU\\n")
        >>> list(open_sequences(path, id_column="acc"))
        [('A1', 'ACGU')]
    """
    return SequenceSource(
        path=Path(path), format=format, id_column=id_column, sequence_column=sequence_column
    )


def as_source(sequences: Any) -> SequenceSource:
    """Wrap a file path, a list of file paths (one corpus, see :class:`ConcatSource`) or an iterable
    of pairs as a :class:`SequenceSource`.

    Raises:
        InputError: ``sequences`` is neither a path nor an iterable of pairs, or a path (a string
            in a list of them) names no file: the message names the two forms.
    """
    if isinstance(sequences, SequenceSource):
        return sequences
    if isinstance(sequences, (str, os.PathLike)):
        _check_path(sequences, "sequences")
        return SequenceSource(path=Path(sequences))
    if isinstance(sequences, (list, tuple)):
        if sequences and all(isinstance(s, (str, os.PathLike, SequenceSource)) for s in sequences):
            for i, s in enumerate(sequences):
                if not isinstance(s, SequenceSource):
                    _check_path(s, f"sequences[{i}]")
            return ConcatSource([as_source(s) for s in sequences])
        return SequenceSource(records=list(sequences))
    if isinstance(sequences, Iterable):
        return SequenceSource(records=list(sequences))
    raise InputError(
        f"sequences must be a sequence file path or an iterable of (id, sequence) pairs, got "
        f"{type(sequences).__name__}."
    )


def _check_path(path: str | os.PathLike[str], name: str) -> None:
    """Refuse a path that names nothing, saying both forms ``sequences`` takes (a bare sequence
    such as ``"ACGU"`` is read as a file name)."""
    if not os.path.exists(path):
        example = path if isinstance(path, str) and path.isalpha() else "ACGU"
        raise InputError(
            f"{name} is {os.fspath(path)!r}, which is not an existing file; pass sequence file "
            f"paths, or (id, sequence) pairs such as [('seq0', {example!r}), ('seq1', ...)]."
        )

"""Streaming readers: FASTA, FASTQ (plain or gzip), CSV/TSV tables, OAS data units and Parquet.

Every reader is a generator over one open file: records are parsed one at a time and nothing is
held beyond the current record (Parquet: the current row group), so a 23M-sequence corpus is read
in constant memory. FASTA and FASTQ go through Biopython's low-level parsers
(``SimpleFastaParser``, ``FastqGeneralIterator``); tables and OAS units through :mod:`csv` with a
header row naming the id and sequence columns (:mod:`biocoreset.data.tables`); Parquet through
pyarrow, row group by row group (:mod:`biocoreset.data.parquet`).

The format is taken from the file name (``.fa``/``.fasta``/``.fna``..., ``.fq``/``.fastq``,
``.csv``, ``.tsv``/``.tab``, each optionally followed by ``.gz``; ``.parquet``) or, for other
names, from the content (``PAR1`` Parquet, ``>`` FASTA, ``@`` FASTQ). A CSV whose first line is a
JSON metadata object is an OAS data unit. Gzip is detected from the file's magic bytes, not its
name.

Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "x.csv")
    >>> _ = Path(path).write_text("name,seq\\nr1,ACGU\\nr2,GG\\n")
    >>> list(read_records(path, id_column="name", sequence_column="seq"))
    [('r1', 'ACGU'), ('r2', 'GG')]
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from biocoreset.data.parquet import PARQUET_MAGIC, iter_parquet
from biocoreset.data.tables import ROW_IDS, iter_table, parse_oas_metadata
from biocoreset.data.textio import ByteCounter, check_exists, first_line, open_text, wrap_errors
from biocoreset.errors import ConfigError, InputError

__all__ = [
    "FORMATS",
    "ROW_IDS",
    "ByteCounter",
    "detect_format",
    "iter_fasta",
    "iter_fastq",
    "iter_parquet",
    "iter_table",
    "open_text",
    "read_records",
]

FORMATS = ("auto", "fasta", "fastq", "csv", "tsv", "oas", "parquet")
"""Accepted values of the ``format`` option."""

_SUFFIXES = {
    ".fa": "fasta",
    ".fasta": "fasta",
    ".fna": "fasta",
    ".ffn": "fasta",
    ".faa": "fasta",
    ".frn": "fasta",
    ".fas": "fasta",
    ".mpfa": "fasta",
    ".fq": "fastq",
    ".fastq": "fastq",
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
}


def _strip_gz(name: str) -> str:
    low = name.lower()
    for ext in (".gz", ".gzip", ".bgz"):
        if low.endswith(ext):
            return low[: -len(ext)]
    return low


def detect_format(path: str | os.PathLike[str]) -> str:
    """The format of a sequence file: one of :data:`FORMATS` other than ``"auto"``.

    By file name first (a ``.csv`` whose first line is OAS metadata is ``"oas"``), else by the
    content: Parquet's magic bytes, OAS metadata, or the first non-blank character.

    Raises:
        InputError: The file is missing, empty, or its format cannot be told.

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "reads.txt")
    >>> _ = Path(path).write_text("@r1\\nACGU\\n+\\nIIII\\n")
    >>> detect_format(path)
    'fastq'
    """
    p = Path(path)
    check_exists(p)
    suffix = Path(_strip_gz(p.name)).suffix
    fmt = _SUFFIXES.get(suffix)
    if fmt not in (None, "csv"):
        return str(fmt)
    if fmt is None:
        with open(p, "rb") as fh:
            if fh.read(4) == PARQUET_MAGIC:
                return "parquet"
    first = first_line(p)
    if parse_oas_metadata(first) is not None:
        return "oas"
    if fmt is not None:
        return str(fmt)
    if not first:
        raise InputError(f"{str(p)!r} is empty: it holds no sequence record.")
    if first.startswith(">"):
        return "fasta"
    if first.startswith("@"):
        return "fastq"
    raise InputError(
        f"cannot tell the format of {str(p)!r}: its name has no known extension (.fasta, .fastq, "
        f".csv, .tsv, optionally .gz; .parquet) and its first line {first[:40]!r} starts neither a "
        "FASTA ('>') nor a FASTQ ('@') record. Pass format='fasta'|'fastq'|'csv'|'tsv'|'oas'|"
        "'parquet' (--format)."
    )


def _record_id(path: Path, title: str, number: int, kind: str) -> str:
    rid = title.split(None, 1)[0] if title.strip() else ""
    if not rid:
        raise InputError(
            f"{str(path)!r}: {kind} record {number} has an empty header; every record needs an id."
        )
    return rid


def iter_fasta(
    path: str | os.PathLike[str], counter: ByteCounter | None = None, *, headers: bool = False
) -> Iterator[Any]:
    """Stream ``(id, sequence)`` from a FASTA file (plain or gzip), via Biopython.

    The id is the header's first word; sequence lines are joined without whitespace. With
    ``headers=True`` each record is ``(id, sequence, header)``, the header being the whole title
    line after ``>`` (the id and its description), for writing the record back unchanged.

    Raises:
        InputError: The file is missing, empty, not FASTA, or a record has an empty header.
    """
    from Bio.SeqIO.FastaIO import SimpleFastaParser

    p = Path(path)
    first = first_line(p)
    if not first:
        raise InputError(f"{str(p)!r} is empty: it holds no FASTA record.")
    if not first.startswith(">"):
        raise InputError(
            f"{str(p)!r} is not a FASTA file: its first non-blank line does not start with '>' "
            f"({first[:40]!r}). If it is FASTQ or a table, pass format='fastq'|'csv'|'tsv'."
        )

    def gen() -> Iterator[Any]:
        with open_text(p, counter) as fh:
            for number, (title, seq) in enumerate(SimpleFastaParser(fh), start=1):
                rid = _record_id(p, title, number, "FASTA")
                yield (rid, seq, title.strip()) if headers else (rid, seq)

    return wrap_errors(p, "FASTA", gen())


def iter_fastq(
    path: str | os.PathLike[str], counter: ByteCounter | None = None, *, headers: bool = False
) -> Iterator[Any]:
    """Stream ``(id, sequence)`` from a FASTQ file (plain or gzip), via Biopython; qualities are dropped.

    ``headers=True`` adds the whole title line after ``@`` as a third item.

    Raises:
        InputError: The file is missing, empty, not FASTQ, or malformed (the message says where).
    """
    from Bio.SeqIO.QualityIO import FastqGeneralIterator

    p = Path(path)
    first = first_line(p)
    if not first:
        raise InputError(f"{str(p)!r} is empty: it holds no FASTQ record.")
    if not first.startswith("@"):
        raise InputError(
            f"{str(p)!r} is not a FASTQ file: its first non-blank line does not start with '@' "
            f"({first[:40]!r})."
        )

    def gen() -> Iterator[Any]:
        with open_text(p, counter) as fh:
            for number, (title, seq, _qual) in enumerate(FastqGeneralIterator(fh), start=1):
                rid = _record_id(p, title, number, "FASTQ")
                yield (rid, seq, title.strip()) if headers else (rid, seq)

    return wrap_errors(p, "FASTQ", gen())


def read_records(
    path: str | os.PathLike[str],
    *,
    format: str = "auto",
    id_column: str | None = None,
    sequence_column: str | None = None,
    counter: ByteCounter | None = None,
    headers: bool = False,
) -> Iterator[Any]:
    """Stream ``(id, sequence)`` records from a sequence file of any supported format.

    Args:
        path: FASTA, FASTQ, CSV, TSV or OAS unit (plain or gzip), or Parquet.
        format: One of :data:`FORMATS` (``"auto"``: from the name, else the content).
        id_column: Id column of a table or Parquet file (``None``: ``id``; OAS: ``sequence_id``
            where present, else row ids); ``"@row"`` ids rows ``<file stem>:<row number>``.
        sequence_column: Sequence column (``None``: ``sequence``; OAS: ``sequence_alignment_aa``).
        counter: Optional byte counter for progress bars.
        headers: Yield ``(id, sequence, header)``: the FASTA/FASTQ title line (id and
            description), or the id for a table.

    Raises:
        ConfigError: Unknown ``format``.
        InputError: Unreadable or malformed input (see the format readers).
    """
    if format not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}, got {format!r}.")
    fmt = detect_format(path) if format == "auto" else format
    if fmt == "fasta":
        return iter_fasta(path, counter, headers=headers)
    if fmt == "fastq":
        return iter_fastq(path, counter, headers=headers)
    if fmt == "parquet":
        rows = iter_parquet(
            path, id_column=id_column, sequence_column=sequence_column, counter=counter
        )
    else:
        rows = iter_table(
            path,
            id_column=id_column,
            sequence_column=sequence_column,
            delimiter="\t" if fmt == "tsv" else ",",
            counter=counter,
            oas=fmt == "oas",
        )
    return ((rid, seq, rid) for rid, seq in rows) if headers else rows

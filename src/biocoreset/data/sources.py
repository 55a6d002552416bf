"""Sequence sources: re-iterable streams of ``(id, sequence)`` records.

Scoring reads the corpus more than once (ids, then ``D_sub``, then every sequence), so a source must
be re-iterable. A file path is re-opened each pass and never loaded whole; a list is used as is; a
one-shot iterator (e.g. a generator) is materialised once.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from biocoreset.errors import InputError

__all__ = ["SequenceSource", "as_source", "iter_fasta"]


def _open_text(path: Path) -> Any:
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8", newline=None)
    return open(path, encoding="utf-8", newline=None)


def iter_fasta(path: str | os.PathLike[str]) -> Iterator[tuple[str, str]]:
    """Stream ``(id, sequence)`` from a FASTA file (plain or gzip), via Biopython.

    The id is the header's first word. Raises :class:`InputError` for a file that is not FASTA or
    holds no record.
    """
    from Bio.SeqIO.FastaIO import SimpleFastaParser

    p = Path(path)
    if not p.exists():
        raise InputError(f"sequence file {str(p)!r} does not exist.")
    with _open_text(p) as fh:
        first = ""
        for line in fh:
            if line.strip():
                first = line
                break
        if not first:
            raise InputError(f"{str(p)!r} is empty: it holds no FASTA record.")
        if not first.startswith(">"):
            raise InputError(
                f"{str(p)!r} is not a FASTA file: its first non-blank line does not start with '>' "
                f"({first[:40]!r})."
            )
        fh.seek(0)
        for title, seq in SimpleFastaParser(fh):
            rid = title.split(None, 1)[0] if title.strip() else ""
            if not rid:
                raise InputError(f"{str(p)!r}: a FASTA record has an empty header; every record needs an id.")
            yield rid, seq


class SequenceSource:
    """A re-iterable source of ``(id, sequence)`` records.

    Args:
        records: A list/tuple of pairs, or ``None`` with ``path``.
        path: A FASTA file (plain or gzip).
    """

    def __init__(self, records: list[tuple[str, str]] | None = None, path: Path | None = None) -> None:
        self.records = records
        self.path = path

    def __iter__(self) -> Iterator[tuple[str, str]]:
        if self.path is not None:
            yield from iter_fasta(self.path)
        else:
            assert self.records is not None
            for i, rec in enumerate(self.records):
                try:
                    rid, seq = rec
                except (TypeError, ValueError):
                    raise InputError(
                        f"record {i} is {rec!r}; sequences must be (id, sequence) pairs or a FASTA path."
                    ) from None
                yield str(rid), str(seq)

    def describe(self) -> str:
        """A short description for metadata."""
        return str(self.path) if self.path is not None else f"<{len(self.records or [])} in-memory records>"


def as_source(sequences: Any) -> SequenceSource:
    """Wrap a FASTA path or an iterable of pairs as a :class:`SequenceSource`."""
    if isinstance(sequences, SequenceSource):
        return sequences
    if isinstance(sequences, (str, os.PathLike)):
        return SequenceSource(path=Path(sequences))
    if isinstance(sequences, (list, tuple)):
        return SequenceSource(records=list(sequences))
    if isinstance(sequences, Iterable):
        return SequenceSource(records=list(sequences))
    raise InputError(
        f"sequences must be a FASTA path or an iterable of (id, sequence) pairs, got {type(sequences).__name__}."
    )

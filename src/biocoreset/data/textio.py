"""Text input shared by the readers: plain or gzip files, a byte counter for progress bars, and
the one-line errors of an unreadable file.

Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "x.txt")
    >>> _ = Path(path).write_text("\\n>r1\\nACGU\\n")
    >>> first_line(path)
    '>r1\\n'
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from biocoreset.errors import InputError

__all__ = ["ByteCounter", "check_exists", "first_line", "open_text", "wrap_errors"]


class ByteCounter:
    """Counts the bytes read from disk (compressed bytes for gzip files), for progress bars.

    Attributes:
        bytes_read: Bytes read so far.
    """

    def __init__(self) -> None:
        self.bytes_read = 0


class _CountingFile(io.RawIOBase):
    """A binary file wrapper that adds every read to a :class:`ByteCounter`."""

    def __init__(self, raw: IO[bytes], counter: ByteCounter) -> None:
        self._raw = raw
        self._counter = counter

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self._counter.bytes_read += n
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


class _OwningGzipFile(gzip.GzipFile):
    """A gzip reader over an open binary file that closes that file too."""

    def __init__(self, raw: IO[bytes]) -> None:
        super().__init__(fileobj=raw, mode="rb")
        self._raw = raw

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._raw.close()


def check_exists(path: Path) -> None:
    if not path.exists():
        raise InputError(f"sequence file {str(path)!r} does not exist.")
    if path.is_dir():
        raise InputError(
            f"{str(path)!r} is a folder; pass a sequence file (FASTA, FASTQ, CSV, TSV, OAS "
            "unit or Parquet)."
        )


def open_text(path: str | os.PathLike[str], counter: ByteCounter | None = None) -> IO[str]:
    """Open a plain or gzip text file for reading (gzip detected by its magic bytes).

    Args:
        path: The file.
        counter: Optional :class:`ByteCounter` that receives the number of bytes read from disk.

    Raises:
        InputError: The file does not exist or is a folder.
    """
    p = Path(path)
    check_exists(p)
    with open(p, "rb") as fh:
        magic = fh.read(2)
    raw: IO[bytes] = open(p, "rb")  # noqa: SIM115 - returned to the caller, closed by it
    if counter is not None:
        raw = io.BufferedReader(_CountingFile(raw, counter), buffer_size=1 << 20)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(_OwningGzipFile(raw), encoding="utf-8", newline=None)
    return io.TextIOWrapper(raw, encoding="utf-8", newline=None)


def first_line(path: str | os.PathLike[str]) -> str:
    """The first non-blank line of a text file (``""`` when there is none).

    Raises:
        InputError: The file is missing, a folder, or not text (or not valid gzip).
    """
    try:
        with open_text(path) as fh:
            for line in fh:
                if line.strip():
                    return line
    except (OSError, EOFError, UnicodeDecodeError, zlib.error) as exc:
        raise InputError(f"{str(path)!r} cannot be read as text: {exc}") from exc
    return ""


def wrap_errors(path: Path, kind: str, gen: Iterator[Any]) -> Iterator[Any]:
    """``gen``'s items; a parse or I/O error becomes one ``InputError`` naming the file and ``kind``."""
    try:
        yield from gen
    except InputError:
        raise
    except (ValueError, OSError, EOFError, UnicodeDecodeError, zlib.error, csv.Error) as exc:
        raise InputError(f"{str(path)!r} is not a valid {kind} file: {exc}") from exc

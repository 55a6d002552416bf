"""The MMseqs2 binary: finding it, its version, running it and writing its input FASTA.

Every biocoreset feature that calls MMseqs2 (:func:`biocoreset.data.clusters.cluster_to_file`,
``biocoreset dedup --method mmseqs``) goes through this module, so a missing binary gives the same
one-line error everywhere. MMseqs2 is not a Python package: install the Debian/Ubuntu package
``mmseqs2`` (``apt-get install mmseqs2``) or bioconda's ``mmseqs2``
(``conda install -c conda-forge -c bioconda mmseqs2``), or put a release binary on ``PATH``.
The environment variable ``BIOCORESET_MMSEQS`` names a binary explicitly.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

from biocoreset.errors import BioCoresetError, ConfigError, InputError

__all__ = [
    "INSTALL_HINT",
    "MMseqsError",
    "check_fraction",
    "find_mmseqs",
    "mmseqs_version",
    "run_mmseqs",
    "write_fasta",
]

INSTALL_HINT = (
    "install MMseqs2: the Debian/Ubuntu package `mmseqs2` (apt-get install mmseqs2) or bioconda's "
    "(conda install -c conda-forge -c bioconda mmseqs2), or set BIOCORESET_MMSEQS to its binary"
)
"""How to get MMseqs2, as the error for a missing binary says it."""


class MMseqsError(BioCoresetError, RuntimeError):
    """MMseqs2 is missing or one of its runs failed (the message names the command)."""


def find_mmseqs() -> str:
    """The path of the ``mmseqs`` binary (``BIOCORESET_MMSEQS``, else ``mmseqs`` on ``PATH``).

    Raises:
        MMseqsError: No binary is found; the message says how to install one.
    """
    named = os.environ.get("BIOCORESET_MMSEQS")
    if named:
        found = shutil.which(named)
        if found is None:
            raise MMseqsError(f"BIOCORESET_MMSEQS={named!r} is not an executable; {INSTALL_HINT}.")
        return found
    found = shutil.which("mmseqs")
    if found is None:
        raise MMseqsError(f"MMseqs2 (`mmseqs`) is not on PATH; {INSTALL_HINT}.")
    return found


def mmseqs_version(binary: str | None = None) -> str:
    """The binary's version string (``mmseqs version``), e.g. ``"14-7e284+ds-1+b2"``."""
    out = subprocess.run(
        [binary or find_mmseqs(), "version"], capture_output=True, text=True, check=False
    )
    return out.stdout.strip() or "unknown"


def run_mmseqs(args: Sequence[str | os.PathLike[str]], *, binary: str | None = None) -> None:
    """Run ``mmseqs <args>``; its output is captured and shown only when it fails.

    Raises:
        MMseqsError: The run exits non-zero; the message names the command and ends with the last
            lines MMseqs2 printed.
    """
    cmd = [binary or find_mmseqs(), *(os.fspath(a) for a in args)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        tail = " | ".join((out.stderr or out.stdout).strip().splitlines()[-3:])
        raise MMseqsError(
            f"`mmseqs {' '.join(cmd[1:3])} ...` failed with exit code {out.returncode}: {tail}"
        )


def write_fasta(records: Iterable[tuple[str, str]], path: Path, *, what: str) -> int:
    """Write ``(id, sequence)`` records as FASTA for MMseqs2; return how many.

    MMseqs2 names a record by its header's first word, so each id must be one word, and ids must be
    unique for its tables to be read back unambiguously.

    Raises:
        InputError: An id is empty, holds whitespace or repeats (named, with ``what``), or there
            is no record.
    """
    seen: dict[str, int] = {}
    n = 0
    with open(path, "w", encoding="utf-8") as fh:
        for n, (rid, seq) in enumerate(records, start=1):
            rid = str(rid)
            if not rid or rid.split()[0:1] != [rid]:
                raise InputError(
                    f"{what}: record {n} has the id {rid!r}; MMseqs2 needs a non-empty id without "
                    "whitespace."
                )
            if rid in seen:
                raise InputError(
                    f"{what}: the id {rid!r} appears twice (records {seen[rid]} and {n}); ids must "
                    "be unique to match MMseqs2's output back to the records."
                )
            seen[rid] = n
            fh.write(f">{rid}\n{seq}\n")
    if n == 0:
        raise InputError(f"{what} holds no record.")
    return n


def check_fraction(option: str, value: float) -> float:
    """``value`` as a float in [0, 1], or a :class:`ConfigError` naming ``option``.

    >>> check_fraction("min_seq_id", 0.9)
    0.9
    """
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    if isinstance(value, bool) or not 0.0 <= v <= 1.0:
        raise ConfigError(f"{option} must be a fraction in [0, 1], got {value!r}.")
    return v

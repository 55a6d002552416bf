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
    "search_hits",
    "threshold_args",
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


def threshold_args(min_seq_id: float, coverage: float, cov_mode: int) -> list[str]:
    """MMseqs2's identity and coverage flags, the same for ``easy-cluster`` and ``easy-search``.

    >>> threshold_args(0.9, 0.8, 0)
    ['--min-seq-id', '0.9', '-c', '0.8', '--cov-mode', '0']
    """
    return ["--min-seq-id", repr(min_seq_id), "-c", repr(coverage), "--cov-mode", str(cov_mode)]


def search_hits(
    queries: Iterable[tuple[str, str]],
    targets: Iterable[tuple[str, str]],
    *,
    min_seq_id: float,
    coverage: float = 0.8,
    cov_mode: int = 0,
    sensitivity: float = 7.5,
    threads: int = 1,
    nucleotide: bool = False,
    exhaustive: bool = False,
    workdir: str | os.PathLike[str] | None = None,
    names: tuple[str, str] = ("the queries", "the targets"),
) -> list[tuple[str, str, float, float, float]]:
    """``mmseqs easy-search`` of ``queries`` against ``targets``: every hit that passes the
    thresholds, as ``(query, target, identity, query coverage, target coverage)``.

    Identity is MMseqs2's ``fident``: identical residues over the alignment's length
    (``--seq-id-mode 0``), of an alignment with start and end (``--alignment-mode 3``). The E-value
    filter is off (``-e inf``), so identity and coverage alone decide.

    Args:
        queries: ``(id, sequence)`` records searched (ids unique, one word).
        targets: ``(id, sequence)`` records searched against.
        min_seq_id: Minimum identity (``--min-seq-id``).
        coverage: Minimum covered fraction (``-c``), of both sequences with ``cov_mode=0``.
        cov_mode: MMseqs2's ``--cov-mode``.
        sensitivity: Prefilter sensitivity (``-s``; 7.5 is MMseqs2's "sensitive").
        threads: MMseqs2 threads.
        nucleotide: Nucleotide search (``--search-type 3``); sequences must use ``ACGTN``.
        exhaustive: Skip the k-mer prefilter (``--exhaustive-search``): all pairs are aligned.
        workdir: Folder for the temporary files (default: the system's).
        names: What the queries and the targets are, for error messages.

    Raises:
        MMseqsError: MMseqs2 is missing or failed.
        InputError: Repeated or malformed ids, or no record.
    """
    import tempfile

    min_seq_id = check_fraction("min_seq_id", min_seq_id)
    coverage = check_fraction("coverage", coverage)
    binary = find_mmseqs()
    with tempfile.TemporaryDirectory(prefix="biocoreset-mmseqs-", dir=workdir) as tmp:
        q, t, hits = Path(tmp) / "q.fasta", Path(tmp) / "t.fasta", Path(tmp) / "hits.m8"
        write_fasta(queries, q, what=names[0])
        write_fasta(targets, t, what=names[1])
        args: list[str | os.PathLike[str]] = [
            "easy-search",
            q,
            t,
            hits,
            Path(tmp) / "work",
            *threshold_args(min_seq_id, coverage, cov_mode),
            "-s",
            repr(float(sensitivity)),
            "-e",
            "inf",
            "--alignment-mode",
            "3",
            "--seq-id-mode",
            "0",
            "--threads",
            str(threads),
            "--format-output",
            "query,target,fident,qcov,tcov",
            "-v",
            "1",
        ]
        if nucleotide:
            args += ["--search-type", "3"]
        if exhaustive:
            args += ["--exhaustive-search", "1"]
        run_mmseqs(args, binary=binary)
        out = []
        for line in hits.read_text(encoding="utf-8").splitlines():
            qid, tid, fident, qcov, tcov = line.split("\t")
            out.append((qid, tid, float(fident), float(qcov), float(tcov)))
    return out

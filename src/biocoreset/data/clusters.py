"""Sequence clusters from MMseqs2, for the ``cluster`` selector (the field's baseline).

:func:`cluster_to_file` runs ``mmseqs easy-cluster`` on a corpus and writes MMseqs2's cluster TSV
(one ``representative<TAB>member`` line per sequence); :func:`read_clusters` reads such a file back.
The defaults are the UniRef90 settings: 90% identity, 80% coverage of both sequences
(``--cov-mode 0``).

Example (needs ``mmseqs`` on ``PATH``)::

    info = cluster_to_file("corpus.fasta", "clusters.tsv", min_seq_id=0.9, coverage=0.8)
    info["clusters"], info["largest"], info["singletons"]
"""

from __future__ import annotations

import os
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from biocoreset.data.mmseqs import (
    check_fraction,
    find_mmseqs,
    mmseqs_version,
    run_mmseqs,
    threshold_args,
    write_fasta,
)
from biocoreset.errors import ConfigError, InputError, OutputExistsError

__all__ = ["cluster_to_file", "read_clusters"]

COV_MODES = (0, 1, 2, 3, 4, 5)


def cluster_to_file(
    sequences: Any,
    out: str | os.PathLike[str],
    *,
    min_seq_id: float = 0.9,
    coverage: float = 0.8,
    cov_mode: int = 0,
    threads: int = 1,
    force: bool = False,
) -> dict[str, Any]:
    """Cluster ``sequences`` with ``mmseqs easy-cluster`` and write the cluster TSV to ``out``.

    Args:
        sequences: The corpus: a sequence file (FASTA, FASTQ, CSV, TSV, plain or gzip), a list of
            them, or ``(id, sequence)`` pairs. Ids must be unique and hold no whitespace.
        out: The cluster TSV (``representative<TAB>member`` per sequence), written atomically.
        min_seq_id: Minimum sequence identity of a member to its representative
            (``--min-seq-id``).
        coverage: Minimum fraction of aligned residues (``-c``).
        cov_mode: MMseqs2's ``--cov-mode`` (0: of both sequences, the UniRef default).
        threads: MMseqs2 threads (1 gives a run that does not depend on the machine).
        force: Overwrite an existing ``out``.

    Returns:
        A JSON-serialisable summary: ``clusters``, ``sequences``, ``largest`` (members of the
        largest cluster), ``singletons``, ``settings``, ``mmseqs_version``, ``seconds``.

    Raises:
        MMseqsError: MMseqs2 is missing (the message says how to install it) or failed.
        InputError: A repeated or malformed id, or an empty corpus.
        ConfigError: A threshold outside [0, 1], an unknown ``cov_mode`` or ``threads`` < 1.
        OutputExistsError: ``out`` exists and ``force`` is false.
    """
    from biocoreset.data.sources import as_source

    min_seq_id = check_fraction("min_seq_id", min_seq_id)
    coverage = check_fraction("coverage", coverage)
    if cov_mode not in COV_MODES:
        raise ConfigError(
            f"cov_mode must be one of {COV_MODES} (MMseqs2's --cov-mode), got {cov_mode!r}."
        )
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"threads must be a positive integer, got {threads!r}.")
    out = Path(out)
    if out.exists() and not force:
        raise OutputExistsError(f"{str(out)!r} exists; pass force=True (--force) to overwrite it.")
    binary = find_mmseqs()
    settings = {
        "min_seq_id": min_seq_id,
        "coverage": coverage,
        "cov_mode": cov_mode,
        "threads": threads,
    }
    start = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="biocoreset-mmseqs-", dir=out.parent) as tmp:
        fasta = Path(tmp) / "corpus.fasta"
        n = write_fasta(as_source(sequences), fasta, what="the corpus to cluster")
        run_mmseqs(
            [
                "easy-cluster",
                fasta,
                Path(tmp) / "clu",
                Path(tmp) / "work",
                *threshold_args(min_seq_id, coverage, cov_mode),
                "--threads",
                str(threads),
                "-v",
                "1",
            ],
            binary=binary,
        )
        produced = Path(tmp) / "clu_cluster.tsv"
        members = read_clusters(produced)
        if len(members) != n:
            raise InputError(
                f"MMseqs2 clustered {len(members)} of the {n} sequences; check that every sequence "
                "is in the alphabet MMseqs2 detected (protein or nucleotide, not mixed)."
            )
        os.replace(produced, out)
    sizes = Counter(members.values())
    return {
        "clusters": len(sizes),
        "sequences": n,
        "largest": max(sizes.values()),
        "singletons": sum(1 for s in sizes.values() if s == 1),
        "settings": settings,
        "mmseqs_version": mmseqs_version(binary),
        "seconds": round(time.perf_counter() - start, 3),
    }


def read_clusters(path: str | os.PathLike[str]) -> dict[str, str]:
    """Member id → representative id, from an MMseqs2 cluster TSV (``rep<TAB>member`` lines).

    Raises:
        InputError: The file is missing or empty, a line does not have two tab-separated fields,
            or a member is listed twice (the line is named).

    >>> p = Path(tempfile.mkdtemp()) / "c.tsv"
    >>> _ = p.write_text("a\\ta\\na\\tb\\nc\\tc\\n")
    >>> read_clusters(p)
    {'a': 'a', 'b': 'a', 'c': 'c'}
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(
            f"cluster file {str(p)!r} does not exist; write one with `biocoreset cluster` or "
            "`mmseqs easy-cluster` (its *_cluster.tsv)."
        )
    members: dict[str, str] = {}
    with open(p, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            line = line.rstrip("\r\n")
            if not line:
                continue
            fields = line.split("\t")
            if len(fields) != 2 or not fields[0] or not fields[1]:
                raise InputError(
                    f"{str(p)!r} line {number}: expected 'representative<TAB>member' (MMseqs2's "
                    f"cluster TSV), got {line[:60]!r}."
                )
            rep, member = fields
            if member in members:
                raise InputError(
                    f"{str(p)!r} line {number}: member {member!r} is listed twice (in the clusters "
                    f"of {members[member]!r} and {rep!r}); each sequence belongs to one cluster."
                )
            members[member] = rep
    if not members:
        raise InputError(f"cluster file {str(p)!r} is empty.")
    return members

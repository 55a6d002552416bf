"""Remove benchmark test sequences from a pretraining corpus (leakage filter).

A corpus record is removed when its normalised sequence equals a test sequence (upper case, gaps and
whitespace dropped, and for RNA ``T`` → ``U``), or, with ``identity_threshold=t``, when its identity
to some test sequence is at least ``t``. Two identity methods:

* ``"kmer"`` (default, linear time): the Mash estimate from the Jaccard index ``J`` of the two
  sequences' ``k``-mer sets, ``identity = 1 + ln(2J / (1 + J)) / k`` (Ondov et al. 2016). Unrelated
  sequences score low, a 90%-identical pair of 100-nt RNAs (random substitutions) scores about 0.9.
* ``"difflib"`` (exact, quadratic): matched residues of :class:`difflib.SequenceMatcher` matching
  blocks over the longer length, so a short fragment does not remove a long sequence that merely
  contains it. Only the ``max_candidates`` test sequences with the highest ``k``-mer Jaccard are
  compared, and pairs whose length ratio is below ``t`` are skipped. Use it for small corpora.
* ``"mmseqs"`` (alignment identity, the field's definition of leakage): ``mmseqs easy-search`` of the
  corpus against the test set (:func:`biocoreset.data.mmseqs.search_hits`); a record is removed
  when some alignment has identity (identical residues over the alignment length) at least ``t``
  and covers at least ``coverage`` of both sequences (``cov_mode=0``). Needs the MMseqs2 binary.
  The k-mer estimate misses pairs below about 70% identity; see ``docs/pretrain-bench.md``.

Example:
    >>> report = dedup_corpus([("a", "ACGU"), ("b", "GGGG"), ("c", "acgt")], ["ACGT"])
    >>> report.removed, report.kept, report.removed_ids
    (2, 1, ('a', 'c'))
"""

from __future__ import annotations

import difflib
import math
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs

from biocoreset.data.readers import ByteCounter
from biocoreset.data.sources import as_source
from biocoreset.errors import ConfigError, InputError
from biocoreset.runtime.progress import progress_bar
from biocoreset.store.atomic import atomic_path

__all__ = [
    "IDENTITY_METHODS",
    "MOLECULES",
    "DedupReport",
    "dedup_corpus",
    "identity",
    "kmer_identity",
    "normalise_for_dedup",
    "read_test_file",
]

MOLECULES = ("rna", "protein")
"""Values of ``molecule``."""

IDENTITY_METHODS = ("kmer", "difflib", "mmseqs")
"""Values of ``method``."""


def normalise_for_dedup(sequence: str, molecule: str = "rna") -> str:
    """Upper case, no gaps (``-``, ``.``) or whitespace; RNA: ``T`` → ``U``.

    >>> normalise_for_dedup("ac-gt u"), normalise_for_dedup("mkt", "protein")
    ('ACGUU', 'MKT')
    """
    s = "".join(sequence.split()).upper().replace("-", "").replace(".", "")
    if molecule == "rna":
        return s.replace("T", "U")
    if molecule == "protein":
        return s
    raise ConfigError(f"molecule must be one of {', '.join(MOLECULES)}, got {molecule!r}.")


def identity(a: str, b: str) -> float:
    """Matched residues (difflib matching blocks) over the longer length.

    >>> identity("ACGUACGU", "ACGUACGA")
    0.875
    """
    if not a or not b:
        return 0.0
    matches = sum(
        block.size
        for block in difflib.SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks()
    )
    return matches / max(len(a), len(b))


@attrs.frozen(kw_only=True)
class DedupReport:
    """What :func:`dedup_corpus` did.

    Attributes:
        total: Corpus records read.
        removed: Records removed.
        kept: Records kept.
        exact: Records removed by exact match.
        near: Records removed by the identity threshold.
        test_sequences: Distinct normalised test sequences.
        removed_ids: Ids of the removed records, in corpus order.
        identity_threshold: The threshold used (``None``: exact only).
        method: The identity method.
        coverage: ``mmseqs`` only: the coverage threshold used (else ``None``).
    """

    total: int
    removed: int
    kept: int
    exact: int
    near: int
    test_sequences: int
    removed_ids: tuple[str, ...]
    identity_threshold: float | None
    method: str = "kmer"
    coverage: float | None = None

    def summary(self) -> str:
        """One line for logs and reports."""
        rule = (
            "exact match"
            if self.identity_threshold is None
            else f"exact or >= {self.identity_threshold:.0%} {self.method} identity"
        )
        if self.coverage is not None:
            rule += f" at >= {self.coverage:.0%} coverage"
        return (
            f"removed {self.removed} of {self.total} corpus sequences ({self.exact} exact, {self.near} near) "
            f"matching {self.test_sequences} test sequences by {rule}; kept {self.kept}."
        )


def kmer_identity(jaccard: float, k: int) -> float:
    """Mash identity estimate ``1 + ln(2J / (1 + J)) / k`` from a ``k``-mer Jaccard index (0 when J = 0).

    >>> kmer_identity(1.0, 8), round(kmer_identity(0.27, 8), 3)
    (1.0, 0.893)
    """
    if jaccard <= 0:
        return 0.0
    return max(0.0, 1.0 + math.log(2 * jaccard / (1 + jaccard)) / k)


class _KmerIndex:
    def __init__(self, sequences: Sequence[str], k: int) -> None:
        self.k, self.sequences = k, sequences
        self.postings: dict[str, list[int]] = {}
        self.sizes: list[int] = []
        for i, s in enumerate(sequences):
            kmers = self.kmers(s)
            self.sizes.append(len(kmers))
            for kmer in kmers:
                self.postings.setdefault(kmer, []).append(i)

    def kmers(self, s: str) -> set[str]:
        if len(s) < self.k:
            return {s}
        return {s[j : j + self.k] for j in range(len(s) - self.k + 1)}

    def best_identity(self, s: str, threshold: float, method: str, max_candidates: int) -> float:
        mine = self.kmers(s)
        shared: Counter[int] = Counter()
        for kmer in mine:
            for i in self.postings.get(kmer, ()):
                shared[i] += 1
        if not shared:
            return 0.0
        if method == "kmer":
            return kmer_identity(
                max(c / (len(mine) + self.sizes[i] - c) for i, c in shared.items()), self.k
            )
        jac = sorted(
            ((c / (len(mine) + self.sizes[i] - c), i) for i, c in shared.items()), reverse=True
        )
        best, tried = 0.0, 0
        for _, i in jac:
            t = self.sequences[i]
            if min(len(s), len(t)) / max(len(s), len(t)) < threshold:
                continue
            best = max(best, identity(s, t))
            tried += 1
            if best >= threshold or tried >= max_candidates:
                break
        return best


def read_test_file(path: str | os.PathLike[str]) -> Iterator[str]:
    """The sequences of a test file: a task split (FASTA/CSV/TSV/JSONL with a sequence column), or
    an OAS data unit (detected from its metadata line; its ``sequence_alignment_aa`` column)."""
    from biocoreset.bench.loaders.generic import read_sequences
    from biocoreset.data.tables import iter_table, parse_oas_metadata
    from biocoreset.data.textio import first_line

    table = Path(os.fspath(path)).name.removesuffix(".gz")
    # an OAS unit is a CSV (.csv.gz) whose first line is a JSON object; a JSONL split starts so too
    if Path(table).suffix.lower() in {".csv", ""} and parse_oas_metadata(first_line(path)):
        records = iter_table(path, oas=True)
    else:
        records = read_sequences(path)
    for _, seq in records:
        yield seq


def _iter_test(test: Any) -> Iterator[str]:
    """Sequences of ``test``: a file path (:func:`read_test_file`), or an iterable of sequences
    (``str``), ``(id, sequence)`` pairs, :class:`~biocoreset.bench.data.Example` records or
    :class:`os.PathLike` files."""
    if isinstance(test, (str, os.PathLike)):
        yield from read_test_file(test)
        return
    for item in test:
        if isinstance(item, os.PathLike):
            yield from _iter_test(item)
        elif isinstance(item, str):
            yield item
        elif isinstance(item, tuple):
            yield str(item[1])
        elif hasattr(item, "sequence"):
            yield str(item.sequence)
            if getattr(item, "sequence_b", None):
                yield str(item.sequence_b)
        else:
            raise InputError(
                f"test item {item!r} is not a sequence, an (id, sequence) pair or an Example."
            )


def dedup_corpus(
    corpus: Any,
    test: Any,
    output: str | os.PathLike[str] | None = None,
    *,
    identity_threshold: float | None = None,
    method: str = "kmer",
    molecule: str = "rna",
    k: int | None = None,
    max_candidates: int = 5,
    coverage: float = 0.8,
    cov_mode: int = 0,
    sensitivity: float = 7.5,
    threads: int = 1,
    force: bool = False,
    progress: bool | str | None = None,
) -> DedupReport:
    """Drop every corpus record that occurs in a benchmark test split.

    Args:
        corpus: A sequence file path (any format :func:`~biocoreset.data.readers.read_records`
            reads), a :class:`~biocoreset.data.sources.SequenceSource`, or an iterable of
            ``(id, sequence)`` pairs.
        test: Test sequences: a file path (FASTA/CSV/TSV/JSONL with a ``sequence`` column), or an
            iterable of sequences (``str``), ``(id, sequence)`` pairs,
            :class:`~biocoreset.bench.data.Example` records or :class:`pathlib.Path` files.
        output: FASTA to write the kept records to (``None``: only report).
        identity_threshold: Also remove records at least this identical (in ``(0, 1]``) to a test
            sequence (``None``: exact matches only).
        method: Identity method, ``"kmer"`` (Mash estimate, fast), ``"difflib"`` or ``"mmseqs"``
            (MMseqs2 alignment identity; needs ``identity_threshold``) (see above).
        molecule: ``"rna"`` (T → U) or ``"protein"``.
        k: ``k``-mer length (default 8 for RNA, 4 for protein).
        max_candidates: ``difflib`` only: test sequences compared per corpus sequence.
        coverage: ``mmseqs`` only: minimum aligned fraction (``-c``).
        cov_mode: ``mmseqs`` only: MMseqs2's ``--cov-mode`` (0: of both sequences).
        sensitivity: ``mmseqs`` only: prefilter sensitivity (``-s``, 7.5: "sensitive").
        threads: ``mmseqs`` only: MMseqs2 threads.
        force: Overwrite ``output``.
        progress: Progress over the corpus (see :mod:`biocoreset.runtime.progress`).

    Returns:
        A :class:`DedupReport`.
    """
    if identity_threshold is not None and not 0.0 < float(identity_threshold) <= 1.0:
        raise ConfigError(f"identity_threshold must be in (0, 1], got {identity_threshold!r}.")
    if method not in IDENTITY_METHODS:
        raise ConfigError(f"method must be one of {', '.join(IDENTITY_METHODS)}, got {method!r}.")
    if method == "mmseqs" and identity_threshold is None:
        raise ConfigError(
            "method='mmseqs' needs an identity threshold (identity_threshold=, --identity), e.g. "
            "0.5; exact matches alone need no method."
        )
    if max_candidates < 1:
        raise ConfigError(f"max_candidates must be >= 1, got {max_candidates!r}.")
    k = k or (8 if molecule == "rna" else 4)
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k!r}.")
    tests = {normalise_for_dedup(s, molecule) for s in _iter_test(test)} - {""}
    if not tests:
        raise InputError("the test split holds no sequence; nothing to filter against.")
    thr = 1.0 if identity_threshold is None else float(identity_threshold)
    use_index = identity_threshold is not None and method != "mmseqs"
    index = _KmerIndex(sorted(tests), k) if use_index else None
    removed: list[str] = []
    exact = near = total = 0

    source = as_source(corpus)
    hits: set[str] | None = None
    if method == "mmseqs":
        hits = _mmseqs_near(source, tests, thr, molecule, coverage, cov_mode, sensitivity, threads)
    counter = ByteCounter()
    size = source.size_bytes
    bar = progress_bar(
        enabled=progress,
        total=size if size is not None else source.num_records,
        desc="dedup",
        unit="B" if size is not None else "seq",
        unit_scale=size is not None,
        unit_divisor=1024,
    )

    def kept_records() -> Iterator[tuple[str, str, str]]:
        nonlocal exact, near, total
        for rid, seq, header in source.iter_with_headers(counter):
            bar.update(counter.bytes_read - bar.n if size is not None else 1)
            total += 1
            s = normalise_for_dedup(seq, molecule)
            if s in tests:
                exact += 1
                removed.append(rid)
                continue
            if (hits is not None and rid in hits) or (
                index is not None and index.best_identity(s, thr, method, max_candidates) >= thr
            ):
                near += 1
                removed.append(rid)
                continue
            yield rid, seq, header

    try:
        if output is None:
            for _ in kept_records():
                pass
        else:
            with atomic_path(output, force=force) as tmp, open(tmp, "w", encoding="utf-8") as fh:
                for _rid, seq, header in kept_records():
                    fh.write(f">{header}\n")
                    for j in range(0, len(seq), 80):
                        fh.write(seq[j : j + 80] + "\n")
    finally:
        bar.close()
    return DedupReport(
        total=total,
        removed=len(removed),
        kept=total - len(removed),
        exact=exact,
        near=near,
        test_sequences=len(tests),
        removed_ids=tuple(removed),
        identity_threshold=None if identity_threshold is None else float(identity_threshold),
        method=method,
        coverage=float(coverage) if method == "mmseqs" else None,
    )


def _mmseqs_near(
    source: Any,
    tests: set[str],
    threshold: float,
    molecule: str,
    coverage: float,
    cov_mode: int,
    sensitivity: float,
    threads: int,
) -> set[str]:
    """Ids of the corpus records with an MMseqs2 hit in ``tests`` at ``threshold`` identity and
    ``coverage`` (exact matches are left to the exact filter)."""
    from biocoreset.data.mmseqs import search_hits

    def letters(s: str) -> str:
        return s.replace("U", "T") if molecule == "rna" else s  # MMseqs2's nucleotides: ACGTN

    queries = (
        (rid, letters(s))
        for rid, seq in source
        if (s := normalise_for_dedup(seq, molecule)) and s not in tests
    )
    targets = ((f"test{i}", letters(s)) for i, s in enumerate(sorted(tests)))
    try:
        found = search_hits(
            queries,
            targets,
            min_seq_id=threshold,
            coverage=coverage,
            cov_mode=cov_mode,
            sensitivity=sensitivity,
            threads=threads,
            nucleotide=molecule == "rna",
            names=("the corpus", "the test set"),
        )
    except InputError as exc:
        if "holds no record" in str(exc) and str(exc).startswith("the corpus"):
            return set()  # every corpus record is an exact match: nothing left to search
        raise
    return {q for q, *_ in found}

"""The ANARCI germline corpus as FASTA, labels in the headers.

:func:`corpus_records` turns the IMGT germline table that ``anarci`` ships
(:func:`~biocoreset.bench.antibody.germlines.germlines`) into FASTA records, one per distinct V (or
J) sequence, gaps removed, in a stable order (chain ``H``, ``K``, ``L``; species; allele). A header
is the record id and ``key=value`` labels separated by spaces::

    >human|IGHV3-23*01 species=human chain=H segment=V gene=IGHV3-23 allele=IGHV3-23*01 family=IGHV3 duplicates=human|IGHV3-23*04

* The id is ``species|allele``: unique, and free of spaces.
* **Duplicates.** Several alleles (sometimes of different species) have the same amino-acid
  sequence. By default the first record in the stable order keeps the sequence and the others are
  listed in its ``duplicates=`` label (their ids, comma-separated; ``duplicates=-`` when none), so a
  corpus never holds one sequence twice (a coreset would otherwise pick copies). With
  ``keep_duplicates=True`` every allele is its own record and ``duplicates=`` lists the same ids
  on each of them.
* Labels are read back with :func:`header_labels`, and by ``biocoreset diagnose --label-regex``,
  e.g. ``'chain=(\\S+)'`` or ``'family=(\\S+)'``.

Build it from the shell (about 1,450 antibody V sequences from 1,664 alleles; 150 kB)::

    python -m biocoreset.bench.antibody.corpus -o germlines.fasta
    python -m biocoreset.bench.antibody.corpus -o human_heavy.fasta --species human --chains H

The file is written atomically; an existing one is replaced only with ``--force``.

>>> header_labels("human|IGHV3-23*01 species=human chain=H family=IGHV3")["chain"]
'H'
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Sequence

from biocoreset.bench.antibody.germlines import ANTIBODY_CHAINS, Germline, germlines
from biocoreset.errors import BioCoresetError, ConfigError, InputError
from biocoreset.store.atomic import atomic_path

__all__ = ["corpus_records", "header_labels", "main", "record_id", "write_corpus"]


def record_id(g: Germline) -> str:
    """``species|allele``, e.g. ``human|IGHV3-23*01``."""
    return f"{g.species}|{g.allele}"


def _header(g: Germline, duplicates: Sequence[str]) -> str:
    labels = {
        "species": g.species,
        "chain": g.chain,
        "segment": g.segment,
        "gene": g.gene,
        "allele": g.allele,
        "family": g.family,
        "duplicates": ",".join(duplicates) or "-",
    }
    return " ".join([record_id(g), *(f"{k}={v}" for k, v in labels.items())])


def corpus_records(
    segment: str = "V",
    *,
    chains: Iterable[str] = ANTIBODY_CHAINS,
    species: Iterable[str] | None = None,
    keep_duplicates: bool = False,
) -> list[tuple[str, str]]:
    """``(header, sequence)`` pairs of the germline corpus (see the module docstring).

    Args:
        segment: ``"V"`` or ``"J"``.
        chains: Chains to keep (default heavy, kappa, lambda).
        species: Species to keep (default all).
        keep_duplicates: Keep every allele, also when its sequence repeats an earlier one.

    Raises:
        ConfigError: Unknown segment, chain or species; ``anarci`` not installed.
    """
    records = germlines(segment, chains=chains, species=species)
    by_sequence: dict[str, list[Germline]] = {}
    for g in records:
        by_sequence.setdefault(g.sequence, []).append(g)
    out = []
    for g in records:
        group = by_sequence[g.sequence]
        if keep_duplicates:
            others = [record_id(o) for o in group if o is not g]
        elif group[0] is g:
            others = [record_id(o) for o in group[1:]]
        else:
            continue
        out.append((_header(g, others), g.sequence))
    return out


def write_corpus(
    path: str | os.PathLike[str], records: Iterable[tuple[str, str]], *, force: bool = True
) -> int:
    """Write ``(header, sequence)`` records as FASTA (one sequence line each) atomically (the file
    appears whole or not at all); return the count.

    Raises:
        InputError: No records (an empty corpus is never written).
        OutputExistsError: ``path`` exists and ``force`` is false, or it is a folder.
    """
    n = 0
    with atomic_path(path, force=force) as tmp, tmp.open("w", encoding="utf-8") as fh:
        for header, seq in records:
            fh.write(f">{header}\n{seq}\n")
            n += 1
        if n == 0:
            raise InputError(f"no records to write into {os.fspath(path)!r}; nothing was written.")
    return n


def header_labels(header: str) -> dict[str, str]:
    """The ``key=value`` labels of a header line (with or without ``>``), plus ``id``."""
    parts = header.lstrip(">").split()
    labels = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
    labels["id"] = parts[0] if parts else ""
    return labels


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m biocoreset.bench.antibody.corpus -o FILE [...]``; prints one line."""
    ap = argparse.ArgumentParser(
        prog="python -m biocoreset.bench.antibody.corpus",
        description="Write the ANARCI (IMGT) germline corpus as FASTA with labels in the headers.",
    )
    ap.add_argument("-o", "--output", required=True, help="FASTA file to write")
    ap.add_argument("--segment", default="V", choices=("V", "J"))
    ap.add_argument("--chains", default=",".join(ANTIBODY_CHAINS), help="e.g. H,K,L")
    ap.add_argument("--species", default=None, help="e.g. human,mouse (default: all)")
    ap.add_argument(
        "--keep-duplicates",
        action="store_true",
        help="one record per allele even when sequences repeat (default: first of each)",
    )
    ap.add_argument("--force", action="store_true", help="overwrite an existing output file")
    args = ap.parse_args(argv)
    try:
        chains = [c.strip() for c in args.chains.split(",") if c.strip()]
        if not chains:
            raise ConfigError(
                f"--chains {args.chains!r} names no chain; give one or more of "
                f"{','.join(ANTIBODY_CHAINS)} (e.g. --chains H,K)."
            )
        species = None if args.species is None else [s for s in args.species.split(",") if s]
        if species is not None and not species:
            raise ConfigError(f"--species {args.species!r} names no species; e.g. human,mouse.")
        records = corpus_records(
            args.segment, chains=chains, species=species, keep_duplicates=args.keep_duplicates
        )
        n = write_corpus(args.output, records, force=args.force)
    except (BioCoresetError, OSError) as exc:
        message = " ".join(str(exc).replace("force=True (--force)", "--force").split())
        print(f"error: {message}", file=sys.stderr)
        return 2
    print(f"{n} sequences -> {args.output}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

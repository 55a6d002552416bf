"""IMGT germline V and J genes, as shipped by the ``anarci`` package, with labels.

``anarci`` keeps its germline tables in ``anarci.germlines.all_germlines``: a nested dict
``segment -> chain -> species -> allele name -> gapped amino-acid sequence`` (IMGT numbering, ``-``
for gaps). This module reads them into labelled :class:`Germline` records with the gaps removed.

>>> from biocoreset.bench.antibody.germlines import family_of, gene_of
>>> gene_of("IGHV1-18*01"), family_of("IGHV1-18*01")
('IGHV1-18', 'IGHV1')
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

import attrs

from biocoreset.errors import ConfigError

__all__ = [
    "ANTIBODY_CHAINS",
    "Germline",
    "family_of",
    "gene_of",
    "germlines",
    "load_germline_table",
]

#: Immunoglobulin chains (heavy, kappa, lambda); anarci also has the TCR chains A, B, G and D.
ANTIBODY_CHAINS = ("H", "K", "L")
_FAMILY = re.compile(r"^([A-Z]+[VJ]\d+)")


@attrs.frozen(kw_only=True)
class Germline:
    """One germline allele.

    Attributes:
        species: ``human``, ``mouse``, ``rat``, ``rabbit``, ``rhesus``, ``pig``, ``alpaca`` or ``cow``.
        chain: ``H``, ``K``, ``L`` (antibody) or ``A``, ``B``, ``G``, ``D`` (T-cell receptor).
        segment: ``V`` or ``J``.
        allele: The IMGT allele name, e.g. ``IGHV1-18*01``.
        sequence: Amino acids, gaps removed.
    """

    species: str
    chain: str
    segment: str
    allele: str
    sequence: str

    @property
    def gene(self) -> str:
        """The gene name (the allele name without ``*NN``)."""
        return gene_of(self.allele)

    @property
    def family(self) -> str:
        """The gene family (``IGHV1-18*01`` → ``IGHV1``)."""
        return family_of(self.allele)


def gene_of(allele: str) -> str:
    """``IGHV1-18*01`` → ``IGHV1-18``."""
    return allele.split("*", 1)[0]


def family_of(allele: str) -> str:
    """``IGHV1-18*01`` → ``IGHV1``; a name with no family number is its own family."""
    match = _FAMILY.match(allele)
    return match.group(1) if match else gene_of(allele)


def load_germline_table() -> dict:
    """The raw ``anarci`` table, or a one-line error naming the extra that installs it."""
    try:
        from anarci.germlines import all_germlines
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ConfigError(
            "the antibody germlines need the 'anarci' package: pip install 'biocoreset[antibody]'"
        ) from exc
    return all_germlines


def germlines(
    segment: str = "V",
    *,
    chains: Iterable[str] = ANTIBODY_CHAINS,
    species: Iterable[str] | None = None,
) -> list[Germline]:
    """Germline alleles of one segment, gaps removed, in a stable order (chain, species, allele).

    Args:
        segment: ``"V"`` or ``"J"``.
        chains: Chain letters to keep (default heavy, kappa, lambda).
        species: Species to keep (default all that the table has).

    Raises:
        ConfigError: An unknown segment, chain or species (the message lists the valid ones).
    """
    table = load_germline_table()
    if segment not in table:
        raise ConfigError(f"segment {segment!r} is not one of {sorted(table)}")
    by_chain = table[segment]
    chains = tuple(chains)
    unknown = [c for c in chains if c not in by_chain]
    if unknown:
        raise ConfigError(
            f"chain(s) {unknown} not in the germline table; choose from {sorted(by_chain)}"
        )
    wanted = None if species is None else set(species)
    if wanted is not None:
        known = {sp for c in chains for sp in by_chain[c]}
        missing = sorted(wanted - known)
        if missing:
            raise ConfigError(
                f"species {missing} not in the germline table; choose from {sorted(known)}"
            )
    return list(_records(by_chain, segment, chains, wanted))


def _records(
    by_chain: dict, segment: str, chains: tuple[str, ...], wanted: set[str] | None
) -> Iterator[Germline]:
    for chain in chains:
        for sp in sorted(by_chain[chain]):
            if wanted is not None and sp not in wanted:
                continue
            for allele in sorted(by_chain[chain][sp]):
                seq = by_chain[chain][sp][allele].replace("-", "")
                if seq:
                    yield Germline(
                        species=sp, chain=chain, segment=segment, allele=allele, sequence=seq
                    )

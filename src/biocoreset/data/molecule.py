"""Does the corpus hold the molecule the model reads? A warning, never an error.

A protein model accepts ``A``, ``C``, ``G`` and ``T`` (alanine, cysteine, glycine, threonine), so a
DNA corpus given to it passes every letter check and is scored as protein without a word. The
model's kind comes from the alphabet its adapter declares (``alphabet``, or ``residue_alphabet``
when the adapter does its own letter policy): a **protein** alphabet has amino acids that are no
nucleotide code (three or more of ``E F I L P Q``), a **nucleotide** alphabet has ``A C G`` and
``T`` or ``U`` and none of them. :class:`MoleculeTally` counts the records read by the index pass;
:meth:`MoleculeTally.message` is a warning when

* a protein model gets a corpus whose every record is nucleotide letters only (``ACGTUN-``);
* a nucleotide model gets a corpus where most records hold a protein-only letter.

Example:
    >>> tally = MoleculeTally("ACDEFGHIKLMNPQRSTVWY")
    >>> for seq in ("ACGTTGCA", "GGCATTAC"):
    ...     tally(seq)
    >>> print(tally.message("'dna.fa'"))
    the model reads protein (its alphabet: ACDEFGHIKLMNPQRSTVWY) but every one of the 2 records of 'dna.fa' holds only nucleotide letters (ACGTUN): they are scored as protein. Check --model (or pass a nucleotide corpus).
    >>> MoleculeTally("ACGUN").kind, MoleculeTally(None).kind
    ('nucleotide', None)
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["MoleculeTally", "model_kind"]

_NUCLEOTIDE = frozenset("ACGTUNacgtun-")
_PROTEIN_ONLY = frozenset("EFILPQefilpq")  # amino acids that are no IUPAC nucleotide code


def model_kind(alphabet: Iterable[str] | None) -> str | None:
    """``"protein"``, ``"nucleotide"`` or ``None`` (unknown) for a model's alphabet.

    >>> model_kind("ACGU"), model_kind("LAGVSERTIDPKQNFYMHWCXBUZO"), model_kind("AB")
    ('nucleotide', 'protein', None)
    """
    if alphabet is None:
        return None
    letters = {a.upper() for a in alphabet}
    protein_only = letters & set("EFILPQ")
    if len(protein_only) >= 3:
        return "protein"
    if not protein_only and {"A", "C", "G"} <= letters and letters & {"T", "U"}:
        return "nucleotide"
    return None


class MoleculeTally:
    """Counts nucleotide-only and protein-looking records for a model's alphabet (see the module
    docstring); a no-op when the alphabet's kind is unknown."""

    def __init__(self, alphabet: Iterable[str] | None) -> None:
        self.alphabet = "" if alphabet is None else "".join(sorted(set(alphabet)))
        self.kind = model_kind(alphabet)
        self.records = self.nucleotide = self.protein = 0

    def __call__(self, sequence: str) -> None:
        """Count one record as read."""
        if self.kind is None or not sequence:
            return
        self.records += 1
        if _NUCLEOTIDE.issuperset(sequence):
            self.nucleotide += 1
        elif not _PROTEIN_ONLY.isdisjoint(sequence):
            self.protein += 1

    def message(self, where: str) -> str | None:
        """The warning for the records counted so far, or ``None``."""
        n = self.records
        if self.kind == "protein" and n and self.nucleotide == n:
            return (
                f"the model reads protein (its alphabet: {self.alphabet}) but every one of the {n} "
                f"records of {where} holds only nucleotide letters (ACGTUN): they are scored as "
                "protein. Check --model (or pass a nucleotide corpus)."
            )
        if self.kind == "nucleotide" and n and 2 * self.protein > n:
            return (
                f"the model reads nucleotides (its alphabet: {self.alphabet}) but {self.protein} of "
                f"the {n} records of {where} hold amino-acid letters (E, F, I, L, P or Q): the "
                "corpus looks like protein. Check --model (or pass a nucleotide corpus)."
            )
        return None

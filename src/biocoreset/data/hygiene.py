"""Sequence hygiene shared by the model adapters: normalisation, alphabet policy, long sequences.

Every built-in model adapter (``rna-fm``, ``esmc``) cleans a record the same way before it
tokenises it:

1. **Empty** sequences are rejected, naming the record id (whatever the policy).
2. **Normalisation**: letters are upper-cased; for RNA models ``T`` becomes ``U`` (DNA-alphabet
   input such as ``ACGT`` is accepted). Positions do not move, so error positions refer to the
   input as given.
3. **Alphabet check** against the model's residue letters, with the policy ``invalid``:

   * ``"error"`` (default): :class:`~biocoreset.errors.InputError` naming the record id, the
     1-based position and the letter (and how many invalid letters there are in all);
   * ``"unk"``: keep the letter; the tokenizer maps it to the model's ``<unk>`` token;
   * ``"replace"`` (also spelt ``"N"`` or ``"X"``): replace it by the replacement letter
     (``N`` for nucleotides, ``X`` for amino acids by default);
   * ``"skip"``: drop the whole record.

   What was done is counted in a :class:`collections.Counter` (``adapter.stats``):
   ``lowercase_records``, ``t_to_u_records``, ``unknown_records`` / ``unknown_letters``,
   ``replaced_records`` / ``replaced_letters``, ``skipped_records``.
4. **Long sequences** (more residues than the model's ``max_length``) follow the
   :data:`LONG_POLICIES`: ``"truncate"`` keeps the first ``max_length`` residues (counted as
   ``truncated``); ``"error"`` raises, naming the record; ``"windows"`` keeps the whole sequence
   and runs it as consecutive, non-overlapping windows of ``max_length`` residues, each with its
   own ``<cls>``/``<eos>`` (counted as ``windowed``; see
   :func:`biocoreset.adapters.hygiene.windowed_logits`).

   **Aggregation of windows.** With ``"windows"`` the record is still *one* sample: masking draws
   15% of all its residues (seeded by the record id as usual), every masked residue is predicted
   by the window that contains it, and the record's loss is the mean cross-entropy over all its
   masked residues — i.e. the window losses averaged with weights proportional to their number
   of masked residues. Its gradient is the same weighted mean of the window gradients, and its
   score is the self-influence ``g_zᵀ C⁻¹ g_z`` of that mean gradient (one score per record).

The adapter side (encoding, collation, the long-sequence policy, windowed logits) is
:class:`biocoreset.adapters.hygiene.HygieneAdapterMixin`.

Counts are per tokenisation: a record tokenised twice (in :func:`biocoreset.score`, a ``D_sub``
record is collated once to fit the curvature and once to be scored) is counted twice. The
pipeline's own validation (:mod:`biocoreset.data.validation`) counts per record.

Example:
    >>> h = SequenceHygiene(alphabet="ACGUN", rna=True, invalid="replace")
    >>> h.clean("r1", "acgtZ"), dict(h.stats)
    ('ACGUN', {'lowercase_records': 1, 't_to_u_records': 1, 'replaced_records': 1, 'replaced_letters': 1})
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from biocoreset.errors import ConfigError, InputError

__all__ = [
    "INVALID_POLICIES",
    "LONG_POLICIES",
    "SequenceHygiene",
    "SkipRecord",
    "invalid_positions",
    "resolve_invalid_policy",
]

INVALID_POLICIES = ("error", "unk", "replace", "skip")
"""What an adapter does with a letter outside its alphabet (``"N"``/``"X"`` mean ``"replace"``)."""

LONG_POLICIES = ("truncate", "windows", "error")
"""What an adapter does with a sequence longer than its ``max_length``."""


class SkipRecord(InputError):
    """A record is dropped by the ``invalid="skip"`` policy (the message names id and position)."""


def resolve_invalid_policy(invalid: str, replacement: str | None = None) -> tuple[str, str | None]:
    """Canonical ``(policy, replacement letter)`` of an ``invalid`` option.

    ``"N"`` and ``"X"`` are shorthands for ``"replace"`` with that letter.

    Raises:
        ConfigError: An unknown policy, or a replacement that is not one letter.

    >>> resolve_invalid_policy("N"), resolve_invalid_policy("unk")
    (('replace', 'N'), ('unk', None))
    """
    if invalid in ("N", "X"):
        if replacement not in (None, invalid):
            raise ConfigError(
                f"invalid={invalid!r} replaces by {invalid!r}; got replacement={replacement!r} too."
            )
        return "replace", invalid
    if invalid not in INVALID_POLICIES:
        raise ConfigError(
            f"invalid must be one of {', '.join(INVALID_POLICIES)} (or 'N' / 'X' for 'replace'), "
            f"got {invalid!r}."
        )
    if replacement is not None and (not isinstance(replacement, str) or len(replacement) != 1):
        raise ConfigError(f"replacement must be a single letter, got {replacement!r}.")
    return invalid, replacement


def invalid_positions(sequence: str, alphabet: Iterable[str]) -> list[tuple[int, str]]:
    """0-based ``(position, letter)`` of every letter of ``sequence`` outside ``alphabet``.

    >>> invalid_positions("ACXGZ", "ACGU")
    [(2, 'X'), (4, 'Z')]
    """
    letters = alphabet if isinstance(alphabet, (set, frozenset)) else frozenset(alphabet)
    return [(i, c) for i, c in enumerate(sequence) if c not in letters]


class SequenceHygiene:
    """Normalises and checks one record at a time (see the module docstring for the rules).

    Args:
        alphabet: Residue letters the model accepts (upper case).
        rna: Convert ``T`` to ``U`` (nucleotide models).
        invalid: Policy for letters outside ``alphabet``: ``"error"``, ``"unk"``, ``"replace"``
            (or ``"N"`` / ``"X"``), ``"skip"``.
        replacement: Letter used by ``"replace"``; default ``N`` (RNA) or ``X`` (otherwise).
        stats: Counter the counts are added to (default: a new one).
        model: Model name used in messages.

    Attributes:
        stats: The counts.

    Raises:
        ConfigError: Bad policy, or a replacement letter outside the alphabet.

    Example:
        >>> h = SequenceHygiene(alphabet="ACGU", rna=True)
        >>> h.clean("r7", "ACGT")
        'ACGU'
        >>> h.clean("r8", "ACZU")
        Traceback (most recent call last):
        ...
        biocoreset.errors.InputError: record 'r8': residue 3 is 'Z', which is not in the model's alphabet (ACGU). Fix the sequence, or pass the adapter option invalid='unk', 'replace' or 'skip'.
    """

    def __init__(
        self,
        alphabet: Iterable[str],
        *,
        rna: bool = False,
        invalid: str = "error",
        replacement: str | None = None,
        stats: Counter[str] | None = None,
        model: str = "the model",
    ) -> None:
        self.alphabet = frozenset(alphabet)
        if not self.alphabet or any(len(a) != 1 for a in self.alphabet):
            raise ConfigError(
                f"an alphabet is a non-empty set of single letters, got {sorted(self.alphabet)!r}."
            )
        self.rna = rna
        self.invalid, replacement = resolve_invalid_policy(invalid, replacement)
        if replacement is None:
            replacement = "N" if rna else "X"
        if self.invalid == "replace" and replacement not in self.alphabet:
            raise ConfigError(
                f"replacement letter {replacement!r} is not in {model}'s alphabet "
                f"({''.join(sorted(self.alphabet))}); choose one of those."
            )
        self.replacement = replacement
        self.stats: Counter[str] = stats if stats is not None else Counter()
        self.model = model

    def normalize(self, sequence: str, *, count: bool = False) -> str:
        """Upper-case, and ``T``→``U`` for RNA. Positions are unchanged.

        >>> SequenceHygiene("ACGU", rna=True).normalize("acgt")
        'ACGU'
        """
        upper = sequence.upper()
        if count and upper != sequence:
            self.stats["lowercase_records"] += 1
        if self.rna and "T" in upper:
            upper = upper.replace("T", "U")
            if count:
                self.stats["t_to_u_records"] += 1
        return upper

    def message(self, record_id: str, bad: list[tuple[int, str]], *, skipped: bool = False) -> str:
        """The error message for a record with invalid letters ``bad`` (0-based positions)."""
        i, c = bad[0]
        more = f" ({len(bad)} invalid letters in all)" if len(bad) > 1 else ""
        head = (
            f"record {record_id!r}: residue {i + 1} is {c!r}, which is not in {self.model}'s "
            f"alphabet ({''.join(sorted(self.alphabet))}){more}."
        )
        if skipped:
            return head + " The record is dropped (adapter option invalid='skip')."
        return (
            head
            + " Fix the sequence, or pass the adapter option invalid='unk', 'replace' or 'skip'."
        )

    def clean(self, record_id: str, sequence: str, *, count: bool = True) -> str | None:
        """Return the cleaned sequence, or ``None`` when the ``"skip"`` policy drops the record.

        With ``"unk"`` the invalid letters are left in place (the tokenizer maps them to
        ``<unk>``).

        Args:
            record_id: The record id (for messages).
            sequence: The raw sequence.
            count: Add to :attr:`stats`.

        Raises:
            InputError: An empty sequence, or an invalid letter under ``"error"``.
        """
        if not sequence:
            raise InputError(f"record {record_id!r}: empty sequence. Remove it from the input.")
        seq = self.normalize(sequence, count=count)
        if self.alphabet.issuperset(seq):
            return seq
        bad = invalid_positions(seq, self.alphabet)
        if self.invalid == "error":
            raise InputError(self.message(record_id, bad))
        if self.invalid == "skip":
            if count:
                self.stats["skipped_records"] += 1
            return None
        if self.invalid == "unk":
            if count:
                self.stats["unknown_records"] += 1
                self.stats["unknown_letters"] += len(bad)
            return seq
        if count:
            self.stats["replaced_records"] += 1
            self.stats["replaced_letters"] += len(bad)
        return "".join(c if c in self.alphabet else self.replacement for c in seq)

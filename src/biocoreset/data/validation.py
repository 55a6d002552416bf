"""Input validation: the adapter's alphabet, empty and over-long sequences, duplicate ids.

Every record goes through a :class:`Validator` before it is tokenised. What the validator checks
comes from the adapter, through two optional members (an adapter without them is not checked for
letters; everything else still applies):

* ``adapter.alphabet`` — the residue letters the model accepts (any iterable of one-character
  strings, e.g. ``"ACGUN"``). When it holds no lower-case letter, input is upper-cased first.
* ``adapter.validate(record_id, sequence) -> str`` — an adapter-specific normalisation run first
  (e.g. T→U for RNA); it may raise :class:`~biocoreset.errors.InputError` to reject a record
  (an error unless the policy is ``"skip"``), or
  :class:`~biocoreset.data.hygiene.SkipRecord` to drop it whatever the policy (the adapter's own
  ``invalid="skip"``).

Letters outside the alphabet follow the policy ``invalid``:

* ``"error"`` (default): stop with an error naming the record, the position and the letter;
* ``"replace"``: replace each invalid letter by ``replacement`` (default: the adapter's
  ``replacement`` attribute, else ``N`` or ``X`` when the alphabet has it);
* ``"skip"``: drop the record.

Empty sequences are an error unless the policy is ``"skip"`` (then they are dropped and counted).
Sequences longer than the adapter's ``max_length`` follow the adapter's ``long_policy``: with
``"error"`` they fail here, before any compute, naming the record; otherwise they are counted (the
adapter truncates them). Duplicate ids are always an error naming both records. All counts are in
:class:`ValidationReport` and end up in the score metadata.

Example:
    >>> v = Validator(alphabet="ACGUN", policy="replace", replacement="N")
    >>> v(1, "r1", "acgzu"), v.report.replaced_letters, dict(v.report.invalid_letters)
    ('ACGNU', 1, {'Z': 1})
"""

from __future__ import annotations

import hashlib
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import attrs
import numpy as np

from biocoreset.data.molecule import MoleculeTally
from biocoreset.errors import ConfigError, InputError, QualityWarning

__all__ = [
    "VALIDATION_POLICIES",
    "SourceIndex",
    "ValidationReport",
    "Validator",
    "default_replacement",
    "id_hash",
    "scan_source",
]

VALIDATION_POLICIES = ("error", "replace", "skip")
"""What to do with a letter outside the adapter's alphabet."""


@attrs.define
class ValidationReport:
    """Counts of what validation did.

    Attributes:
        policy: The ``invalid`` policy.
        records: Records read.
        kept: Records kept (scored).
        skipped_invalid: Records dropped for invalid letters (policy ``"skip"``).
        skipped_empty: Empty records dropped (policy ``"skip"``).
        replaced_records: Records with at least one replaced letter.
        replaced_letters: Letters replaced.
        uppercased_records: Records that held lower-case letters (upper-cased).
        long_records: Records longer than the adapter's ``max_length`` (handled by its long policy).
        invalid_letters: Invalid letter → occurrences (replaced or skipped).
    """

    policy: str = "error"
    records: int = 0
    kept: int = 0
    skipped_invalid: int = 0
    skipped_empty: int = 0
    replaced_records: int = 0
    replaced_letters: int = 0
    uppercased_records: int = 0
    long_records: int = 0
    invalid_letters: Counter[str] = attrs.field(factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable counts."""
        out = attrs.asdict(self)
        out["invalid_letters"] = dict(sorted(self.invalid_letters.items()))
        return out

    def summary(self) -> str:
        """One line for logs.

        >>> ValidationReport(records=3, kept=2, skipped_invalid=1, policy="skip").summary()
        'read 3 records, kept 2 (skipped 1 with invalid letters)'
        """
        parts = []
        if self.skipped_invalid:
            parts.append(f"skipped {self.skipped_invalid} with invalid letters")
        if self.skipped_empty:
            parts.append(f"skipped {self.skipped_empty} empty")
        if self.replaced_records:
            parts.append(
                f"replaced {self.replaced_letters} letters in {self.replaced_records} records"
            )
        if self.uppercased_records:
            parts.append(f"upper-cased {self.uppercased_records}")
        if self.long_records:
            parts.append(f"{self.long_records} longer than the model limit")
        tail = f" ({'; '.join(parts)})" if parts else ""
        return f"read {self.records} records, kept {self.kept}{tail}"


def default_replacement(alphabet: Iterable[str] | None) -> str | None:
    """``"N"`` or ``"X"`` when the alphabet has it (nucleotides / amino acids), else ``None``.

    >>> default_replacement("ACGUN"), default_replacement("ACDEFGHIKLMNPQRSTVWXY"), default_replacement("AB")
    ('N', 'X', None)
    """
    if alphabet is None:
        return None
    letters = set(alphabet)
    if "N" in letters and letters <= set("ACGTUNRYKMSWBDHV"):
        return "N"
    if "X" in letters:
        return "X"
    if "N" in letters:
        return "N"
    return None


def _is_skip(exc: BaseException) -> bool:
    """Whether the adapter asked to drop the record (its own ``invalid="skip"`` policy)."""
    try:
        from biocoreset.data.hygiene import SkipRecord
    except ImportError:  # pragma: no cover - the hygiene module ships with the library
        return False
    return isinstance(exc, SkipRecord)


class Validator:
    """Checks and cleans one record at a time (see the module docstring for the rules).

    Args:
        alphabet: Accepted residue letters (``None``: no letter check).
        policy: ``"error"``, ``"replace"`` or ``"skip"`` for letters outside the alphabet.
        replacement: Letter used by ``"replace"`` (default: :func:`default_replacement`).
        hook: Adapter-specific ``validate(record_id, sequence) -> str`` run first.
        max_length: Residue limit of the model (``None``: no limit checked here).
        long_policy: The adapter's long-sequence policy; ``"error"`` fails here, anything else is
            counted and left to the adapter.
        where: Name of the input, for messages.
        model_alphabet: The model's letters for :class:`~biocoreset.data.molecule.MoleculeTally`
            (default ``alphabet``): protein or nucleotide, to warn on a corpus of the other kind.

    Attributes:
        report: The :class:`ValidationReport` so far.
    """

    def __init__(
        self,
        *,
        alphabet: Iterable[str] | None = None,
        policy: str = "error",
        replacement: str | None = None,
        hook: Callable[[str, str], str] = lambda record_id, sequence: sequence,
        max_length: int | None = None,
        long_policy: str | None = None,
        where: str = "the input",
        model_alphabet: Iterable[str] | None = None,
    ) -> None:
        self.molecules = MoleculeTally(alphabet if model_alphabet is None else model_alphabet)
        if policy not in VALIDATION_POLICIES:
            raise ConfigError(
                f"invalid (the invalid-letter policy) must be one of {', '.join(VALIDATION_POLICIES)}, "
                f"got {policy!r}."
            )
        self.alphabet = None if alphabet is None else frozenset(alphabet)
        if self.alphabet is not None and any(len(a) != 1 for a in self.alphabet):
            raise ConfigError(
                f"an alphabet is a set of single letters, got {sorted(self.alphabet)!r}."
            )
        self.fold = self.alphabet is not None and not any(a.islower() for a in self.alphabet)
        if policy == "replace":
            replacement = replacement or default_replacement(self.alphabet)
            if replacement is None:
                raise ConfigError(
                    "invalid='replace' needs a replacement letter and the adapter's alphabet has neither "
                    "N nor X: pass replacement='<letter>' (--replacement)."
                )
            if self.alphabet is not None and replacement not in self.alphabet:
                raise ConfigError(
                    f"replacement letter {replacement!r} is not in the adapter's alphabet "
                    f"({''.join(sorted(self.alphabet))}); choose one of those."
                )
        self.policy, self.replacement, self.hook = policy, replacement, hook
        self.max_length, self.long_policy, self.where = max_length, long_policy, where
        self.report = ValidationReport(policy=policy)

    @classmethod
    def for_adapter(
        cls,
        adapter: Any,
        *,
        policy: str = "error",
        replacement: str | None = None,
        where: str = "the input",
    ) -> Validator:
        """A validator configured from an adapter's optional ``alphabet``, ``validate``,
        ``replacement``, ``max_length`` and ``long_policy`` members."""
        from biocoreset.protocols import capabilities

        caps = capabilities(adapter)
        alphabet = caps.alphabet
        return cls(
            alphabet=alphabet,
            policy=policy,
            replacement=replacement or caps.replacement,
            hook=caps.validate,
            max_length=caps.max_length if alphabet is not None else None,
            long_policy=caps.long_policy,
            where=where,
            model_alphabet=alphabet or caps.residue_alphabet,
        )

    def _name(self, number: int, record_id: str) -> str:
        return f"record {record_id!r} (record {number} of {self.where})"

    def __call__(self, number: int, record_id: str, sequence: str) -> str | None:
        """Return the cleaned sequence, or ``None`` to drop the record.

        Args:
            number: 1-based record number in the input (for messages).
            record_id: The record id.
            sequence: The raw sequence.

        Raises:
            InputError: Policy ``"error"`` (or ``"replace"`` for an empty sequence) and a bad record.
        """
        rep = self.report
        rep.records += 1
        self.molecules(sequence)
        try:
            sequence = self.hook(record_id, sequence)
        except InputError as exc:
            if self.policy != "skip" and not _is_skip(exc):
                raise
            rep.skipped_invalid += 1
            return None
        if not sequence:
            if self.policy == "skip":
                rep.skipped_empty += 1
                return None
            raise InputError(
                f"{self._name(number, record_id)}: empty sequence. Remove it, or pass invalid='skip' "
                "(--invalid skip) to drop empty and invalid records."
            )
        alphabet = self.alphabet
        if alphabet is not None:
            if self.fold:
                upper = sequence.upper()
                if upper != sequence:
                    rep.uppercased_records += 1
                    sequence = upper
            if not alphabet.issuperset(sequence):
                sequence_or_none = self._invalid(number, record_id, sequence)
                if sequence_or_none is None:
                    return None
                sequence = sequence_or_none
            if self.max_length is not None and len(sequence) > self.max_length:
                if self.long_policy == "error":
                    raise InputError(
                        f"{self._name(number, record_id)}: {len(sequence)} residues exceeds the model "
                        f"limit of {self.max_length}. Use the adapter option long_policy='truncate' or "
                        "filter long sequences first."
                    )
                rep.long_records += 1
        rep.kept += 1
        return sequence

    def _invalid(self, number: int, record_id: str, sequence: str) -> str | None:
        assert self.alphabet is not None
        alphabet = self.alphabet
        bad = [(i, c) for i, c in enumerate(sequence) if c not in alphabet]
        if self.policy == "error":
            i, c = bad[0]
            more = f" ({len(bad)} invalid letters in all)" if len(bad) > 1 else ""
            raise InputError(
                f"{self._name(number, record_id)}: residue {i + 1} is {c!r}, which is not in the "
                f"model's alphabet ({''.join(sorted(alphabet))}){more}. Clean the input, or pass "
                "invalid='replace' or invalid='skip' (--invalid)."
            )
        self.report.invalid_letters.update(c for _, c in bad)
        if self.policy == "skip":
            self.report.skipped_invalid += 1
            return None
        assert self.replacement is not None
        self.report.replaced_records += 1
        self.report.replaced_letters += len(bad)
        return "".join(c if c in alphabet else self.replacement for c in sequence)

    def iter(self, records: Iterable[tuple[str, str]]) -> Iterator[tuple[str, str]]:
        """Validate a stream of raw records, yielding the kept ``(id, sequence)`` pairs."""
        for number, (rid, seq) in enumerate(records, start=1):
            out = self(number, rid, seq)
            if out is not None:
                yield rid, out


@attrs.frozen(kw_only=True)
class SourceIndex:
    """What the index pass learnt about the input (nothing per record is kept but 8 bytes).

    Attributes:
        num_rows: Records kept after validation (rows of the result).
        num_records: Records read.
        digest: Hex digest of the kept ``(id, sequence)`` stream (identifies the data for resume).
        report: The validation counts.
        positions: Row of each id asked for in ``wanted_ids`` that was found.
        id_hashes: :func:`id_hash` of each kept row's id, in row order (``uint64``; 8 bytes per
            row, the index's only per-record memory). The ``D_sub`` draw is computed from them.
    """

    num_rows: int
    num_records: int
    digest: str
    report: ValidationReport
    positions: dict[str, int]
    id_hashes: np.ndarray = attrs.field(factory=lambda: np.empty(0, dtype=np.uint64), eq=False)


def id_hash(record_id: str) -> int:
    """The 64-bit hash of a record id used for duplicate detection and the ``D_sub`` draw: the
    8-byte BLAKE2b digest of its UTF-8 bytes, read as a little-endian unsigned integer.

    >>> id_hash("seq1") == int.from_bytes(hashlib.blake2b(b"seq1", digest_size=8).digest(), "little")
    True
    """
    return int.from_bytes(
        hashlib.blake2b(record_id.encode("utf-8"), digest_size=8).digest(), "little"
    )


def sequence_hash(sequence: str) -> int:
    """The signed 64-bit hash of a sequence as read (8-byte BLAKE2b of its UTF-8 bytes), stored per
    row in score files so that ``select`` can check its corpus is the one that was scored.

    >>> sequence_hash("ACGU") == sequence_hash("ACGU") != sequence_hash("ACGA")
    True
    """
    return int.from_bytes(
        hashlib.blake2b(sequence.encode("utf-8"), digest_size=8).digest(), "little", signed=True
    )


def _duplicate_message(first: tuple[int, str], second: tuple[int, str], where: str) -> str:
    return (
        f"duplicate sequence id {first[1]!r}: records {first[0]} and {second[0]} of {where}. "
        "Ids must be unique; rename or drop one."
    )


def scan_source(
    records: Callable[[], Iterable[tuple[str, str]]],
    validator: Validator,
    *,
    wanted_ids: Iterable[str] | None = None,
    where: str = "the input",
    on_record: Callable[[int], None] | None = None,
) -> SourceIndex:
    """The index pass: validate every record, count the kept rows, hash the data, find duplicates.

    Holds 8 bytes per record (:func:`id_hash` of its id); a second pass over the input runs only
    when two hashes collide, to name both records of a duplicate id (or rule out a hash collision).

    Args:
        records: A callable returning a fresh iterator of raw records (called once, twice when
            hashes collide).
        validator: The validator (its :attr:`Validator.report` is filled).
        wanted_ids: Ids whose row numbers to return in :attr:`SourceIndex.positions`.
        where: Name of the input, for messages.
        on_record: Called with the running record count every 1,000 records (progress bars).

    Raises:
        InputError: A validation failure, a duplicate id (naming both records), or no kept record.

    >>> idx = scan_source(lambda: [("a", "ACGU"), ("b", "GG")], Validator(alphabet="ACGU"))
    >>> idx.num_rows, len(idx.digest)
    (2, 32)
    """
    wanted = set(wanted_ids) if wanted_ids is not None else set()
    positions: dict[str, int] = {}
    kept = bytearray()  # 8-byte id hashes of the kept rows, then of the dropped records
    dropped = bytearray()
    digest = hashlib.blake2b(digest_size=16)
    blake2b = hashlib.blake2b
    rows = 0
    number = 0
    for number, (rid, seq) in enumerate(records(), start=1):
        id_hash = blake2b(rid.encode("utf-8"), digest_size=8).digest()
        out = validator(number, rid, seq)
        if out is None:
            dropped += id_hash
        else:
            kept += id_hash
            if wanted and rid in wanted:
                positions[rid] = rows
            digest.update(rid.encode("utf-8"))
            digest.update(b"\x00")
            digest.update(out.encode("utf-8"))
            digest.update(b"\n")
            rows += 1
        if on_record is not None and number % 1000 == 0:
            on_record(number)
    if on_record is not None:
        on_record(number)
    if number == 0:
        raise InputError(f"{where} holds no sequences.")
    id_hashes = np.frombuffer(kept, dtype="<u8").astype(np.uint64, copy=False)
    h = id_hashes
    if dropped:
        h = np.concatenate([h, np.frombuffer(dropped, dtype="<u8").astype(np.uint64, copy=False)])
    if h.size > 1:
        srt = np.sort(h)
        same = srt[1:] == srt[:-1]
        if bool(same.any()):
            _name_duplicate(records, set(srt[1:][same].tolist()), where)
    if rows == 0:
        raise InputError(
            f"{where}: none of its {number} records is left after validation "
            f"({validator.report.summary()})."
        )
    molecule = validator.molecules.message(where)
    if molecule:  # e.g. DNA given to a protein model: every letter passes, nothing else warns
        warnings.warn(molecule, QualityWarning, stacklevel=2)
    return SourceIndex(
        num_rows=rows,
        num_records=number,
        digest=digest.hexdigest(),
        report=validator.report,
        positions=positions,
        id_hashes=id_hashes,
    )


def _name_duplicate(
    records: Callable[[], Iterable[tuple[str, str]]], colliding: set[int], where: str
) -> None:
    seen: dict[str, int] = {}
    for number, (rid, _) in enumerate(records(), start=1):
        if id_hash(rid) not in colliding:
            continue
        if rid in seen:
            raise InputError(_duplicate_message((seen[rid], rid), (number, rid), where))
        seen[rid] = number

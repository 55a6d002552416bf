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
   own ``<cls>``/``<eos>`` (counted as ``windowed``; see :func:`windowed_logits`).

   **Aggregation of windows.** With ``"windows"`` the record is still *one* sample: masking draws
   15% of all its residues (seeded by the record id as usual), every masked residue is predicted
   by the window that contains it, and the record's loss is the mean cross-entropy over all its
   masked residues — i.e. the window losses averaged with weights proportional to their number
   of masked residues. Its gradient is the same weighted mean of the window gradients, and its
   score is the self-influence ``g_zᵀ C⁻¹ g_z`` of that mean gradient (one score per record).

Counts are per tokenisation: a record tokenised twice (in :func:`biocoreset.score`, a ``D_sub``
record is collated once to fit the curvature and once to be scored) is counted twice. The
pipeline's own validation (:mod:`biocoreset.data.validation`) counts per record.

Example:
    >>> h = SequenceHygiene(alphabet="ACGUN", rna=True, invalid="replace")
    >>> h.clean("r1", "acgtZ"), dict(h.stats)
    ('ACGUN', {'lowercase_records': 1, 't_to_u_records': 1, 'replaced_records': 1, 'replaced_letters': 1})
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

import torch

from biocoreset.errors import ConfigError, InputError
from biocoreset.protocols import AdapterBase, Batch

__all__ = [
    "INVALID_POLICIES",
    "LONG_POLICIES",
    "HygieneAdapterMixin",
    "SequenceHygiene",
    "SkipRecord",
    "invalid_positions",
    "resolve_invalid_policy",
    "windowed_logits",
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


def windowed_logits(
    forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    window: int,
    cls_id: int,
    eos_id: int,
    pad_id: int,
) -> torch.Tensor:
    """Logits of rows longer than the model's limit, computed window by window.

    Every row must be laid out as ``<cls> residues <eos> <pad>...`` (as the built-in adapters
    collate). Rows are cut into consecutive, non-overlapping windows of ``window`` residues; window
    ``w`` of every row is run in one ``forward`` call (``[B, ≤ window + 2]``, with its own
    ``<cls>``/``<eos>``; a row with no residue left gets just ``<cls><eos>``), so each model call
    keeps the batch dimension ``B``. The logits of each residue come from its window; those of
    ``<cls>``, ``<eos>`` and padding are copies of the first window's ``<cls>`` logits (they never
    carry a label). Rows that fit (``T ≤ window + 2``) take one plain call.

    Args:
        forward: ``(input_ids, attention_mask) -> [B, T, V]`` logits of the model.
        input_ids: ``[B, T]`` token ids.
        attention_mask: ``[B, T]``, 1 on real tokens.
        window: Residues per window (the model's ``max_length``).
        cls_id: The ``<cls>`` id.
        eos_id: The ``<eos>`` id.
        pad_id: The padding id.

    Returns:
        ``[B, T, V]`` logits.

    Example:
        >>> emb = torch.nn.Embedding(8, 3)
        >>> fwd = lambda ids, mask: emb(ids)           # position-free toy model
        >>> ids = torch.tensor([[0, 4, 5, 6, 7, 4, 2], [0, 5, 2, 1, 1, 1, 1]])
        >>> out = windowed_logits(fwd, ids, ids.ne(1).long(), window=2, cls_id=0, eos_id=2, pad_id=1)
        >>> bool(torch.equal(out[0, 1:6], emb(ids)[0, 1:6]) and torch.equal(out[1, 1], emb.weight[5]))
        True
    """
    B, T = input_ids.shape
    if T <= window + 2:  # noqa: SIM300
        return forward(input_ids, attention_mask)
    if window < 1:
        raise ConfigError(f"window must be >= 1, got {window!r}.")
    device = input_ids.device
    n = attention_mask.sum(1).to(torch.long) - 2  # residues per row
    n_windows = max(1, math.ceil(int(n.max()) / window))
    rows = torch.arange(B, device=device)
    parts: list[torch.Tensor] = []
    offsets: list[int] = []
    start = 0
    for w in range(n_windows):
        k = (n - w * window).clamp(0, window)  # residues of each row in this window
        width = int(k.max()) + 2
        j = torch.arange(width, device=device)
        src = (w * window + j).clamp(max=T - 1)  # input position of window column j (j >= 1)
        ids = input_ids.gather(1, src.unsqueeze(0).expand(B, -1))
        is_res = (j.unsqueeze(0) >= 1) & (j.unsqueeze(0) <= k.unsqueeze(1))
        ids = torch.where(is_res, ids, torch.full_like(ids, pad_id))
        ids[:, 0] = cls_id
        ids[rows, k + 1] = eos_id
        mask = (j.unsqueeze(0) <= (k + 1).unsqueeze(1)).to(attention_mask.dtype)
        parts.append(forward(ids, mask))
        offsets.append(start)
        start += width
    stacked = torch.cat(parts, dim=1)  # [B, Σ widths, V]
    t = torch.arange(T, device=device).unsqueeze(0).expand(B, -1)
    residue = (t >= 1) & (t <= n.unsqueeze(1))
    w_of = torch.where(residue, (t - 1) // window, torch.zeros_like(t))
    col = torch.where(residue, (t - 1) % window + 1, torch.zeros_like(t))
    index = torch.tensor(offsets, device=device)[w_of] + col
    return stacked.gather(1, index.unsqueeze(-1).expand(-1, -1, stacked.shape[-1]))


class HygieneAdapterMixin(AdapterBase):
    """The adapter side of the hygiene, for :class:`~biocoreset.adapters.base.MaskedLMAdapter`
    subclasses whose rows are ``<cls> residues <eos>`` with one token per residue letter.

    A subclass calls :meth:`_setup_hygiene` at the end of its ``__init__`` and implements
    ``model_logits(input_ids, attention_mask)``. The mixin then provides:

    * ``encode`` — clean (:class:`SequenceHygiene`) and map one letter to one token id;
    * ``collate`` — clean every record with counting, drop the ``"skip"`` ones, then the base
      collation (masking, padding);
    * ``_truncate`` — the long-sequence policy (:data:`LONG_POLICIES`);
    * ``logits`` — ``model_logits``, window by window under ``long_policy="windows"``;
    * ``validate`` and ``alphabet`` / ``replacement`` — what the pipeline's validator
      (:mod:`biocoreset.data.validation`) reads. With the adapter's ``invalid="error"`` the
      pipeline checks letters itself against ``alphabet`` under its own ``invalid`` option
      (``validate`` only converts ``T``→``U``); with ``"unk"``/``"replace"`` the adapter handles
      letters, so ``alphabet`` is ``None``; with ``"skip"``, ``validate`` raises
      :class:`SkipRecord` and the pipeline drops the record (counted as ``skipped_invalid``).
    """

    hygiene: SequenceHygiene
    token_ids: dict[str, int]
    cls_token_id: int
    eos_token_id: int
    unk_token_id: int
    invalid: str
    replacement: str | None
    residue_alphabet: frozenset[str]

    # provided by MaskedLMAdapter
    stats: Counter[str]
    max_length: int
    long_policy: str
    loss_mode: str
    truncation: str
    pad_token_id: int
    alphabet: frozenset[str] | None

    def _setup_hygiene(
        self,
        *,
        token_ids: dict[str, int],
        rna: bool,
        invalid: str,
        replacement: str | None,
        long_policy: str,
        cls_id: int,
        eos_id: int,
        unk_id: int,
        model_name: str,
    ) -> None:
        if long_policy not in LONG_POLICIES:
            raise ConfigError(f"long_policy must be one of {LONG_POLICIES}, got {long_policy!r}.")
        if long_policy == "windows" and self.loss_mode != "masked":
            raise ConfigError(
                "long_policy='windows' needs loss_mode='masked' (paper-compat labels padding too)."
            )
        self.long_policy = long_policy
        self.token_ids = dict(token_ids)
        self.cls_token_id, self.eos_token_id, self.unk_token_id = (
            int(cls_id),
            int(eos_id),
            int(unk_id),
        )
        self.hygiene = SequenceHygiene(
            token_ids,
            rna=rna,
            invalid=invalid,
            replacement=replacement,
            stats=self.stats,
            model=model_name,
        )
        self.invalid = self.hygiene.invalid
        self.replacement = self.hygiene.replacement
        self.residue_alphabet = self.hygiene.alphabet
        self.alphabet = self.residue_alphabet if self.invalid == "error" else None

    def model_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``[B, T, V]`` logits of one model call (rows within the model's limit)."""
        raise NotImplementedError

    def validate(self, record_id: str, sequence: str) -> str:
        """Normalisation run by the pipeline's validator before its alphabet check.

        Raises:
            SkipRecord: The adapter's policy is ``"skip"`` and the record has an invalid letter.
        """
        if not sequence:
            return sequence
        if self.invalid == "error":  # the validator upper-cases and checks letters itself
            return sequence.replace("T", "U").replace("t", "u") if self.hygiene.rna else sequence
        seq = self.hygiene.normalize(sequence)
        if self.invalid == "skip":
            bad = invalid_positions(seq, self.residue_alphabet)
            if bad:
                raise SkipRecord(self.hygiene.message(record_id, bad, skipped=True))
        return seq

    def encode(self, record_id: str, sequence: str) -> tuple[list[int], list[bool]]:
        """Token ids (``<cls>`` residues ``<eos>``) and residue flags of one cleaned record.

        Raises:
            InputError: Empty sequence or invalid letter (policy ``"error"``).
            SkipRecord: Invalid letter under ``"skip"`` (:meth:`collate` drops such records).
        """
        seq = self.hygiene.clean(record_id, sequence, count=False)
        if seq is None:
            raise SkipRecord(
                self.hygiene.message(
                    record_id,
                    invalid_positions(self.hygiene.normalize(sequence), self.residue_alphabet),
                    skipped=True,
                )
            )
        get, unk = self.token_ids.get, self.unk_token_id
        ids = [self.cls_token_id, *(get(c, unk) for c in seq), self.eos_token_id]
        return ids, [False, *([True] * len(seq)), False]

    def collate(
        self, records: Sequence[tuple[str, str]], *, seed: int, draw: int = 0, draws: int = 1
    ) -> Batch:
        """Clean (with counts), drop records skipped by ``invalid="skip"``, then collate.

        The returned batch's ``ids`` list the records kept.

        Raises:
            InputError: An empty sequence (named), an invalid letter under ``"error"``, a long
                sequence under ``long_policy="error"``, or every record of the batch skipped.
        """
        kept: list[tuple[str, str]] = []
        for record_id, sequence in records:
            seq = self.hygiene.clean(record_id, sequence)
            if seq is not None:
                kept.append((record_id, seq))
        if records and not kept:
            raise InputError(
                f"all {len(records)} records of the batch were skipped for invalid letters "
                f"(invalid='skip'), e.g. {records[0][0]!r}."
            )
        return super().collate(kept, seed=seed, draw=draw, draws=draws)  # type: ignore[misc]

    def _truncate(
        self, record_id: str, ids: list[int], maskable: list[bool]
    ) -> tuple[list[int], list[bool]]:
        n = len(ids) - 2
        if n <= self.max_length:
            return ids, maskable
        if self.long_policy == "error":
            raise InputError(
                f"record {record_id!r}: {n} residues exceeds the model limit of {self.max_length}. "
                "Use long_policy='truncate' or 'windows', or filter long sequences first."
            )
        if self.long_policy == "windows":
            self.stats["windowed"] += 1
            return ids, maskable
        self.stats["truncated"] += 1
        if self.truncation == "first-tokens":
            keep = self.max_length + 2  # <cls> + max_length + 1 residues, no <eos>
            return ids[:keep], maskable[:keep]
        keep = self.max_length + 1
        return ids[:keep] + ids[-1:], maskable[:keep] + maskable[-1:]

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Model logits; under ``long_policy="windows"`` long rows go through
        :func:`windowed_logits`."""
        if self.long_policy == "windows":
            return windowed_logits(
                self.model_logits,
                input_ids,
                attention_mask,
                window=self.max_length,
                cls_id=self.cls_token_id,
                eos_id=self.eos_token_id,
                pad_id=self.pad_token_id,
            )
        return self.model_logits(input_ids, attention_mask)

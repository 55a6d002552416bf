"""The adapter side of the sequence hygiene (:mod:`biocoreset.data.hygiene`): the
:class:`HygieneAdapterMixin` of the ``rna-fm`` and ``esmc`` adapters (encode, collate, the
long-sequence policy, window-by-window logits) and :func:`windowed_logits`.

What the hygiene does to a record (normalisation, the alphabet policy, the long-sequence policies
and how windows aggregate) is described in :mod:`biocoreset.data.hygiene`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence

import torch

from biocoreset.data.hygiene import (
    LONG_POLICIES,
    SequenceHygiene,
    SkipRecord,
    invalid_positions,
)
from biocoreset.errors import ConfigError, InputError
from biocoreset.protocols import AdapterBase, Batch

__all__ = ["HygieneAdapterMixin", "windowed_logits"]


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

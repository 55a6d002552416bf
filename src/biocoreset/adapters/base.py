"""Shared machinery for masked-LM adapters: collation, masking, the per-sample loss, parameter scope."""

from __future__ import annotations

import fnmatch
import re
from collections import Counter
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

from biocoreset.data.masking import MaskingConfig, mask_positions
from biocoreset.errors import ConfigError, InputError, did_you_mean
from biocoreset.protocols import AdapterBase, Batch

__all__ = [
    "LONG_POLICIES",
    "LOSS_MODES",
    "TRUNCATIONS",
    "MaskedLMAdapter",
    "default_parameter_groups",
    "last_layer_groups",
]

LONG_POLICIES = ("truncate", "error")

TRUNCATIONS = ("keep-eos", "first-tokens")
"""How a long sequence is cut: ``"keep-eos"`` (default: the first ``max_length`` residues, then the
closing special token) or ``"first-tokens"`` (the first ``max_length`` + special tokens of the
tokenised row, as the released bio-coreset code does: ``<cls>`` + 1,023 residues and no ``<eos>``
for RNA-FM)."""

LOSS_MODES = ("masked", "paper-compat")
"""Per-sample loss definitions: ``"masked"`` (``docs/design.md``, the default) or ``"paper-compat"`` (the
released bio-coreset code: unmasked reconstruction loss averaged over every position of the padded
batch, special tokens and padding included)."""

_LAYER_RE = re.compile(r"(?:^|\.)(?:layer|layers|blocks|h|transformer_blocks)\.(\d+)\.(.*)$")


def default_parameter_groups(names: Sequence[str]) -> dict[str, list[str]]:
    """Group qualified parameter names into readable groups.

    Groups: ``"embeddings"``, ``"layer {i} attention"``, ``"layer {i} ffn"``, ``"lm head"``,
    ``"final norm"`` and ``"other"``.

    >>> default_parameter_groups(["emb.word_embeddings.weight", "encoder.layer.0.attention.q.weight",
    ...     "encoder.layer.0.output.dense.bias", "lm_head.bias"])  # doctest: +NORMALIZE_WHITESPACE
    {'embeddings': ['emb.word_embeddings.weight'], 'layer 0 attention': ['encoder.layer.0.attention.q.weight'],
     'layer 0 ffn': ['encoder.layer.0.output.dense.bias'], 'lm head': ['lm_head.bias']}
    """
    groups: dict[str, list[str]] = {}
    for name in names:
        m = _LAYER_RE.search(name)
        if m:
            rest = m.group(2)
            part = "attention" if ("attn" in rest or "attention" in rest) else "ffn"
            group = f"layer {int(m.group(1))} {part}"
        elif (
            "lm_head" in name
            or "predictions" in name
            or "sequence_head" in name
            or "decoder" in name
        ):
            group = "lm head"
        elif "embed" in name:
            group = "embeddings"
        elif "norm" in name.lower():
            group = "final norm"
        else:
            group = "other"
        groups.setdefault(group, []).append(name)
    return groups


_GROUP_LAYER_RE = re.compile(r"^layer (\d+) ")


def last_layer_groups(groups: Mapping[str, Sequence[str]], spec: str | int) -> list[str]:
    """Names of the ``"layer {i} ..."`` groups of the last ``k`` layers (``spec``: ``"last:k"`` or k).

    Raises:
        ConfigError: ``k`` is not a whole number in ``1 .. number of layers``.

    >>> last_layer_groups({"embeddings": [], "layer 0 ffn": [], "layer 1 attention": [],
    ...                    "layer 1 ffn": [], "lm head": []}, "last:1")
    ['layer 1 attention', 'layer 1 ffn']
    """
    text = str(spec).removeprefix("last:")
    layers = sorted({int(m.group(1)) for g in groups if (m := _GROUP_LAYER_RE.match(g))})
    try:
        k = int(text)
    except ValueError:
        k = 0
    if not layers or not 1 <= k <= len(layers):
        raise ConfigError(
            f"parameter pattern {spec!r}: 'last:k' needs a whole k from 1 to the number of layers "
            f"({len(layers)}); e.g. 'last:2'."
        )
    keep = set(layers[-k:])
    return [g for g in groups if (m := _GROUP_LAYER_RE.match(g)) and int(m.group(1)) in keep]


class MaskedLMAdapter(AdapterBase):
    """Base class of the built-in adapters.

    Subclasses provide :meth:`encode` (token ids with special tokens and a maskable flag per
    position), :meth:`logits`, and the ids ``mask_token_id``, ``pad_token_id`` and
    ``random_token_ids``.

    Input validation (:mod:`biocoreset.data.validation`) reads two optional members, so an adapter
    can declare what it accepts without implementing anything else:

    * ``alphabet`` — the residue letters the model accepts (``None``, the default: no letter check);
    * ``validate(record_id, sequence) -> str`` — a normalisation run before the alphabet check
      (e.g. T→U); it may raise :class:`~biocoreset.errors.InputError` to reject a record. Not
      defined here; subclasses add it when they need it.

    Args:
        model: The masked language model.
        masking: Masking configuration (15% of residues, BERT 80/10/10 by default).
        max_length: Longest sequence (residues, special tokens excluded) the model accepts.
        long_policy: ``"truncate"`` (keep the first ``max_length`` residues; counted in
            :attr:`stats`) or ``"error"``.
        loss_mode: ``"masked"`` (default): the masked-LM loss of ``docs/design.md``. ``"paper-compat"``: the
            released bio-coreset code's loss — no masking, every position of the padded batch
            (special tokens and padding included) is a target, and the per-sample loss is the mean
            over the batch's padded width. Unless ``pad_to`` fixes the width, that loss depends on the
            batch's padding, so scores are no longer independent of batch composition.
        attend_to_padding: ``False`` (default): real tokens never attend to padding. ``True``: the
            model runs without its attention padding mask, as the released bio-coreset code does
            (``model_override.py`` sets ``padding_mask = None``); ESM-style models still zero the
            padding positions' embeddings, as ``fm`` does before its layers.
        pad_to: Pad every row to this many tokens (``None``: to the batch's longest row). The
            released code pads every row to 1,024 on its own, so with ``loss_mode="paper-compat"``
            a sequence's loss is a mean over 1,024 positions and does not depend on its batch.
        truncation: ``"keep-eos"`` (default) or ``"first-tokens"`` (see :data:`TRUNCATIONS`).
    """

    name = "masked-lm"
    max_length: int
    mask_token_id: int
    pad_token_id: int
    random_token_ids: Sequence[int]
    alphabet: frozenset[str] | None = None

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        masking: MaskingConfig | None = None,
        max_length: int,
        long_policy: str = "truncate",
        loss_mode: str = "masked",
        attend_to_padding: bool = False,
        pad_to: int | None = None,
        truncation: str = "keep-eos",
    ) -> None:
        if loss_mode not in LOSS_MODES:
            raise ConfigError(f"loss_mode must be one of {LOSS_MODES}, got {loss_mode!r}.")
        if truncation not in TRUNCATIONS:
            raise ConfigError(
                f"truncation must be one of {TRUNCATIONS}, got {truncation!r}."
                f"{did_you_mean(str(truncation), TRUNCATIONS)}"
            )
        if not isinstance(attend_to_padding, bool):
            raise ConfigError(
                f"attend_to_padding must be true or false, got {attend_to_padding!r}."
            )
        if pad_to is not None and (
            isinstance(pad_to, bool) or not isinstance(pad_to, int) or pad_to < 1
        ):
            raise ConfigError(
                f"pad_to must be a positive number of tokens or None, got {pad_to!r}."
            )
        if long_policy not in LONG_POLICIES:
            raise ConfigError(f"long_policy must be one of {LONG_POLICIES}, got {long_policy!r}.")
        if max_length < 1:
            raise ConfigError(f"max_length must be >= 1, got {max_length!r}.")
        self.model = model
        self.masking = masking or MaskingConfig()
        self.max_length = int(max_length)
        self.long_policy = long_policy
        self.loss_mode = loss_mode
        self.attend_to_padding = attend_to_padding
        self.pad_to = pad_to
        self.truncation = truncation
        self.stats: Counter[str] = Counter()
        self._unused: list[str] | None = None

    # -- to implement -----------------------------------------------------------------------------

    def encode(self, record_id: str, sequence: str) -> tuple[list[int], list[bool]]:
        """Token ids of one sequence (with special tokens) and which positions are residues."""
        raise NotImplementedError

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``[B, T, V]`` logits over the real vocabulary."""
        raise NotImplementedError

    # -- shared ------------------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        """Device of the model's first parameter (CPU for a parameter-free model)."""
        for p in self.model.parameters():
            return p.device
        return torch.device("cpu")

    def _truncate(
        self, record_id: str, ids: list[int], maskable: list[bool]
    ) -> tuple[list[int], list[bool]]:
        n = sum(maskable)
        if n <= self.max_length:
            return ids, maskable
        if self.long_policy == "error":
            raise InputError(
                f"record {record_id!r}: {n} residues exceeds the model limit of {self.max_length}. "
                "Use long_policy='truncate' or filter long sequences first."
            )
        self.stats["truncated"] += 1
        if self.truncation == "first-tokens":
            keep = self.max_length + (len(ids) - n)  # the special tokens count too
            return ids[:keep], maskable[:keep]
        out_ids, out_mask, kept = [], [], 0
        for tok, m in zip(ids, maskable, strict=True):
            if m:
                if kept >= self.max_length:
                    continue
                kept += 1
            out_ids.append(tok)
            out_mask.append(m)
        return out_ids, out_mask

    def collate(
        self, records: Sequence[tuple[str, str]], *, seed: int, draw: int = 0, draws: int = 1
    ) -> Batch:
        """Tokenise, mask deterministically and pad ``(id, sequence)`` records.

        ``draw`` of ``draws`` picks one of several masks per sequence (seeded by
        ``(seed, id, draw)``; see :mod:`biocoreset.data.masking`); draw 0 of 1 is the default mask.

        Raises:
            InputError: An empty sequence or one the alphabet rejects (the message names the id).
        """
        if not records:
            raise InputError("cannot collate an empty batch of records.")
        rows_ids, rows_labels, lengths = [], [], []
        for record_id, sequence in records:
            if not sequence:
                raise InputError(f"record {record_id!r}: empty sequence. Remove it from the input.")
            ids, maskable = self.encode(record_id, sequence)
            ids, maskable = self._truncate(record_id, ids, maskable)
            if self.loss_mode == "paper-compat":
                rows_ids.append(list(ids))
                rows_labels.append(list(ids))
                lengths.append(sum(maskable))
                continue
            corrupted, label_row = mask_positions(
                record_id,
                ids,
                maskable,
                seed=seed,
                config=self.masking,
                mask_token_id=self.mask_token_id,
                random_token_ids=self.random_token_ids,
                draw=draw,
                draws=draws,
            )
            rows_ids.append(corrupted)
            rows_labels.append(label_row)
            lengths.append(sum(maskable))
        width = max(len(r) for r in rows_ids)
        if self.pad_to is not None:
            if width > self.pad_to:
                longest = records[max(range(len(rows_ids)), key=lambda b: len(rows_ids[b]))][0]
                raise ConfigError(
                    f"record {longest!r} has {width} tokens, more than pad_to={self.pad_to}; raise "
                    "pad_to or lower max_length so that truncated rows fit."
                )
            width = self.pad_to
        B = len(records)
        input_ids = torch.full((B, width), self.pad_token_id, dtype=torch.long)
        fill = self.pad_token_id if self.loss_mode == "paper-compat" else -100
        labels = torch.full((B, width), fill, dtype=torch.long)
        attention = torch.zeros((B, width), dtype=torch.long)
        for b, (ids, lab) in enumerate(zip(rows_ids, rows_labels, strict=True)):
            input_ids[b, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            labels[b, : len(lab)] = torch.tensor(lab, dtype=torch.long)
            attention[b, : len(ids)] = 1
        return Batch(
            ids=tuple(r[0] for r in records),
            input_ids=input_ids,
            attention_mask=attention,
            labels=labels,
            lengths=torch.tensor(lengths, dtype=torch.long),
        )

    def per_sample_loss(self, batch: Batch) -> torch.Tensor:
        """``[B]`` cross-entropy of each sequence averaged over its labelled positions.

        With ``loss_mode="paper-compat"`` every position of the padded batch is labelled, so the
        average runs over the batch's full width. Half-precision logits are upcast to float32;
        float64 models stay float64.
        """
        batch = batch.to(self.device)
        logits = self.logits(batch.input_ids, batch.attention_mask)
        if logits.dtype in (torch.float16, torch.bfloat16):
            logits = logits.float()
        B, T, V = logits.shape
        ce = F.cross_entropy(
            logits.reshape(B * T, V),
            batch.labels.reshape(B * T),
            ignore_index=-100,
            reduction="none",
        ).view(B, T)
        count = (batch.labels != -100).sum(1).clamp(min=1).to(ce.dtype)
        return ce.sum(1) / count

    def parameter_groups(self) -> dict[str, list[str]]:
        """Readable groups of the trainable parameters (see :func:`default_parameter_groups`)."""
        unused = set(self.unused_parameters())
        names = [n for n, p in self.model.named_parameters() if p.requires_grad and n not in unused]
        return default_parameter_groups(names)

    def unused_parameters(self) -> list[str]:
        """Trainable parameters the masked-LM loss does not depend on (e.g. ESM's contact head).

        Found once by a probe forward/backward on a short synthetic batch; they are left out of
        the default scored set, since their gradient is always zero.
        """
        if self._unused is None:
            named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
            tokens = list(self.random_token_ids[:6]) or [self.mask_token_id]
            ids = torch.tensor([[self.mask_token_id, *tokens]], dtype=torch.long)
            batch = Batch(
                ids=("probe",),
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                labels=torch.tensor([[tokens[0], *tokens]], dtype=torch.long),
                lengths=torch.tensor([ids.shape[1]]),
            )
            with torch.enable_grad():
                loss = self.per_sample_loss(batch).sum()
                grads = torch.autograd.grad(loss, [p for _, p in named], allow_unused=True)
            self._unused = [n for (n, _), g in zip(named, grads, strict=True) if g is None]
        return list(self._unused)

    def scored_parameters(
        self, patterns: Sequence[str] | None = None
    ) -> dict[str, torch.nn.Parameter]:
        """Trainable parameters whose name or group matches any of ``patterns``.

        With ``None``: every trainable parameter the loss depends on (see
        :meth:`unused_parameters`). A pattern ``"last:k"`` selects the attention and FFN groups
        of the last ``k`` layers (:func:`last_layer_groups`); combine it with other patterns,
        e.g. ``["last:2", "lm head"]``.

        Raises:
            ConfigError: A pattern matches nothing (the message lists the groups).
        """
        unused = set(self.unused_parameters())
        params = {
            n: p for n, p in self.model.named_parameters() if p.requires_grad and n not in unused
        }
        if patterns is None:
            return params
        if isinstance(patterns, str):
            patterns = [patterns]
        groups = self.parameter_groups()
        chosen: set[str] = set()
        for pat in patterns:
            if pat.startswith("last:"):
                chosen |= {n for g in last_layer_groups(groups, pat) for n in groups[g]}
                continue
            hit = {n for n in params if fnmatch.fnmatchcase(n, pat)}
            for g, members in groups.items():
                if fnmatch.fnmatchcase(g, pat):
                    hit.update(members)
            if not hit:
                raise ConfigError(
                    f"parameter pattern {pat!r} matches no trainable parameter. Groups: "
                    f"{', '.join(sorted(groups))}; or use a glob on names such as '*layer.1.*'."
                )
            chosen |= hit
        return {n: p for n, p in params.items() if n in chosen}

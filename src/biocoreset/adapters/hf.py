"""The ``hf`` adapter: any Hugging Face transformers masked LM with its tokenizer.

Works with ``EsmForMaskedLM``, ``BertForMaskedLM`` and other ``*ForMaskedLM`` models whose forward
takes ``input_ids`` and ``attention_mask`` and returns ``.logits``. Masking follows DESIGN §2:
15% of the residue (non-special) tokens, seeded by ``(seed, sequence id)``.

Example:
    >>> from biocoreset.testing import tiny_esm
    >>> model, tokenizer = tiny_esm()
    >>> adapter = HFAdapter(model, tokenizer)
    >>> batch = adapter.collate([("s1", "ACGUA"), ("s2", "GGC")], seed=0)
    >>> tuple(adapter.per_sample_loss(batch).shape)
    (2,)
"""

from __future__ import annotations

from typing import Any

import torch

from biocoreset.adapters.base import MaskedLMAdapter
from biocoreset.data.masking import MaskingConfig
from biocoreset.errors import ConfigError, InputError
from biocoreset.plugins.hookspecs import hookimpl

__all__ = ["UNKNOWN_POLICIES", "HFAdapter"]

UNKNOWN_POLICIES = ("error", "unk")


class HFAdapter(MaskedLMAdapter):
    """Adapter for a transformers masked LM and its tokenizer.

    Args:
        model: A ``transformers`` masked-LM model (``EsmForMaskedLM``, ``BertForMaskedLM``, ...).
        tokenizer: Its tokenizer. It must define a mask and a pad token.
        masking: Masking configuration.
        max_length: Residue limit; default from ``config.max_position_embeddings`` minus the
            special tokens the tokenizer adds.
        long_policy: ``"truncate"`` or ``"error"`` for longer sequences.
        unknown: ``"error"`` (default) when the tokenizer maps a letter to its unknown token, or
            ``"unk"`` to keep the unknown token (counted in :attr:`stats`).
    """

    name = "hf"

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        *,
        masking: MaskingConfig | None = None,
        max_length: int | None = None,
        long_policy: str = "truncate",
        unknown: str = "error",
    ) -> None:
        if tokenizer is None:
            raise ConfigError(
                "the 'hf' adapter needs the model's tokenizer: pass tokenizer=AutoTokenizer."
                "from_pretrained(path), or use a model-specific adapter such as 'rna-fm' or 'esmc'."
            )
        if tokenizer.mask_token_id is None or tokenizer.pad_token_id is None:
            raise ConfigError(
                f"tokenizer {type(tokenizer).__name__} has no mask or pad token; a masked-LM "
                "tokenizer needs both."
            )
        if unknown not in UNKNOWN_POLICIES:
            raise ConfigError(f"unknown must be one of {UNKNOWN_POLICIES}, got {unknown!r}.")
        self.tokenizer = tokenizer
        self.unknown = unknown
        n_special = len(tokenizer("", add_special_tokens=True)["input_ids"])
        if max_length is None:
            limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
            max_length = (int(limit) - n_special) if limit else 1022
            if getattr(getattr(model, "config", None), "position_embedding_type", "") == "absolute" and (
                getattr(model.config, "model_type", "") == "esm"
            ):
                # ESM offsets learned positions by padding_idx + 1.
                max_length = int(limit) - n_special - int(model.config.pad_token_id) - 1
        super().__init__(model, masking=masking, max_length=max_length, long_policy=long_policy)
        self.mask_token_id = int(tokenizer.mask_token_id)
        self.pad_token_id = int(tokenizer.pad_token_id)
        special = set(tokenizer.all_special_ids)
        vocab_size = getattr(getattr(model, "config", None), "vocab_size", len(tokenizer))
        self.random_token_ids = [i for i in range(min(len(tokenizer), vocab_size)) if i not in special]
        self._special = special
        self._unk = tokenizer.unk_token_id

    def encode(self, record_id: str, sequence: str) -> tuple[list[int], list[bool]]:
        """Token ids with special tokens, and the residue flags.

        Raises:
            InputError: A letter maps to the unknown token and ``unknown="error"``.
        """
        ids = list(self.tokenizer(sequence, add_special_tokens=True)["input_ids"])
        special_mask = self.tokenizer.get_special_tokens_mask(ids, already_has_special_tokens=True)
        maskable = [not s for s in special_mask]
        if self._unk is not None and self._unk in ids:
            first = ids.index(self._unk)
            residue_pos = sum(maskable[:first])
            if self.unknown == "error":
                shown = sequence[residue_pos] if residue_pos < len(sequence) else "?"
                raise InputError(
                    f"record {record_id!r}: residue {residue_pos + 1} ({shown!r}) is not in the "
                    f"tokenizer's vocabulary. Fix the sequence, or pass unknown='unk' to keep it as "
                    f"{self.tokenizer.unk_token}."
                )
            self.stats["unknown_tokens"] += ids.count(self._unk)
            # The unknown token is a residue position: keep it maskable.
            maskable = [m or (t == self._unk) for t, m in zip(ids, maskable, strict=True)]
        return ids, maskable

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits of the wrapped model."""
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def _factory(model: torch.nn.Module | None = None, tokenizer: Any = None, **options: Any) -> HFAdapter:
    if model is None:
        raise ConfigError("the 'hf' adapter needs a model: score(model, ..., tokenizer=...).")
    return HFAdapter(model, tokenizer, **options)


@hookimpl
def biocoreset_register_adapters(register: Any) -> None:
    """Register the generic Hugging Face adapter ``hf``."""
    register("hf", _factory, description="any transformers masked LM with its tokenizer")

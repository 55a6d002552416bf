"""The ``hf`` adapter: any Hugging Face transformers masked LM with its tokenizer.

Works with ``EsmForMaskedLM``, ``BertForMaskedLM`` and other ``*ForMaskedLM`` models whose forward
takes ``input_ids`` and ``attention_mask`` and returns ``.logits``. Masking follows ``docs/design.md``:
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

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from biocoreset.adapters.base import MaskedLMAdapter
from biocoreset.adapters.hf_families import detect_family
from biocoreset.adapters.residue_tokenizer import repair_residue_tokenizer
from biocoreset.adapters.weights import find_weights, load_into, read_state_dict
from biocoreset.data.masking import MaskingConfig
from biocoreset.errors import ConfigError, InputError
from biocoreset.plugins.options import declare_options

__all__ = [
    "UNKNOWN_POLICIES",
    "HFAdapter",
    "char_alphabet",
    "logits_attending_to_padding",
    "make_hf_adapter",
]

UNKNOWN_POLICIES = ("error", "unk")


def char_alphabet(tokenizer: Any) -> frozenset[str] | None:
    """The residue letters of a character-level tokenizer, or ``None`` when it is not one.

    A tokenizer is character-level when every vocabulary entry other than special tokens and
    bracketed pseudo-tokens (``<null_1>``, ``[unused0]``) is one character (WordPiece continuations
    ``##X`` count as ``X``), and a string of all those letters tokenises to one token per letter.

    >>> from biocoreset.testing import tiny_esm
    >>> "".join(sorted(char_alphabet(tiny_esm()[1])))
    'ACGNU'
    """
    special = set(getattr(tokenizer, "all_special_tokens", []))
    letters: set[str] = set()
    for token in tokenizer.get_vocab():
        if token in special or (len(token) > 2 and token[0] + token[-1] in ("<>", "[]")):
            continue
        base = token[2:] if token.startswith("##") and len(token) > 2 else token
        if len(base) != 1:
            return None
        if not base.isspace():
            letters.add(base)
    if not letters:
        return None
    ordered = sorted(letters)
    try:
        toks = tokenizer.tokenize("".join(ordered))
    except Exception:  # a tokenizer that cannot tokenise its own letters is not character-level
        return None
    toks = [t[2:] if t.startswith("##") else t for t in toks]
    return frozenset(ordered) if toks == ordered else None


def logits_attending_to_padding(
    model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """Logits of a transformers masked LM run without its attention padding mask.

    This is the released bio-coreset code's forward pass (``model_override.py`` drops the padding
    mask before the layers): every token attends to the padding positions. For ESM-style models
    (``model.esm.embeddings``) the padding positions' embeddings are still zeroed after the
    embedding layer norm, as ``fm``'s ``BioBertModel`` does before its layers; position ids still
    come from the tokens (padding keeps the padding position).

    >>> from biocoreset.testing import tiny_esm
    >>> model, tok = tiny_esm()
    >>> batch = tok(["ACGU", "GG"], padding=True, return_tensors="pt")
    >>> out = logits_attending_to_padding(model, batch["input_ids"], batch["attention_mask"])
    >>> tuple(out.shape)
    (2, 6, 10)
    """
    embeddings = getattr(getattr(model, "esm", None), "embeddings", None)
    if embeddings is None:
        return model(input_ids=input_ids).logits
    keep = attention_mask.unsqueeze(-1)

    def zero_padding(module: torch.nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor:
        return output * keep.to(output.dtype)

    handle = embeddings.register_forward_hook(zero_padding)
    try:
        return model(input_ids=input_ids).logits
    finally:
        handle.remove()


class HFAdapter(MaskedLMAdapter):
    """Adapter for a transformers masked LM and its tokenizer.

    Args:
        model: A ``transformers`` masked-LM model (``EsmForMaskedLM``, ``BertForMaskedLM``, ...).
        tokenizer: Its tokenizer. It must define a mask and a pad token. ``None`` is accepted for
            families with a known alphabet (RNA-FM; ESM-1b/ESM-2 with the 33-token protein
            vocabulary): see :mod:`biocoreset.adapters.hf_families`.
        masking: Masking configuration.
        max_length: Residue limit; default from ``config.max_position_embeddings`` minus the
            special tokens the tokenizer adds and the positions the family's position scheme
            skips (:meth:`~biocoreset.adapters.hf_families.ModelFamily.max_length`).
        long_policy: ``"truncate"`` or ``"error"`` for longer sequences.
        unknown: ``"error"`` (default) when the tokenizer maps a letter to its unknown token, or
            ``"unk"`` to keep the unknown token (counted in :attr:`stats`).
        loss_mode: ``"masked"`` (default) or ``"paper-compat"`` (see
            :class:`~biocoreset.adapters.base.MaskedLMAdapter`).
        attend_to_padding: Run the model without its attention padding mask (see
            :class:`~biocoreset.adapters.base.MaskedLMAdapter`; :func:`logits_attending_to_padding`).
        pad_to: Pad every row to this many tokens.
        truncation: ``"keep-eos"`` or ``"first-tokens"``.

    Attributes:
        family: Name of the recognised model family (``"esm-2"``, ``"bert"``, ``"multimolecule"``,
            ``"generic"``...).
        alphabet: For a character-level tokenizer, its residue letters (derived from the
            vocabulary; used by input validation), else ``None``.
    """

    name = "hf"

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any = None,
        *,
        masking: MaskingConfig | None = None,
        max_length: int | None = None,
        long_policy: str = "truncate",
        unknown: str = "error",
        loss_mode: str = "masked",
        attend_to_padding: bool = False,
        pad_to: int | None = None,
        truncation: str = "keep-eos",
    ) -> None:
        family = detect_family(model)
        if tokenizer is None and family.default_tokenizer is not None:
            tokenizer = family.default_tokenizer(getattr(model, "config", None))
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
        # The family knows the position scheme (ESM/RoBERTa offset positions by pad + 1).
        limit = family.max_length(model, n_special)
        if max_length is None:
            max_length = limit or 1022
        elif limit is not None and int(max_length) > limit:
            raise ConfigError(
                f"max_length={max_length} is more than this model has positions for: its "
                f"max_position_embeddings allows at most {limit} residues. Give max_length <= "
                f"{limit} (longer sequences are then truncated, or use long_policy)."
            )
        self.family = family.name
        self._family = family
        super().__init__(
            model,
            masking=masking,
            max_length=max_length,
            long_policy=long_policy,
            loss_mode=loss_mode,
            attend_to_padding=attend_to_padding,
            pad_to=pad_to,
            truncation=truncation,
        )
        self.mask_token_id = int(tokenizer.mask_token_id)
        self.pad_token_id = int(tokenizer.pad_token_id)
        special = set(tokenizer.all_special_ids)
        vocab_size = getattr(getattr(model, "config", None), "vocab_size", len(tokenizer))
        self.random_token_ids = [
            i for i in range(min(len(tokenizer), vocab_size)) if i not in special
        ]
        self._special = special
        self._unk = tokenizer.unk_token_id
        self.alphabet = char_alphabet(tokenizer)

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
        """Logits of the wrapped model (without its attention padding mask when
        ``attend_to_padding``)."""
        if self.attend_to_padding:
            return logits_attending_to_padding(self.model, input_ids, attention_mask)
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits

    def parameter_groups(self) -> dict[str, list[str]]:
        """Readable groups of the trainable parameters, named by the model's family
        (:mod:`biocoreset.adapters.hf_families`)."""
        unused = set(self.unused_parameters())
        names = [n for n, p in self.model.named_parameters() if p.requires_grad and n not in unused]
        return self._family.parameter_groups(names)

    @classmethod
    def factory(cls) -> Callable[..., Any]:
        """The ``hf`` factory, :func:`make_hf_adapter` (a subclass registered as it is: its
        constructor, unless it names its own)."""
        return make_hf_adapter if cls is HFAdapter else cls

    @classmethod
    def from_path(  # type: ignore[override]
        cls,
        path: str | os.PathLike[str],
        *,
        tokenizer: Any = None,
        random_init: bool = False,
        **options: Any,
    ) -> HFAdapter:
        """Load a local transformers model folder (what ``--model PATH`` does for ``hf``).

        The folder holds ``config.json`` and weights (``model.safetensors``, ``pytorch_model.bin``,
        or ``model.pt`` as ``biocoreset finetune`` writes) and usually the tokenizer. A tokenizer
        that transformers cannot load is replaced by the family's own when the family has one
        (RNA-FM, ESM), so a folder the library saved always loads. A folder whose ``vocab.txt`` is
        special tokens and single upper-case residues (AntiBERTy, ProtBERT-style) gets a
        per-residue tokenizer over that vocabulary
        (:func:`~biocoreset.adapters.residue_tokenizer.repair_residue_tokenizer`): transformers'
        own ``BertTokenizer`` would map every residue to ``[UNK]``.

        Args:
            path: The model folder. Nothing is downloaded.
            tokenizer: Use this tokenizer instead of the folder's.
            random_init: Build the architecture from ``config.json`` only (random weights).
            **options: :class:`HFAdapter` options.

        Raises:
            ConfigError: ``path`` is not a folder with ``config.json``, or no usable tokenizer.
        """
        from transformers import AutoConfig, AutoModelForMaskedLM, AutoTokenizer

        p = Path(path)
        if not (p.is_dir() and (p / "config.json").is_file()):
            raise ConfigError(
                f"{str(p)!r} is not a transformers model folder (no config.json); the 'hf' adapter "
                "loads folders. For a state dict name the adapter that builds its architecture "
                "(--adapter rna-fm / esmc), or pass the folder with --model and the file with "
                "--weights."
            )
        weights = find_weights(p)
        if random_init or weights is None or weights.name == "model.pt":
            model = AutoModelForMaskedLM.from_config(
                AutoConfig.from_pretrained(p, local_files_only=True)
            )
            if not random_init:
                if weights is None:
                    raise ConfigError(f"{str(p)!r} has a config.json but no weights file.")
                load_into(model, read_state_dict(weights), weights)
        else:
            model = AutoModelForMaskedLM.from_pretrained(p, local_files_only=True)
        if tokenizer is None:
            try:
                tokenizer = AutoTokenizer.from_pretrained(p, local_files_only=True)
            except (ValueError, OSError, TypeError, KeyError) as exc:
                if detect_family(model).default_tokenizer is None:
                    raise ConfigError(
                        f"the tokenizer in {str(p)!r} cannot be loaded ({exc}); save it with the "
                        "model (tokenizer.save_pretrained) or pass tokenizer=."
                    ) from exc
            else:
                # A vocab.txt of upper-case residues loads as a BertTokenizer that maps every
                # residue to [UNK]: rebuild it per residue (same ids).
                tokenizer = repair_residue_tokenizer(tokenizer)
        return cls(model.eval(), tokenizer, **options)


@declare_options(HFAdapter)
def make_hf_adapter(
    model: torch.nn.Module | None = None, tokenizer: Any = None, **options: Any
) -> HFAdapter:
    """Build an :class:`HFAdapter` for ``model`` (a transformers masked LM) and its ``tokenizer``
    (the ``hf`` factory; its options are :class:`HFAdapter`'s).

    Raises:
        ConfigError: No model was given.

    >>> from biocoreset.testing import tiny_esm
    >>> model, tokenizer = tiny_esm()
    >>> make_hf_adapter(model, tokenizer, long_policy="error").long_policy
    'error'
    """
    if model is None:
        raise ConfigError("the 'hf' adapter needs a model: score(model, ..., tokenizer=...).")
    return HFAdapter(model, tokenizer, **options)

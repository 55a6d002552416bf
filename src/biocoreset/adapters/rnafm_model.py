"""RNA-FM as a ``transformers.EsmForMaskedLM``: config, builder, checkpoint conversion, tokenizer.

RNA-FM (Chen et al., 2022) is an ESM-1b transformer: 12 pre-norm layers, width 640, FFN 5120,
20 heads, learned absolute positions, a layer norm before and after the encoder, and a RoBERTa
LM head tied to the token embeddings. It therefore loads into ``EsmForMaskedLM`` after renaming
the official keys; logits then agree with the ``fm`` package (``rna-fm``) to float32 round-off.

This module does not import ``fm``: the alphabet is hard-coded and the official checkpoint
(``RNA-FM_pretrained.pth``: ``{"args": argparse.Namespace, "model": state_dict}``) is read with
``torch.load(weights_only=True)``, allowing only ``argparse.Namespace`` in a scoped context.
Nothing is ever downloaded.

The ``<mask>`` embedding row:
    ``fm``'s loader zeroes row 24 (``<mask>``) of the token embeddings before loading. Because the
    LM decoder is tied to that matrix, this changes both the input embedding of masked positions
    (zero vector plus position) and the ``<mask>`` output logit (bias only). Masked-LM losses are
    therefore *not* the same with and without the zeroing whenever the row is non-zero.
    :func:`~biocoreset.adapters.rnafm_checkpoint.load_rnafm_checkpoint` zeroes it by default (``zero_mask_embedding=True``) so that it
    reproduces ``fm.pretrained.rna_fm_t12``; :func:`~biocoreset.adapters.rnafm_checkpoint.convert_rnafm_state_dict` only renames.

Attention:
    Models are built with ``attn_implementation="sdpa"`` (PyTorch's fused
    ``scaled_dot_product_attention``; flash / memory-efficient kernels on a GPU) where the installed
    transformers supports it for ESM, else ``"eager"`` (:func:`default_attention`). The gradient
    engine hooks the Linear / Embedding / LayerNorm modules, never the softmax, so both give the same
    per-sample gradients (float64: to round-off, ~1e-15). Pass ``attn_implementation="eager"`` for
    logits bit-identical to the ``fm`` package on one machine (the same operations) or for attention maps (``output_attentions=True``
    returns none under sdpa).

Example:
    >>> model = build_rnafm("tiny")
    >>> tok = rnafm_tokenizer()
    >>> batch = tok(["ACGU", "GGN"], padding=True, return_tensors="pt")
    >>> tuple(model(**batch).logits.shape)
    (2, 6, 25)
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from transformers import EsmConfig, EsmForMaskedLM, EsmTokenizer

from biocoreset.errors import ConfigError, did_you_mean

__all__ = [
    "ATTENTION_IMPLEMENTATIONS",
    "RNAFM_CLS_ID",
    "RNAFM_EOS_ID",
    "RNAFM_MASK_ID",
    "RNAFM_PAD_ID",
    "RNAFM_PRESETS",
    "RNAFM_TOKENS",
    "RNAFM_UNK_ID",
    "RnaFmTokenizer",
    "build_rnafm",
    "default_attention",
    "resolve_attention",
    "rnafm_config",
    "rnafm_tokenizer",
]

#: The official RNA-FM alphabet in id order (``fm.Alphabet.from_architecture("roberta_large",
#: theme="rna").all_toks``).
RNAFM_TOKENS: tuple[str, ...] = (
    "<cls>", "<pad>", "<eos>", "<unk>",
    "A", "C", "G", "U",
    "R", "Y", "K", "M", "S", "W", "B", "D", "H", "V", "N", "-",
    "<null_1>", "<null_2>", "<null_3>", "<null_4>",
    "<mask>",
)  # fmt: skip
RNAFM_CLS_ID, RNAFM_PAD_ID, RNAFM_EOS_ID, RNAFM_UNK_ID = 0, 1, 2, 3
RNAFM_MASK_ID = 24

#: Named sizes, in ``EsmConfig`` field names: ``"rna-fm"`` (the published model, 12 x 640),
#: ``"base"`` (6 x 320), ``"small"`` (4 x 64, the CPU replication's size in
#: ``examples/replicate_cpu.py``) and ``"tiny"`` (2 x 32, tests). Parameter counts:
#: :func:`biocoreset.modelio.model_sizes`.
RNAFM_PRESETS: dict[str, dict[str, int]] = {
    "rna-fm": dict(
        num_hidden_layers=12, hidden_size=640, intermediate_size=5120, num_attention_heads=20
    ),
    "base": dict(
        num_hidden_layers=6, hidden_size=320, intermediate_size=1280, num_attention_heads=10
    ),
    "small": dict(
        num_hidden_layers=4, hidden_size=64, intermediate_size=256, num_attention_heads=4
    ),
    "tiny": dict(num_hidden_layers=2, hidden_size=32, intermediate_size=64, num_attention_heads=4),
}

# Architecture constants shared by every RNA-FM-shaped model (ESM-1b).
_FIXED: dict[str, Any] = dict(
    vocab_size=len(RNAFM_TOKENS),
    pad_token_id=RNAFM_PAD_ID,
    mask_token_id=RNAFM_MASK_ID,
    position_embedding_type="absolute",
    emb_layer_norm_before=True,
    token_dropout=False,
    max_position_embeddings=1026,  # 1024 positions + padding_idx + 1 (fairseq offset)
    layer_norm_eps=1e-5,  # torch.nn.LayerNorm default, as fm's ESM1bLayerNorm
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
    tie_word_embeddings=True,
)


ATTENTION_IMPLEMENTATIONS = ("sdpa", "eager")
"""Attention implementations accepted by the builders (``attn_implementation=``)."""


def default_attention() -> str:
    """``"sdpa"`` when this transformers' ``EsmForMaskedLM`` supports it, else ``"eager"``.

    >>> default_attention() in ATTENTION_IMPLEMENTATIONS
    True
    """
    return "sdpa" if getattr(EsmForMaskedLM, "_supports_sdpa", False) else "eager"


def resolve_attention(value: str | None) -> str:
    """The attention implementation to build with: ``value`` checked, ``None`` → the default;
    ``"sdpa"`` falls back to ``"eager"`` where transformers has no sdpa path for ESM.

    >>> resolve_attention("eager")
    'eager'
    """
    if value is None:
        return default_attention()
    if value not in ATTENTION_IMPLEMENTATIONS:
        raise ConfigError(
            f"attn_implementation must be one of {ATTENTION_IMPLEMENTATIONS} or None (sdpa where "
            f"supported), got {value!r}." + did_you_mean(str(value), ATTENTION_IMPLEMENTATIONS)
        )
    if value == "sdpa" and default_attention() != "sdpa":
        return "eager"  # this transformers has no sdpa path for ESM
    return value


def rnafm_config(size: str | Mapping[str, Any] = "rna-fm", **overrides: Any) -> EsmConfig:
    """Build the ``EsmConfig`` of an RNA-FM-shaped model.

    Args:
        size: A name of :data:`RNAFM_PRESETS` (``"rna-fm"``: 12 x 640, ``"base"``, ``"small"``,
            ``"tiny"``: 2 x 32) or a mapping of ``EsmConfig`` fields applied on top of the
            ``"rna-fm"`` preset.
        **overrides: Further ``EsmConfig`` fields (applied last); ``attn_implementation`` is
            ``"sdpa"`` (default where supported, see :func:`default_attention`) or ``"eager"``.

    Returns:
        The config.

    Raises:
        ConfigError: ``size`` names no preset, or a bad ``attn_implementation``.
    """
    if isinstance(size, Mapping):
        preset: dict[str, Any] = {**RNAFM_PRESETS["rna-fm"], **size}
    elif size in RNAFM_PRESETS:
        preset = dict(RNAFM_PRESETS[size])
    else:
        raise ConfigError(
            f"unknown RNA-FM size {size!r}; choose one of {sorted(RNAFM_PRESETS)} or pass a dict."
            + did_you_mean(str(size), RNAFM_PRESETS)
        )
    kwargs = {**_FIXED, **preset, **overrides}
    kwargs["attn_implementation"] = resolve_attention(kwargs.get("attn_implementation"))
    return EsmConfig(**kwargs)


def build_rnafm(
    config: EsmConfig | str | Mapping[str, Any] = "rna-fm",
    *,
    attn_implementation: str | None = None,
) -> EsmForMaskedLM:
    """Build a randomly initialised RNA-FM-shaped ``EsmForMaskedLM`` in eval mode.

    Args:
        config: An ``EsmConfig`` or anything :func:`rnafm_config` accepts.
        attn_implementation: ``"sdpa"`` or ``"eager"``; ``None``: the config's, else sdpa where
            supported (see the module notes).

    Returns:
        The model (float32, LM decoder tied to the token embeddings).

    Raises:
        ConfigError: A bad ``attn_implementation``.
    """
    if not isinstance(config, EsmConfig):
        config = rnafm_config(config)
    impl = resolve_attention(attn_implementation or config._attn_implementation)
    model = EsmForMaskedLM._from_config(config, attn_implementation=impl)
    return model.eval()


class RnaFmTokenizer(EsmTokenizer):
    """``EsmTokenizer`` that splits residues per character, exactly as ``fm``'s batch converter.

    Plain ``EsmTokenizer`` splits unknown runs on whitespace (``"ac"`` becomes one ``<unk>``);
    ``fm`` maps each character on its own (two ``<unk>``, and a space is an ``<unk>`` too). Literal
    special-token strings such as ``"<mask>"`` are still recognised here, unlike in ``fm``.
    """

    def _tokenize(self, text: str, **kwargs: Any) -> list[str]:
        return list(text)


def rnafm_tokenizer() -> RnaFmTokenizer:
    """The RNA-FM tokenizer: ``<cls>`` + one id per character + ``<eos>``, padded with ``<pad>``.

    No T->U conversion and no upper-casing: ``T`` and lower-case letters become ``<unk>`` (3), as
    in ``fm``.

    Returns:
        A transformers ``EsmTokenizer`` (subclass) over :data:`RNAFM_TOKENS`.
    """
    with tempfile.TemporaryDirectory(prefix="biocoreset-rnafm-") as tmp:
        vocab = Path(tmp) / "vocab.txt"
        vocab.write_text("\n".join(RNAFM_TOKENS) + "\n", encoding="utf-8")
        tokenizer = RnaFmTokenizer(vocab_file=str(vocab))
    tokenizer.init_kwargs.pop("vocab_file", None)  # the temp file is gone
    return tokenizer

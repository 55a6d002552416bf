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
    :func:`load_rnafm_checkpoint` zeroes it by default (``zero_mask_embedding=True``) so that it
    reproduces ``fm.pretrained.rna_fm_t12``; :func:`convert_rnafm_state_dict` only renames.

Attention:
    Models are built with ``attn_implementation="sdpa"`` (PyTorch's fused
    ``scaled_dot_product_attention``; flash / memory-efficient kernels on a GPU) where the installed
    transformers supports it for ESM, else ``"eager"`` (:func:`default_attention`). The gradient
    engine hooks the Linear / Embedding / LayerNorm modules, never the softmax, so both give the same
    per-sample gradients (float64: to round-off, ~1e-15). Pass ``attn_implementation="eager"`` for
    logits bit-identical to the ``fm`` package or for attention maps (``output_attentions=True``
    returns none under sdpa).

Example:
    >>> model = build_rnafm("tiny")
    >>> tok = rnafm_tokenizer()
    >>> batch = tok(["ACGU", "GGN"], padding=True, return_tensors="pt")
    >>> tuple(model(**batch).logits.shape)
    (2, 6, 25)
"""

from __future__ import annotations

import argparse
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from transformers import EsmConfig, EsmForMaskedLM, EsmTokenizer

from biocoreset.errors import BioCoresetError, ConfigError, did_you_mean

__all__ = [
    "ATTENTION_IMPLEMENTATIONS",
    "RNAFM_CLS_ID",
    "RNAFM_EOS_ID",
    "RNAFM_MASK_ID",
    "RNAFM_PAD_ID",
    "RNAFM_PRESETS",
    "RNAFM_TOKENS",
    "RNAFM_UNK_ID",
    "RnaFmCheckpointError",
    "RnaFmTokenizer",
    "build_rnafm",
    "convert_rnafm_state_dict",
    "default_attention",
    "is_official_checkpoint",
    "load_rnafm_checkpoint",
    "resolve_attention",
    "rnafm_config",
    "rnafm_from_official",
    "rnafm_tokenizer",
    "save_rnafm_checkpoint",
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

_FM_PREFIX = "encoder.sentence_encoder."
_LM_PREFIX = "encoder."
_TOP_KEYS: dict[str, str] = {
    "embed_tokens.weight": "esm.embeddings.word_embeddings.weight",
    "embed_positions.weight": "esm.embeddings.position_embeddings.weight",
    "emb_layer_norm_before.weight": "esm.embeddings.layer_norm.weight",
    "emb_layer_norm_before.bias": "esm.embeddings.layer_norm.bias",
    "emb_layer_norm_after.weight": "esm.encoder.emb_layer_norm_after.weight",
    "emb_layer_norm_after.bias": "esm.encoder.emb_layer_norm_after.bias",
    "lm_head.weight": "lm_head.decoder.weight",
    "lm_head.bias": "lm_head.bias",
    "lm_head.dense.weight": "lm_head.dense.weight",
    "lm_head.dense.bias": "lm_head.dense.bias",
    "lm_head.layer_norm.weight": "lm_head.layer_norm.weight",
    "lm_head.layer_norm.bias": "lm_head.layer_norm.bias",
    "contact_head.regression.weight": "esm.contact_head.regression.weight",
    "contact_head.regression.bias": "esm.contact_head.regression.bias",
}
_LAYER_KEYS: dict[str, str] = {
    "self_attn.q_proj": "attention.self.query",
    "self_attn.k_proj": "attention.self.key",
    "self_attn.v_proj": "attention.self.value",
    "self_attn.out_proj": "attention.output.dense",
    "self_attn_layer_norm": "attention.LayerNorm",
    "fc1": "intermediate.dense",
    "fc2": "output.dense",
    "final_layer_norm": "LayerNorm",
}
_OPTIONAL_FM = frozenset({"contact_head.regression.weight", "contact_head.regression.bias"})
_TIED_FM = ("embed_tokens.weight", "lm_head.weight")
_FM_LAYER_RE = re.compile(r"^layers\.(\d+)\.(.+)\.(weight|bias)$")
_HF_LAYER_RE = re.compile(r"^esm\.encoder\.layer\.(\d+)\.(.+)\.(weight|bias)$")


class RnaFmCheckpointError(BioCoresetError, ValueError):
    """An RNA-FM checkpoint or state dict has unexpected, missing or inconsistent entries."""


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


def _strip_prefix(key: str) -> str:
    if key.startswith(_FM_PREFIX):
        return key[len(_FM_PREFIX) :]
    if key.startswith(_LM_PREFIX + "lm_head."):
        return key[len(_LM_PREFIX) :]
    return key


def convert_rnafm_state_dict(fm_state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an official RNA-FM state dict to ``EsmForMaskedLM`` keys.

    Accepts the checkpoint's keys (``encoder.sentence_encoder.*``, ``encoder.lm_head.*``) or those
    of an ``fm.BioBertModel`` (no prefix). Tensors are not copied and not changed. The tied pair
    ``embed_tokens.weight`` / ``lm_head.weight`` may be given once or twice (then equal).

    Args:
        fm_state_dict: The official state dict (the checkpoint's ``"model"`` entry).

    Returns:
        A state dict for ``EsmForMaskedLM.load_state_dict`` (``contact_head`` keys only if given).

    Raises:
        RnaFmCheckpointError: Unknown keys, missing keys, or untied embedding / decoder weights.
    """
    original = {_strip_prefix(k): k for k in fm_state_dict}
    plain = {_strip_prefix(k): v for k, v in fm_state_dict.items()}
    out: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    layers: set[int] = set()
    for key, value in plain.items():
        if key in _TOP_KEYS:
            out[_TOP_KEYS[key]] = value
            continue
        match = _FM_LAYER_RE.match(key)
        if match and match.group(2) in _LAYER_KEYS:
            idx, name, kind = match.groups()
            layers.add(int(idx))
            out[f"esm.encoder.layer.{idx}.{_LAYER_KEYS[name]}.{kind}"] = value
        else:
            unknown.append(original[key])
    if unknown:
        raise RnaFmCheckpointError(f"unexpected key(s) in the RNA-FM state dict: {sorted(unknown)}")

    emb, dec = (plain.get(k) for k in _TIED_FM)
    if emb is not None and dec is not None and not torch.equal(emb, dec):
        raise RnaFmCheckpointError(
            "'embed_tokens.weight' and 'lm_head.weight' differ; RNA-FM ties them."
        )
    tied = emb if emb is not None else dec
    if tied is None:
        raise RnaFmCheckpointError(
            "missing key(s) in the RNA-FM state dict: ['embed_tokens.weight']"
        )
    out["esm.embeddings.word_embeddings.weight"] = out["lm_head.decoder.weight"] = tied

    expected = set(_TOP_KEYS) - _OPTIONAL_FM - set(_TIED_FM)
    if not any(k.startswith("emb_layer_norm_before.") for k in plain):
        expected -= {"emb_layer_norm_before.weight", "emb_layer_norm_before.bias"}
    for i in range(max(layers, default=-1) + 1):
        expected |= {
            f"layers.{i}.{name}.{kind}" for name in _LAYER_KEYS for kind in ("weight", "bias")
        }
    missing = sorted(expected - set(plain))
    if missing:
        raise RnaFmCheckpointError(
            f"missing key(s) in the RNA-FM state dict (fm names, without 'encoder.sentence_encoder.'): {missing}"
        )
    return out


def _unconvert_state_dict(hf_state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`convert_rnafm_state_dict`, with the official prefixes."""
    top = {v: k for k, v in _TOP_KEYS.items()}
    layer = {v: k for k, v in _LAYER_KEYS.items()}
    out: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, value in hf_state_dict.items():
        if key in top:
            name = top[key]
        elif (match := _HF_LAYER_RE.match(key)) and match.group(2) in layer:
            idx, hf_name, kind = match.groups()
            name = f"layers.{idx}.{layer[hf_name]}.{kind}"
        else:
            unknown.append(key)
            continue
        prefix = _LM_PREFIX if name.startswith("lm_head.") else _FM_PREFIX
        out[prefix + name] = value
    if unknown:
        raise RnaFmCheckpointError(
            f"EsmForMaskedLM key(s) with no RNA-FM equivalent: {sorted(unknown)}"
        )
    if _FM_PREFIX + "embed_tokens.weight" not in out:  # tied decoder saved under one name only
        out[_FM_PREFIX + "embed_tokens.weight"] = out[_LM_PREFIX + "lm_head.weight"]
    out.setdefault(_LM_PREFIX + "lm_head.weight", out[_FM_PREFIX + "embed_tokens.weight"])
    return out


def _config_from_args(args: argparse.Namespace, state: Mapping[str, torch.Tensor]) -> EsmConfig:
    """The ``EsmConfig`` for an official checkpoint's ``args`` (fairseq ``encoder_`` names allowed)."""
    raw = {
        (k[len("encoder_") :] if k.startswith("encoder_") else k): v for k, v in vars(args).items()
    }
    arch = raw.get("arch", "roberta_large")
    if arch != "roberta_large":
        raise RnaFmCheckpointError(
            f"unsupported architecture {arch!r}: only ESM-1b ('roberta_large') is."
        )
    needed = ("layers", "embed_dim", "ffn_embed_dim", "attention_heads", "max_positions")
    absent = [k for k in needed if k not in raw]
    if absent:
        raise RnaFmCheckpointError(f"checkpoint 'args' lacks {absent}")
    return rnafm_config(
        dict(
            num_hidden_layers=int(raw["layers"]),
            hidden_size=int(raw["embed_dim"]),
            intermediate_size=int(raw["ffn_embed_dim"]),
            num_attention_heads=int(raw["attention_heads"]),
        ),
        max_position_embeddings=int(raw["max_positions"]) + RNAFM_PAD_ID + 1,
        # fm decides these two as below (from the state dict, and args.token_dropout)
        emb_layer_norm_before=any(
            _strip_prefix(k).startswith("emb_layer_norm_before.") for k in state
        ),
        token_dropout=bool(raw.get("token_dropout", False)),
    )


def _load_official(path: Path) -> tuple[argparse.Namespace, Mapping[str, torch.Tensor]]:
    if not hasattr(torch.serialization, "safe_globals"):  # torch < 2.5
        raise RnaFmCheckpointError("reading official RNA-FM checkpoints safely needs torch >= 2.5")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle.UnpicklingError and friends: not our format
        raise RnaFmCheckpointError(f"{path} is not a readable RNA-FM checkpoint: {exc}") from exc
    if not is_official_checkpoint(data):
        raise RnaFmCheckpointError(
            f"{path} is not in the official RNA-FM format {{'args': Namespace, 'model': state_dict}}"
        )
    return data["args"], data["model"]


def load_rnafm_checkpoint(
    path: str | Path, *, zero_mask_embedding: bool = True, attn_implementation: str | None = None
) -> EsmForMaskedLM:
    """Load an official RNA-FM checkpoint (e.g. ``RNA-FM_pretrained.pth``) from a local file.

    Args:
        path: Local path of the ``.pth`` file. Nothing is downloaded.
        zero_mask_embedding: Zero the ``<mask>`` row of the (tied) token embeddings, as ``fm``'s
            loader does, so that logits match ``fm.pretrained.rna_fm_t12``. See the module notes.
        attn_implementation: ``"sdpa"`` (default where supported) or ``"eager"`` (logits
            bit-identical to ``fm``).

    Returns:
        An ``EsmForMaskedLM`` in eval mode (float32).

    Raises:
        FileNotFoundError: ``path`` is not a file.
        RnaFmCheckpointError: The file is not in the official format or its keys do not match.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"RNA-FM checkpoint {str(path)!r} not found. biocoreset never downloads weights: fetch "
            "RNA-FM_pretrained.pth yourself and pass its local path."
        )
    args, fm_state = _load_official(path)
    return rnafm_from_official(
        args,
        fm_state,
        zero_mask_embedding=zero_mask_embedding,
        attn_implementation=attn_implementation,
    )


def is_official_checkpoint(data: Any) -> bool:
    """Whether a loaded ``.pth`` object is in the official format ``{"args": Namespace, "model": ...}``.

    >>> is_official_checkpoint({"args": argparse.Namespace(), "model": {}}), is_official_checkpoint({})
    (True, False)
    """
    return (
        isinstance(data, Mapping)
        and isinstance(data.get("args"), argparse.Namespace)
        and isinstance(data.get("model"), Mapping)
    )


def rnafm_from_official(
    args: argparse.Namespace,
    fm_state: Mapping[str, torch.Tensor],
    *,
    zero_mask_embedding: bool = True,
    attn_implementation: str | None = None,
) -> EsmForMaskedLM:
    """The ``EsmForMaskedLM`` of an official checkpoint's ``args`` and ``model`` entries
    (``attn_implementation`` as in :func:`load_rnafm_checkpoint`).

    Raises:
        RnaFmCheckpointError: The keys do not match the architecture ``args`` describe.
    """
    config = _config_from_args(args, fm_state)
    state = convert_rnafm_state_dict(fm_state)
    if zero_mask_embedding:
        emb = state["esm.embeddings.word_embeddings.weight"].clone()
        emb[RNAFM_MASK_ID] = 0
        state["esm.embeddings.word_embeddings.weight"] = state["lm_head.decoder.weight"] = emb
    model = build_rnafm(config, attn_implementation=attn_implementation)
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith("esm.contact_head.")]
    if missing or result.unexpected_keys:
        raise RnaFmCheckpointError(
            f"checkpoint does not fit its own args: missing {missing}, unexpected {result.unexpected_keys}"
        )
    return model.eval()


def save_rnafm_checkpoint(model: EsmForMaskedLM, path: str | Path) -> Path:
    """Write an RNA-FM-shaped ``EsmForMaskedLM`` in the official checkpoint format.

    The file holds ``{"args": argparse.Namespace(arch="roberta_large", layers, embed_dim,
    ffn_embed_dim, attention_heads, max_positions, emb_layer_norm_before, token_dropout),
    "model": {"encoder.sentence_encoder.*", "encoder.lm_head.*"}}`` and loads with both
    :func:`load_rnafm_checkpoint` and ``fm``'s loader.

    Args:
        model: The model (its config must be ESM-1b shaped: absolute positions, tied decoder).
        path: Output file.

    Returns:
        The path written.
    """
    cfg = model.config
    if getattr(cfg, "position_embedding_type", "absolute") != "absolute":
        raise RnaFmCheckpointError("RNA-FM uses absolute position embeddings; this model does not.")
    args = argparse.Namespace(
        arch="roberta_large",
        layers=cfg.num_hidden_layers,
        embed_dim=cfg.hidden_size,
        ffn_embed_dim=cfg.intermediate_size,
        attention_heads=cfg.num_attention_heads,
        max_positions=cfg.max_position_embeddings - RNAFM_PAD_ID - 1,
        emb_layer_norm_before=bool(cfg.emb_layer_norm_before),
        token_dropout=bool(cfg.token_dropout),
    )
    state = _unconvert_state_dict({k: v.detach().cpu() for k, v in model.state_dict().items()})
    path = Path(path)
    torch.save({"args": args, "model": state}, path)
    return path


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

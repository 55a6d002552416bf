"""RNA-FM checkpoints: the official ``.pth`` format read and written, and its state dicts converted.

The official checkpoint (``RNA-FM_pretrained.pth``: ``{"args": argparse.Namespace, "model":
state_dict}``) is read with ``torch.load(weights_only=True)``, allowing only ``argparse.Namespace`` in
a scoped context, and its keys are renamed into ``transformers.EsmForMaskedLM``'s (see
:mod:`biocoreset.adapters.rnafm_model` for the architecture). Nothing is ever downloaded.

Example:
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> from biocoreset.adapters.rnafm_model import build_rnafm
    >>> model = build_rnafm("tiny")
    >>> path = save_rnafm_checkpoint(model, Path(tempfile.mkdtemp()) / "m.pth")
    >>> back = load_rnafm_checkpoint(path, zero_mask_embedding=False)
    >>> all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), back.state_dict().values()))
    True
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from transformers import EsmConfig, EsmForMaskedLM

from biocoreset.adapters.rnafm_model import RNAFM_MASK_ID, RNAFM_PAD_ID, build_rnafm, rnafm_config
from biocoreset.errors import BioCoresetError

__all__ = [
    "RnaFmCheckpointError",
    "convert_rnafm_state_dict",
    "is_official_checkpoint",
    "load_rnafm_checkpoint",
    "rnafm_from_official",
    "save_rnafm_checkpoint",
]

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
        attn_implementation: ``"sdpa"`` (default where supported) or ``"eager"`` (``fm``'s
            operations: logits bit-identical to ``fm`` on one machine).

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

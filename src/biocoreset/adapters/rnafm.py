"""The ``rna-fm`` adapter: RNA-FM (Chen et al., 2022) run as a transformers ``EsmForMaskedLM``.

The model comes from :mod:`biocoreset.adapters.rnafm_model` (an ESM-1b-shaped ``EsmForMaskedLM``
whose logits equal the ``rna-fm`` package's to float32 round-off), so every weight lives in a
hookable module. The adapter adds the official alphabet and the shared sequence hygiene
(:mod:`biocoreset.data.hygiene`):

* one token per letter over the 25-token RNA-FM alphabet (``<cls>`` residues ``<eos>``);
* lower case accepted, ``T`` read as ``U``;
* letters outside ``ACGU``, the IUPAC codes and ``-`` follow ``invalid``: ``"error"`` (default;
  the message names the record and the 1-based position), ``"unk"`` (``<unk>``), ``"replace"`` /
  ``"N"`` (``N``) or ``"skip"``; counts in :attr:`RnaFmAdapter.stats`;
* at most 1,024 positions: 1,022 residues plus ``<cls>``/``<eos>``. Longer sequences follow
  ``long_policy``: ``"truncate"`` (default; the first 1,022 residues), ``"windows"``
  (non-overlapping 1,022-residue windows; the record's loss is the mean over all its masked
  residues, see :mod:`biocoreset.data.hygiene`) or ``"error"``.

Masking is ``docs/design.md``'s: 15% of the residues, chosen by ``(seed, record id)``, BERT 80/10/10 with
random replacements drawn from ``A``, ``C``, ``G``, ``U``.

Building it through the plugin registry (``biocoreset.plugins.create("adapter", "rna-fm", ...)``
or ``score(None, ..., adapter="rna-fm", adapter_options=...)``) takes exactly one model source:
``model=`` (an RNA-FM-shaped ``EsmForMaskedLM``), ``checkpoint=`` (a local official
``RNA-FM_pretrained.pth``; nothing is ever downloaded) or ``size=`` (a name of
:data:`~biocoreset.adapters.rnafm_model.RNAFM_PRESETS`: ``"rna-fm"``, ``"base"``, ``"small"``,
``"tiny"``; random weights). :meth:`RnaFmAdapter.from_path` loads what ``--model PATH`` names: an
official checkpoint, a state dict or a folder the library saved.

Example:
    >>> from biocoreset.plugins import create
    >>> adapter = create("adapter", "rna-fm", size="tiny")
    >>> adapter.encode("r1", "acgtn")[0]
    [0, 4, 5, 6, 7, 18, 2]
    >>> batch = adapter.collate([("r1", "acgtn"), ("r2", "GGCUA")], seed=0)
    >>> tuple(adapter.per_sample_loss(batch).shape), adapter.max_length
    ((2,), 1022)
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from transformers import EsmConfig

from biocoreset.adapters.hf import HFAdapter
from biocoreset.adapters.hygiene import HygieneAdapterMixin
from biocoreset.adapters.rnafm_checkpoint import (
    RnaFmCheckpointError,
    convert_rnafm_state_dict,
    is_official_checkpoint,
    load_rnafm_checkpoint,
    rnafm_from_official,
)
from biocoreset.adapters.rnafm_model import (
    RNAFM_CLS_ID,
    RNAFM_EOS_ID,
    RNAFM_MASK_ID,
    RNAFM_PAD_ID,
    RNAFM_PRESETS,
    RNAFM_TOKENS,
    RNAFM_UNK_ID,
    build_rnafm,
    resolve_attention,
    rnafm_config,
    rnafm_tokenizer,
)
from biocoreset.adapters.weights import (
    as_dtype,
    find_weights,
    load_into,
    peek_state,
    read_state_dict,
)
from biocoreset.data.masking import MaskingConfig
from biocoreset.errors import ConfigError
from biocoreset.plugins.options import declare_options

__all__ = [
    "RNAFM_RANDOM_LETTERS",
    "RnaFmAdapter",
    "make_rnafm_adapter",
    "rnafm_size_of",
    "rnafm_sizes",
]

#: Letters whose tokens replace a masked position in the 10% "random token" case.
RNAFM_RANDOM_LETTERS = "ACGU"

_TOKEN_IDS = {t: i for i, t in enumerate(RNAFM_TOKENS) if len(t) == 1}
_LAYER_RE = re.compile(r"^esm\.encoder\.layer\.(\d+)\.")


class RnaFmAdapter(HygieneAdapterMixin, HFAdapter):
    """Adapter for RNA-FM-shaped ``EsmForMaskedLM`` models.

    Args:
        model: An RNA-FM-shaped ``EsmForMaskedLM`` (25-token vocabulary), e.g. from
            :func:`~biocoreset.adapters.rnafm_model.build_rnafm` or
            :func:`~biocoreset.adapters.rnafm_checkpoint.load_rnafm_checkpoint`.
        tokenizer: Ignored unless given, then it must be over the RNA-FM alphabet (default
            :func:`~biocoreset.adapters.rnafm_model.rnafm_tokenizer`).
        masking: Masking configuration (15%, BERT 80/10/10).
        max_length: Residue limit (default 1,022: 1,024 positions less ``<cls>``/``<eos>``).
        long_policy: ``"truncate"``, ``"windows"`` or ``"error"``.
        invalid: ``"error"``, ``"unk"``, ``"replace"`` (or ``"N"``), ``"skip"``.
        replacement: Letter for ``"replace"`` (default ``N``).
        loss_mode: ``"masked"`` or ``"paper-compat"`` (see
            :class:`~biocoreset.adapters.base.MaskedLMAdapter`).
        attend_to_padding: Run without the attention padding mask, as the released code does.
        pad_to: Pad every row to this many tokens (the released code: 1,024).
        truncation: ``"keep-eos"`` (default: ``<cls>`` + 1,022 residues + ``<eos>``) or
            ``"first-tokens"`` (the released code: the first 1,024 tokens, ``<cls>`` + 1,023
            residues, no ``<eos>``).

    Attributes:
        stats: Counts of what the hygiene did (per tokenisation): ``lowercase_records``,
            ``t_to_u_records``, ``unknown_records``/``unknown_letters``,
            ``replaced_records``/``replaced_letters``, ``skipped_records``, ``truncated``,
            ``windowed``.
        alphabet: The accepted letters when ``invalid="error"``, else ``None`` (the adapter then
            handles every letter itself); read by the pipeline's validator.
        residue_alphabet: The accepted letters: ``ACGU``, IUPAC codes ``RYKMSWBDHVN`` and ``-``.

    Raises:
        ConfigError: Not an RNA-FM-shaped model, or a bad option.

    Example:
        >>> from biocoreset.adapters.rnafm_model import build_rnafm
        >>> adapter = RnaFmAdapter(build_rnafm("tiny"), invalid="unk")
        >>> adapter.encode("r", "AXu")[0], dict(adapter.stats)
        ([0, 4, 3, 7, 2], {})
        >>> _ = adapter.collate([("r", "AXu")], seed=0); dict(adapter.stats)
        {'lowercase_records': 1, 'unknown_records': 1, 'unknown_letters': 1}
    """

    name = "rna-fm"

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any = None,
        *,
        masking: MaskingConfig | None = None,
        max_length: int | None = None,
        long_policy: str = "truncate",
        invalid: str = "error",
        replacement: str | None = None,
        loss_mode: str = "masked",
        attend_to_padding: bool = False,
        pad_to: int | None = None,
        truncation: str = "keep-eos",
    ) -> None:
        config = getattr(model, "config", None)
        if type(model).__name__ != "EsmForMaskedLM" or int(getattr(config, "vocab_size", 0)) != len(
            RNAFM_TOKENS
        ):
            raise ConfigError(
                f"the 'rna-fm' adapter needs an RNA-FM-shaped EsmForMaskedLM (25-token vocabulary), got "
                f"{type(model).__name__}"
                + (f" with vocab_size={config.vocab_size}" if config is not None else "")
                + ". Build one with biocoreset.adapters.rnafm_model.build_rnafm / rnafm_checkpoint.load_rnafm_checkpoint, "
                "or use the generic 'hf' adapter with the model's own tokenizer."
            )
        if tokenizer is None:
            tokenizer = rnafm_tokenizer()
        elif tuple(tokenizer.convert_ids_to_tokens(list(range(len(RNAFM_TOKENS))))) != RNAFM_TOKENS:
            raise ConfigError(
                "the tokenizer given to the 'rna-fm' adapter is not over the RNA-FM alphabet."
            )
        super().__init__(
            model,
            tokenizer,
            masking=masking,
            max_length=max_length,
            long_policy="truncate",  # the mixin sets the real policy (it also knows "windows")
            unknown="unk",
            loss_mode=loss_mode,
            attend_to_padding=attend_to_padding,
            pad_to=pad_to,
            truncation=truncation,
        )
        self.mask_token_id = RNAFM_MASK_ID
        self.pad_token_id = RNAFM_PAD_ID
        self.random_token_ids = [_TOKEN_IDS[c] for c in RNAFM_RANDOM_LETTERS]
        self._setup_hygiene(
            token_ids=_TOKEN_IDS,
            rna=True,
            invalid=invalid,
            replacement=replacement,
            long_policy=long_policy,
            cls_id=RNAFM_CLS_ID,
            eos_id=RNAFM_EOS_ID,
            unk_id=RNAFM_UNK_ID,
            model_name="RNA-FM",
        )

    def model_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``[B, T, 25]`` logits of one ``EsmForMaskedLM`` call."""
        return HFAdapter.logits(self, input_ids, attention_mask)

    @classmethod
    def factory(cls) -> Callable[..., Any]:
        """The ``rna-fm`` factory, :func:`make_rnafm_adapter` (a subclass registered as it is:
        its constructor, unless it names its own)."""
        return make_rnafm_adapter if cls is RnaFmAdapter else cls

    @classmethod
    def model_sizes(cls) -> dict[str, dict[str, Any]]:
        """The named sizes of ``size=`` (:func:`rnafm_sizes`)."""
        return dict(rnafm_sizes())

    @classmethod
    def from_path(  # type: ignore[override]
        cls,
        path: str | os.PathLike[str],
        *,
        size: str | Mapping[str, Any] | None = None,
        dtype: torch.dtype | str | None = None,
        zero_mask_embedding: bool = True,
        random_init: bool = False,
        tokenizer: Any = None,
        checkpoint: Any = None,
        **options: Any,
    ) -> RnaFmAdapter:
        """Load an RNA-FM-shaped model from a file or folder (what ``--model PATH`` does).

        Args:
            path: An official checkpoint (``RNA-FM_pretrained.pth``: ``{"args", "model"}``); a
                state dict (``.pt``/``.pth``/``.safetensors``, transformers or official key names,
                a ``biocoreset pretrain`` checkpoint); or a folder holding ``config.json`` and
                weights (``biocoreset pretrain``'s ``final/``, ``biocoreset finetune``'s output).
            size: For a bare state dict: a name of
                :data:`~biocoreset.adapters.rnafm_model.RNAFM_PRESETS` or a dict of sizes
                (default: read from the tensor shapes). Ignored when the folder has a config.
            dtype: Cast the model.
            zero_mask_embedding: Official checkpoints only (see
                :func:`~biocoreset.adapters.rnafm_checkpoint.load_rnafm_checkpoint`).
            random_init: Build the architecture only (weights not read from a folder with a config).
            tokenizer: Optional RNA-FM tokenizer.
            checkpoint: Ignored (the source is ``path``).
            **options: :class:`RnaFmAdapter` options.

        Raises:
            FileNotFoundError: ``path`` does not exist (nothing is downloaded).
            ConfigError: A file or folder that holds no RNA-FM-shaped model.
        """
        p = Path(path)
        if p.is_dir() and (p / "config.json").is_file():
            config = EsmConfig.from_pretrained(p)
            if int(getattr(config, "vocab_size", 0)) != len(RNAFM_TOKENS):
                raise ConfigError(
                    f"{str(p)!r} holds a model with vocab_size={config.vocab_size}, not the "
                    "25-token RNA-FM alphabet; load it with the generic 'hf' adapter instead."
                )
            model = build_rnafm(config)
            if not random_init:
                weights = find_weights(p)
                if weights is None:
                    raise ConfigError(f"{str(p)!r} has a config.json but no weights file.")
                load_into(model, read_state_dict(weights), weights)
        else:
            source = find_weights(p) if p.is_dir() else p
            if source is None or not source.is_file():
                raise FileNotFoundError(
                    f"RNA-FM model {str(p)!r} not found: pass an RNA-FM checkpoint (.pth/.pt), a "
                    "state dict or a model folder. biocoreset never downloads weights."
                )
            data = peek_state(source)
            if is_official_checkpoint(data):
                model = rnafm_from_official(
                    data["args"], data["model"], zero_mask_embedding=zero_mask_embedding
                )
            else:
                state = read_state_dict(source)
                if any(k.startswith(("encoder.sentence_encoder.", "layers.")) for k in state):
                    state = convert_rnafm_state_dict(state)
                if size is None:
                    wanted = rnafm_size_of(state)
                else:
                    if isinstance(size, str):
                        rnafm_config(size)  # an unknown name fails here, with the choices
                    wanted = dict(RNAFM_PRESETS[size]) if isinstance(size, str) else dict(size)
                    positions = state.get("esm.embeddings.position_embeddings.weight")
                    if positions is not None:
                        wanted.setdefault("max_position_embeddings", int(positions.shape[0]))
                model = build_rnafm(wanted)
                load_into(model, state, source)
        dt = as_dtype(dtype)
        if dt is not None:
            model.to(dt)  # type: ignore[arg-type]  # transformers types .to() without dtypes
        return cls(model.eval(), tokenizer, **options)


@declare_options(RnaFmAdapter)
def make_rnafm_adapter(
    model: torch.nn.Module | None = None,
    tokenizer: Any = None,
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    size: str | None = None,
    dtype: torch.dtype | str | None = None,
    zero_mask_embedding: bool = True,
    attn_implementation: str | None = None,
    **options: Any,
) -> RnaFmAdapter:
    """Build an :class:`RnaFmAdapter` from exactly one model source (the ``rna-fm`` factory).

    Args:
        model: A prebuilt RNA-FM-shaped ``EsmForMaskedLM``.
        tokenizer: Optional RNA-FM tokenizer (checked, else built).
        checkpoint: Local path of an official RNA-FM checkpoint (``RNA-FM_pretrained.pth``).
        size: A name of :data:`~biocoreset.adapters.rnafm_model.RNAFM_PRESETS` (``"rna-fm"``:
            12 x 640, 99.5M parameters; ``"base"``, ``"small"``, ``"tiny"``) or a dict of
            ``EsmConfig`` sizes, randomly initialised.
        dtype: Cast the model (``torch.float64`` or ``"float64"`` for exact tests).
        zero_mask_embedding: With ``checkpoint``: zero the ``<mask>`` embedding row as ``fm`` does.
        attn_implementation: ``"sdpa"`` or ``"eager"``; ``None``: sdpa where supported for a built
            or loaded model, and a given ``model`` as it is (see
            :mod:`biocoreset.adapters.rnafm_model`).
        **options: :class:`RnaFmAdapter` options (``invalid``, ``long_policy``, ``masking``...).

    Raises:
        ConfigError: None or several model sources, or a bad option.
        FileNotFoundError: ``checkpoint`` is not a file (nothing is downloaded).

    >>> make_rnafm_adapter(size="tiny", dtype="float64").model.dtype
    torch.float64
    """
    given = [
        k
        for k, v in (("model", model), ("checkpoint", checkpoint), ("size", size))
        if v is not None
    ]
    if len(given) != 1:
        raise ConfigError(
            "the 'rna-fm' adapter needs exactly one of model= (an EsmForMaskedLM), checkpoint= (a local "
            f"RNA-FM_pretrained.pth) or size= (one of {sorted(RNAFM_PRESETS)}, random weights); got "
            f"{', '.join(given) if given else 'none'}."
        )
    if checkpoint is not None:
        model = load_rnafm_checkpoint(
            Path(checkpoint),
            zero_mask_embedding=zero_mask_embedding,
            attn_implementation=attn_implementation,
        )
    elif size is not None:
        model = build_rnafm(size, attn_implementation=attn_implementation)
    assert model is not None
    if checkpoint is None and size is None and attn_implementation is not None:
        model.set_attn_implementation(resolve_attention(attn_implementation))  # type: ignore[operator]
    dt = as_dtype(dtype)
    if dt is not None:
        model = model.to(dt)
    return RnaFmAdapter(model, tokenizer, **options)


def rnafm_sizes() -> dict[str, dict[str, int]]:
    """The named sizes with their shapes and parameter counts (built on the meta device: no memory).

    >>> rnafm_sizes()["rna-fm"]["params"]
    99521546
    """
    out = {}
    for name, preset in RNAFM_PRESETS.items():
        with torch.device("meta"):
            model = build_rnafm(name)
        out[name] = {
            "layers": preset["num_hidden_layers"],
            "hidden": preset["hidden_size"],
            "heads": preset["num_attention_heads"],
            "ffn": preset["intermediate_size"],
            "params": sum(p.numel() for p in model.parameters()),
        }
    return out


def rnafm_size_of(state: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """The ``EsmConfig`` sizes of an RNA-FM-shaped state dict (transformers or official key names).

    Layers, widths and positions are read from the tensor shapes; the number of attention heads
    (not visible in a state dict) from the named size in :data:`RNAFM_PRESETS` with the same
    layers and widths.

    Raises:
        RnaFmCheckpointError: Not an RNA-FM-shaped state dict, or a size no preset matches (pass
            ``size={...}`` with ``num_attention_heads`` then).

    >>> rnafm_size_of(build_rnafm("tiny").state_dict())["num_attention_heads"]
    4
    """
    if any(k.startswith(("encoder.sentence_encoder.", "layers.", "embed_tokens.")) for k in state):
        state = convert_rnafm_state_dict(state)
    try:
        emb = state["esm.embeddings.word_embeddings.weight"]
        pos = state["esm.embeddings.position_embeddings.weight"]
        ffn = state["esm.encoder.layer.0.intermediate.dense.weight"]
    except KeyError as exc:
        raise RnaFmCheckpointError(
            f"not an RNA-FM-shaped state dict: no {exc.args[0]!r} entry."
        ) from None
    layers = 1 + max(int(m.group(1)) for k in state if (m := _LAYER_RE.match(k)))
    size = dict(
        num_hidden_layers=layers,
        hidden_size=int(emb.shape[1]),
        intermediate_size=int(ffn.shape[0]),
        max_position_embeddings=int(pos.shape[0]),
    )
    for preset in RNAFM_PRESETS.values():
        if all(
            preset[k] == size[k] for k in ("num_hidden_layers", "hidden_size", "intermediate_size")
        ):
            return {**size, "num_attention_heads": preset["num_attention_heads"]}
    raise RnaFmCheckpointError(
        f"the state dict has {layers} layers of width {size['hidden_size']}, which is none of the "
        f"named sizes {sorted(RNAFM_PRESETS)}; pass size={{...}} with its num_attention_heads."
    )

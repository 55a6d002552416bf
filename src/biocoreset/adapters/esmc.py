"""The ``esmc`` adapter: EvolutionaryScale's ESM-C protein language models (package ``esm``).

Built on ``esm.models.esmc.ESMC`` (see :mod:`biocoreset.adapters.esmc_model`; install ``esm``
without replacing torch as in ``docs/install-esm.md``) and its ``EsmSequenceTokenizer``:

* logits are restricted to the 33 real tokens (the head has 64 columns);
* one token per letter over the protein alphabet ``LAGVSERTIDPKQNFYMHWCXBUZO`` (plus the
  vocabulary's ``.`` and ``-``); lower case accepted; other letters follow ``invalid``
  (``"error"``, ``"unk"``, ``"replace"``/``"X"``, ``"skip"``; see :mod:`biocoreset.data.hygiene`);
* ESM-C has rotary positions and no hard limit; it was trained on up to 2,048 tokens, so the
  default residue limit is 2,046, with the same ``long_policy`` choices as ``rna-fm``;
* masking: 15% of the residues by ``(seed, record id)``, BERT 80/10/10, random replacements drawn
  from the 20 standard amino acids;
* ``use_flash_attn=False``: plain SDPA attention on any device.

Every ESM-C parameter lives in an ``nn.Linear``, ``nn.Embedding`` or ``nn.LayerNorm`` and is
used there (the bias-free ``q_ln``/``k_ln``/final norm, SwiGLU, parameter-free rotary embedding), so
the hook engine covers it all. Parameter groups: ``embeddings`` (``embed``), ``layer i
attention`` (``transformer.blocks.i.attn.*``), ``layer i ffn`` (``transformer.blocks.i.ffn.*``),
``final norm`` (``transformer.norm``) and ``lm head`` (``sequence_head``).

Factory (``biocoreset.plugins.create("adapter", "esmc", ...)``): ``model=`` (an ``ESMC``), or
``name=`` (``"esmc_300m"``, ``"esmc_600m"``, ``"tiny"``; spelt ``model_name=`` through
``plugins.create``, whose own second parameter is ``name``) with ``weights=PATH`` (a local ``.pth``
state dict), ``hf_cache=True`` (an already filled Hugging Face cache, read offline) or
``random_init=True``. Nothing is ever downloaded. :meth:`EsmcAdapter.from_path` loads what
``--model PATH`` names (a state dict, its architecture read from the tensor shapes, or a folder
the library saved).

Example:
    >>> import pytest; _ = pytest.importorskip("esm.models.esmc")  # optional dependency
    >>> from biocoreset.plugins import create
    >>> adapter = create("adapter", "esmc", model_name="tiny")
    >>> adapter.encode("p1", "mkV")[0]
    [0, 20, 15, 7, 2]
    >>> batch = adapter.collate([("p1", "MKV"), ("p2", "ACDEFG")], seed=0)
    >>> tuple(adapter.logits(batch.input_ids, batch.attention_mask).shape)
    (2, 8, 33)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from biocoreset.adapters.base import MaskedLMAdapter
from biocoreset.adapters.esmc_model import (
    ESMC_CONFIGS,
    ESMC_HF_WEIGHTS,
    ESMC_MASK_ID,
    ESMC_PAD_ID,
    EsmcCheckpointError,
    build_esmc,
    esmc_logits,
    esmc_size_of,
    esmc_sizes,
    esmc_tokenizer,
    load_esmc_from_hf_cache,
    load_esmc_weights,
)
from biocoreset.adapters.hygiene import HygieneAdapterMixin
from biocoreset.adapters.weights import as_dtype, find_weights, read_state_dict
from biocoreset.data.masking import MaskingConfig
from biocoreset.errors import ConfigError
from biocoreset.plugins.options import declare_options

__all__ = ["ESMC_MAX_LENGTH", "ESMC_RANDOM_LETTERS", "EsmcAdapter", "make_esmc_adapter"]

#: Default residue limit: ESM-C's 2,048-token training context less ``<cls>``/``<eos>``.
ESMC_MAX_LENGTH = 2046

#: Letters whose tokens replace a masked position in the 10% "random token" case.
ESMC_RANDOM_LETTERS = "ACDEFGHIKLMNPQRSTVWY"


class EsmcAdapter(HygieneAdapterMixin, MaskedLMAdapter):
    """Adapter for ``esm.models.esmc.ESMC`` models.

    Args:
        model: An ``ESMC`` model (e.g. :func:`~biocoreset.adapters.esmc_model.build_esmc`).
        tokenizer: Its ``EsmSequenceTokenizer`` (default: a new one).
        masking: Masking configuration (15%, BERT 80/10/10).
        max_length: Residue limit (default :data:`ESMC_MAX_LENGTH`).
        long_policy: ``"truncate"``, ``"windows"`` or ``"error"``.
        invalid: ``"error"``, ``"unk"``, ``"replace"`` (or ``"X"``), ``"skip"``.
        replacement: Letter for ``"replace"`` (default ``X``).
        loss_mode: ``"masked"`` or ``"paper-compat"``.
        pad_to: Pad every row to this many tokens.
        truncation: ``"keep-eos"`` or ``"first-tokens"``.

    Attributes:
        stats: Hygiene counts (see :class:`~biocoreset.adapters.rnafm.RnaFmAdapter`).
        alphabet: Accepted letters when ``invalid="error"``, else ``None``.
        residue_alphabet: Accepted letters.
        tokenizer: The ``EsmSequenceTokenizer``.

    Raises:
        ConfigError: Not an ESM-C model, or a bad option.
        ImportError: ``esm`` is not installed (with the install hint).
    """

    name = "esmc"

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        tokenizer: Any = None,
        masking: MaskingConfig | None = None,
        max_length: int = ESMC_MAX_LENGTH,
        long_policy: str = "truncate",
        invalid: str = "error",
        replacement: str | None = None,
        loss_mode: str = "masked",
        pad_to: int | None = None,
        truncation: str = "keep-eos",
    ) -> None:
        tokenizer = tokenizer if tokenizer is not None else esmc_tokenizer()
        from esm.models.esmc import ESMC

        if not isinstance(model, ESMC):
            raise ConfigError(
                f"the 'esmc' adapter needs an esm.models.esmc.ESMC model, got {type(model).__name__}. "
                "Build one with biocoreset.adapters.esmc_model.build_esmc / load_esmc_weights."
            )
        super().__init__(
            model,
            masking=masking,
            max_length=max_length,
            long_policy="truncate",
            loss_mode=loss_mode,
            pad_to=pad_to,
            truncation=truncation,
        )
        self.tokenizer = tokenizer
        vocab = tokenizer.get_vocab()
        special = set(tokenizer.all_special_tokens)
        token_ids = {t: int(i) for t, i in vocab.items() if len(t) == 1 and t not in special}
        self.mask_token_id = int(tokenizer.mask_token_id)
        self.pad_token_id = int(tokenizer.pad_token_id)
        if (self.mask_token_id, self.pad_token_id) != (ESMC_MASK_ID, ESMC_PAD_ID):
            raise ConfigError(
                "the tokenizer given to the 'esmc' adapter is not ESM-C's EsmSequenceTokenizer."
            )
        self.random_token_ids = [token_ids[c] for c in ESMC_RANDOM_LETTERS]
        self._setup_hygiene(
            token_ids=token_ids,
            rna=False,
            invalid=invalid,
            replacement=replacement,
            long_policy=long_policy,
            cls_id=int(tokenizer.cls_token_id),
            eos_id=int(tokenizer.eos_token_id),
            unk_id=int(tokenizer.unk_token_id),
            model_name="ESM-C",
        )

    def model_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``[B, T, 33]`` logits of one ESM-C call (padding is read from ``<pad>`` tokens)."""
        return esmc_logits(self.model, input_ids)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``[B, T, d_model]`` final-layer embeddings (what the benchmark harness's frozen features
        and fine-tuning read; padding is read from ``<pad>`` tokens)."""
        out = self.model(sequence_tokens=input_ids).embeddings
        if out is None:  # pragma: no cover - every released ESMC returns embeddings
            raise ConfigError("this ESM-C model returned no embeddings; cannot give features.")
        return out

    @classmethod
    def factory(cls) -> Callable[..., Any]:
        """The ``esmc`` factory, :func:`make_esmc_adapter` (a subclass registered as it is: its
        constructor, unless it names its own)."""
        return make_esmc_adapter if cls is EsmcAdapter else cls

    @classmethod
    def model_sizes(cls) -> dict[str, dict[str, Any]]:
        """The named sizes of ``name=`` (:func:`~biocoreset.adapters.esmc_model.esmc_sizes`)."""
        return dict(esmc_sizes())

    @classmethod
    def from_path(  # type: ignore[override]
        cls,
        path: str | os.PathLike[str],
        *,
        name: str | Mapping[str, int] | None = None,
        model_name: str | Mapping[str, int] | None = None,
        dtype: torch.dtype | str | None = None,
        random_init: bool = False,
        tokenizer: Any = None,
        weights: Any = None,
        **options: Any,
    ) -> EsmcAdapter:
        """Load an ESM-C state dict (what ``--model PATH`` does for ``esmc``).

        Args:
            path: A ``.pth``/``.pt`` state dict (e.g. ``esmc_300m_2024_12_v0.pth``, a
                ``biocoreset pretrain`` checkpoint) or a folder the library saved (``model.pt``).
            name: The architecture: a name of
                :data:`~biocoreset.adapters.esmc_model.ESMC_CONFIGS` or a dict of ``d_model``,
                ``n_heads``, ``n_layers``. Default: the named size whose width and depth match the
                tensor shapes.
            model_name: The same as ``name``.
            dtype: Cast the model.
            random_init: Build the architecture only (random weights).
            tokenizer: Optional ``EsmSequenceTokenizer``.
            weights: Ignored (the source is ``path``).
            **options: :class:`EsmcAdapter` options.

        Raises:
            FileNotFoundError: ``path`` does not exist (nothing is downloaded).
            EsmcCheckpointError: Not an ESM-C state dict, or one that does not fit ``name``.
        """
        if model_name is not None and name not in (None, model_name):
            raise ConfigError(f"name={name!r} and model_name={model_name!r} disagree.")
        arch = model_name if model_name is not None else name
        p = Path(path)
        source = find_weights(p) if p.is_dir() else p
        if source is None or not source.is_file():
            raise FileNotFoundError(
                f"ESM-C weights {str(p)!r} not found: pass a local .pth/.pt state dict or a folder "
                "holding model.pt. biocoreset never downloads weights."
            )
        state = read_state_dict(source)
        model = build_esmc(esmc_size_of(state) if arch is None else arch)
        if not random_init:
            try:
                model.load_state_dict(state, strict=True)
            except RuntimeError as exc:
                raise EsmcCheckpointError(f"{source} does not fit this ESM-C model: {exc}") from exc
        dt = as_dtype(dtype)
        if dt is not None:
            model = model.to(dt)
        return cls(model.eval(), tokenizer=tokenizer, **options)


@declare_options(EsmcAdapter)
def make_esmc_adapter(
    model: torch.nn.Module | None = None,
    tokenizer: Any = None,
    *,
    name: str | None = None,
    model_name: str | None = None,
    weights: str | os.PathLike[str] | None = None,
    hf_cache: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    random_init: bool = False,
    dtype: torch.dtype | str | None = None,
    **options: Any,
) -> EsmcAdapter:
    """Build an :class:`EsmcAdapter` (the ``esmc`` factory). Nothing is downloaded.

    Args:
        model: A prebuilt ``ESMC`` (then ``name``/``weights``/``hf_cache`` must be unset).
        tokenizer: Optional ``EsmSequenceTokenizer``.
        name: A name of :data:`~biocoreset.adapters.esmc_model.ESMC_CONFIGS` (``"esmc_300m"``,
            ``"esmc_600m"``, ``"base"``, ``"small"``, ``"tiny"``) or a dict of sizes.
        model_name: The same as ``name``, for ``biocoreset.plugins.create(kind, name, **options)``
            whose own second parameter is called ``name``.
        weights: Local ``.pth`` state dict to load (e.g. ``esmc_300m_2024_12_v0.pth``).
        hf_cache: Load ``name``'s published weights from an already filled Hugging Face cache,
            offline (``local_files_only=True``).
        cache_dir: Hub cache folder for ``hf_cache`` (default from ``HF_HUB_CACHE``/``HF_HOME``).
        random_init: Allow random weights for ``esmc_300m``/``esmc_600m`` (benchmarks); ``"tiny"``
            is always random unless ``weights`` is given.
        dtype: Cast the model (``torch.float64`` / ``"float64"`` for exact tests).
        **options: :class:`EsmcAdapter` options (``invalid``, ``long_policy``, ``max_length``...).

    Raises:
        ConfigError: Contradictory or missing sources, or an unknown name.
        FileNotFoundError: ``weights`` missing, or not in the cache.

    >>> import pytest; _ = pytest.importorskip("esm.models.esmc")
    >>> make_esmc_adapter(name="tiny", dtype="float64").model.embed.weight.dtype
    torch.float64
    """
    if model_name is not None:
        if name not in (None, model_name):
            raise ConfigError(
                f"name={name!r} and model_name={model_name!r} disagree; pass one of them."
            )
        name = model_name
    if model is not None:
        if name is not None or weights is not None or hf_cache:
            raise ConfigError(
                "the 'esmc' adapter takes model= or name= (with weights= / hf_cache=), not both."
            )
    else:
        if name is None:
            raise ConfigError(
                f"the 'esmc' adapter needs model= (an ESMC) or name= (one of {sorted(ESMC_CONFIGS)})."
            )
        if weights is not None and hf_cache:
            raise ConfigError("pass weights= (a local .pth) or hf_cache=True, not both.")
        if weights is not None:
            model = load_esmc_weights(name, Path(weights))
        elif hf_cache:
            model = load_esmc_from_hf_cache(
                name, cache_dir=None if cache_dir is None else Path(cache_dir)
            )
        elif isinstance(name, str) and name in ESMC_HF_WEIGHTS and not random_init:
            raise ConfigError(
                f"name={name!r} without weights: pass weights='/path/to/{Path(ESMC_HF_WEIGHTS[name][1]).name}', "
                "hf_cache=True (a filled Hugging Face cache, offline), or random_init=True for random weights."
            )
        else:
            model = build_esmc(name)
    dt = as_dtype(dtype)
    if dt is not None:
        model = model.to(dt)
    return EsmcAdapter(model, tokenizer=tokenizer, **options)

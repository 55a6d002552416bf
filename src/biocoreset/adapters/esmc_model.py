"""ESM-C (EvolutionaryScale) models: build, load local or pre-cached weights, logits, tokenizer.

Built on the ``esm`` package's ``esm.models.esmc.ESMC`` (Cambrian Open License), which must be
installed without replacing torch: see ``docs/install-esm.md``. This module imports without
``esm``; its functions raise ``ImportError`` with the install hint when it is absent.

Weights are never downloaded. ``ESMC.from_pretrained`` fetches the Hugging Face repos listed in
:data:`ESMC_HF_WEIGHTS` with ``snapshot_download``; here :func:`load_esmc_weights` reads a local
``.pth`` state dict and :func:`load_esmc_from_hf_cache` reads the same file from an HF cache that
is already filled (``local_files_only=True``).

Example:
    >>> import pytest; _ = pytest.importorskip("esm.models.esmc")  # optional dependency
    >>> model = build_esmc("tiny")
    >>> ids = esmc_tokenizer()(["MKTAYI", "MK"], padding=True, return_tensors="pt")["input_ids"]
    >>> tuple(esmc_logits(model, ids).shape)
    (2, 8, 33)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from biocoreset.errors import BioCoresetError, ConfigError, did_you_mean

if TYPE_CHECKING:
    from esm.models.esmc import ESMC
    from esm.tokenization import EsmSequenceTokenizer

__all__ = [
    "ESMC_CONFIGS",
    "ESMC_HF_WEIGHTS",
    "ESMC_MASK_ID",
    "ESMC_NUM_TOKENS",
    "ESMC_PAD_ID",
    "EsmcCheckpointError",
    "build_esmc",
    "esmc_logits",
    "esmc_size_of",
    "esmc_sizes",
    "esmc_tokenizer",
    "load_esmc_from_hf_cache",
    "load_esmc_weights",
]

#: Real tokens of the ESM-C vocabulary; the embedding and the head have 64 rows / columns.
ESMC_NUM_TOKENS = 33
ESMC_PAD_ID = 1
ESMC_MASK_ID = 32

#: ``ESMC(d_model, n_heads, n_layers)`` per model name: the published ``esmc_300m`` and
#: ``esmc_600m`` (as ``esm.pretrained``), and ``"base"`` (6 x 320), ``"small"`` (4 x 64) and
#: ``"tiny"`` (2 x 64) for CPU runs and tests. Parameter counts:
#: :func:`biocoreset.modelio.model_sizes`.
ESMC_CONFIGS: dict[str, dict[str, int]] = {
    "esmc_300m": dict(d_model=960, n_heads=15, n_layers=30),
    "esmc_600m": dict(d_model=1152, n_heads=18, n_layers=36),
    "base": dict(d_model=320, n_heads=5, n_layers=6),
    "small": dict(d_model=64, n_heads=4, n_layers=4),
    "tiny": dict(d_model=64, n_heads=4, n_layers=2),
}

#: ``(repo_id, filename)`` that ``ESMC.from_pretrained`` reads (esm 3.2.1, ``esm/pretrained.py``).
ESMC_HF_WEIGHTS: dict[str, tuple[str, str]] = {
    "esmc_300m": ("EvolutionaryScale/esmc-300m-2024-12", "data/weights/esmc_300m_2024_12_v0.pth"),
    "esmc_600m": ("EvolutionaryScale/esmc-600m-2024-12", "data/weights/esmc_600m_2024_12_v0.pth"),
}

_INSTALL_HINT = (
    "the 'esm' package is needed for ESM-C; install it without replacing torch as in "
    "docs/install-esm.md (pip install --no-deps esm==3.2.1.post1, then its import dependencies)"
)


class EsmcCheckpointError(BioCoresetError, ValueError):
    """An ESM-C weights file is not a state dict or does not fit the model."""


def _esm() -> tuple[type, type]:
    try:
        from esm.models.esmc import ESMC
        from esm.tokenization import EsmSequenceTokenizer
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    return ESMC, EsmSequenceTokenizer


def esmc_tokenizer() -> EsmSequenceTokenizer:
    """The ESM-C sequence tokenizer (33 tokens: ``<cls>`` 0, ``<pad>`` 1, ``<eos>`` 2, ``<mask>`` 32).

    Returns:
        ``esm.tokenization.EsmSequenceTokenizer``, a transformers fast tokenizer built in code.
    """
    return _esm()[1]()


def build_esmc(name_or_dict: str | Mapping[str, int] = "esmc_300m") -> ESMC:
    """Build a randomly initialised ESM-C in eval mode (float32, no flash attention).

    Args:
        name_or_dict: A key of :data:`ESMC_CONFIGS` or a mapping with ``d_model``, ``n_heads``,
            ``n_layers``.

    Returns:
        The ``esm.models.esmc.ESMC`` model.

    Raises:
        ConfigError: Unknown name or incomplete mapping.
    """
    if isinstance(name_or_dict, Mapping):
        cfg = dict(name_or_dict)
        if set(cfg) != {"d_model", "n_heads", "n_layers"}:
            raise ConfigError(
                f"an ESM-C config needs exactly d_model, n_heads, n_layers; got {sorted(cfg)}"
            )
    elif name_or_dict in ESMC_CONFIGS:
        cfg = ESMC_CONFIGS[name_or_dict]
    else:
        raise ConfigError(
            f"unknown ESM-C model {name_or_dict!r}; choose one of {sorted(ESMC_CONFIGS)}."
            + did_you_mean(str(name_or_dict), ESMC_CONFIGS)
        )
    esmc_cls, tokenizer_cls = _esm()
    model = esmc_cls(**cfg, tokenizer=tokenizer_cls(), use_flash_attn=False)
    return model.eval()


def esmc_sizes() -> dict[str, dict[str, int]]:
    """The named sizes with their shapes and parameter counts (built on the meta device: no memory).

    Raises:
        ImportError: ``esm`` is not installed.

    >>> import pytest; _ = pytest.importorskip("esm.models.esmc")
    >>> esmc_sizes()["esmc_600m"]["params"]
    575036992
    """
    out = {}
    for name, cfg in ESMC_CONFIGS.items():
        with torch.device("meta"):
            model = build_esmc(name)
        out[name] = {
            "layers": cfg["n_layers"],
            "hidden": cfg["d_model"],
            "heads": cfg["n_heads"],
            "params": sum(p.numel() for p in model.parameters()),
        }
    return out


def load_esmc_weights(model_or_name: ESMC | str | Mapping[str, int], path: str | Path) -> ESMC:
    """Load a local ESM-C ``.pth`` state dict (strictly) into a model.

    Args:
        model_or_name: A model to fill in place, or what :func:`build_esmc` accepts.
        path: Local state-dict file, e.g. ``esmc_300m_2024_12_v0.pth``. Read with
            ``weights_only=True``.

    Returns:
        The model, in eval mode.

    Raises:
        FileNotFoundError: ``path`` is not a file.
        EsmcCheckpointError: The file is not a state dict, or keys / shapes do not fit the model.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"ESM-C weights {str(path)!r} not found. biocoreset never downloads weights: pass a "
            "local .pth state dict, or use load_esmc_from_hf_cache with a pre-filled HF cache."
        )
    model = (
        model_or_name if isinstance(model_or_name, torch.nn.Module) else build_esmc(model_or_name)
    )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle.UnpicklingError and friends
        raise EsmcCheckpointError(f"{path} is not a readable ESM-C state dict: {exc}") from exc
    if not (
        isinstance(state, Mapping) and all(isinstance(v, torch.Tensor) for v in state.values())
    ):
        raise EsmcCheckpointError(f"{path} does not hold a state dict (a mapping of tensors)")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise EsmcCheckpointError(f"{path} does not fit this ESM-C model: {exc}") from exc
    return model.eval()


def esmc_size_of(state: Mapping[str, torch.Tensor]) -> str:
    """The name in :data:`ESMC_CONFIGS` whose width and depth match an ESM-C state dict's shapes.

    Raises:
        EsmcCheckpointError: Not an ESM-C state dict, or a size no name matches (pass the
            architecture as a dict then).

    >>> esmc_size_of({"embed.weight": torch.zeros(64, 960),
    ...               **{f"transformer.blocks.{i}.attn.out_proj.weight": torch.zeros(1) for i in range(30)}})
    'esmc_300m'
    """
    if "embed.weight" not in state:
        raise EsmcCheckpointError("not an ESM-C state dict: no 'embed.weight' entry.")
    blocks = {k.split(".")[2] for k in state if k.startswith("transformer.blocks.")}
    d_model, n_layers = int(state["embed.weight"].shape[1]), len(blocks)
    for name, cfg in ESMC_CONFIGS.items():
        if (cfg["d_model"], cfg["n_layers"]) == (d_model, n_layers):
            return name
    raise EsmcCheckpointError(
        f"the ESM-C state dict has {n_layers} layers of width {d_model}, none of the named sizes "
        f"{sorted(ESMC_CONFIGS)}; pass name={{'d_model': {d_model}, 'n_heads': ..., "
        f"'n_layers': {n_layers}}}."
    )


def _hf_cache_dir() -> str | None:
    """The hub cache from the environment *now* (huggingface_hub reads it only at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return str(Path(os.environ["HF_HOME"]) / "hub")
    return None


def load_esmc_from_hf_cache(
    name: str,
    *,
    model: ESMC | None = None,
    cache_dir: str | Path | None = None,
    revision: str | None = None,
) -> ESMC:
    """Load ``esmc_300m`` / ``esmc_600m`` from an already filled Hugging Face cache, offline.

    The cache is the one ``ESMC.from_pretrained`` fills (repo and file in
    :data:`ESMC_HF_WEIGHTS`); it is looked up with ``local_files_only=True``, so nothing is fetched.

    Args:
        name: ``"esmc_300m"`` or ``"esmc_600m"``.
        model: Model to fill; default ``build_esmc(name)``.
        cache_dir: Hub cache folder; default ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else the
            huggingface_hub default.
        revision: Branch, tag or commit; default ``main``.

    Returns:
        The model with its weights, in eval mode.

    Raises:
        ConfigError: ``name`` has no published weights.
        FileNotFoundError: The file is not in the cache.
    """
    if name not in ESMC_HF_WEIGHTS:
        raise ConfigError(
            f"no published ESM-C weights named {name!r}; choose one of {sorted(ESMC_HF_WEIGHTS)}."
            + did_you_mean(str(name), ESMC_HF_WEIGHTS)
        )
    from huggingface_hub import hf_hub_download

    repo_id, filename = ESMC_HF_WEIGHTS[name]
    cache = str(cache_dir) if cache_dir is not None else _hf_cache_dir()
    kwargs: dict[str, Any] = {"cache_dir": cache, "revision": revision, "local_files_only": True}
    try:
        local = hf_hub_download(repo_id, filename, **kwargs)
    except Exception as exc:  # LocalEntryNotFoundError, EntryNotFoundError, ...
        raise FileNotFoundError(
            f"{repo_id}/{filename} is not in the Hugging Face cache ({cache or 'default location'}); "
            "biocoreset does not download it. Fill the cache on a connected machine "
            f"(huggingface-cli download {repo_id} {filename}) or use load_esmc_weights with a path."
        ) from exc
    return load_esmc_weights(name if model is None else model, local)


def esmc_logits(model: ESMC, input_ids: torch.Tensor) -> torch.Tensor:
    """Masked-LM logits over the 33 real tokens (the head's other 31 columns are dropped).

    Runs with gradients (unlike ``ESMC.logits``). Padding is taken from ``input_ids == <pad>``.

    Args:
        model: An ESM-C model.
        input_ids: ``[B, L]`` token ids from :func:`esmc_tokenizer`.

    Returns:
        ``[B, L, 33]`` logits.
    """
    return model(sequence_tokens=input_ids).sequence_logits[..., :ESMC_NUM_TOKENS]

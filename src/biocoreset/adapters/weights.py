"""Reading model weights from files, for the adapters' ``from_path`` loaders.

A state dict may come as ``model.safetensors`` (a transformers folder), ``pytorch_model.bin``,
``model.pt`` (what :func:`biocoreset.modelio.save_model` and ``biocoreset finetune`` write), a
``biocoreset pretrain`` checkpoint (``checkpoints/step-*.pt``, whose ``"model"`` entry is used) or
any ``.pt``/``.pth`` holding a mapping of tensors. Recent transformers versions save layer norms
under their legacy names (``LayerNorm.gamma``/``LayerNorm.beta``); :func:`read_state_dict` gives
them back their module names (``weight``/``bias``). Files are read with ``weights_only=True``.

:func:`as_dtype` reads the ``dtype`` option of a loader (``"float32"``, ``torch.float64``...).

This module sits below the adapters and imports nothing from the rest of the library but its
errors, so every adapter can use it.

Example:
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "model.pt"
    >>> torch.save({"norm.gamma": torch.ones(2), "norm.beta": torch.zeros(2)}, path)
    >>> sorted(read_state_dict(path))
    ['norm.bias', 'norm.weight']
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from biocoreset.errors import ConfigError

__all__ = [
    "WEIGHT_FILES",
    "as_dtype",
    "find_weights",
    "load_into",
    "peek_state",
    "read_state_dict",
    "rename_legacy_keys",
]

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.pt")
"""Weight files looked for in a model folder, in this order."""

# Keys a model may lack in a file without harm: non-persistent position buffers.
_OPTIONAL_SUFFIXES = ("position_ids", "inv_freq")


def as_dtype(value: torch.dtype | str | None) -> torch.dtype | None:
    """The ``dtype`` option of an adapter loader: a :class:`torch.dtype`, its name
    (``"float32"``, ``"float64"``, ``"bfloat16"``, ``"float16"``) or ``None`` (keep the weights').

    Raises:
        ConfigError: Another name (the message lists the names).

    >>> as_dtype("float64"), as_dtype(None)
    (torch.float64, None)
    """
    if value is None or isinstance(value, torch.dtype):
        return value
    table = {
        "float32": torch.float32,
        "float64": torch.float64,
        "bfloat16": torch.bfloat16,
        "float16": torch.float16,
    }
    if value not in table:
        raise ConfigError(f"dtype must be one of {sorted(table)} or a torch.dtype, got {value!r}.")
    return table[value]


def find_weights(folder: str | os.PathLike[str]) -> Path | None:
    """The first of :data:`WEIGHT_FILES` present in ``folder``, or ``None``."""
    for name in WEIGHT_FILES:
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    return None


def rename_legacy_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``*.gamma`` → ``*.weight`` and ``*.beta`` → ``*.bias`` (transformers' saved layer-norm names).

    >>> sorted(rename_legacy_keys({"a.LayerNorm.gamma": 1, "a.LayerNorm.beta": 2, "b.weight": 3}))
    ['a.LayerNorm.bias', 'a.LayerNorm.weight', 'b.weight']
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        base, _, last = key.rpartition(".")
        new = {"gamma": "weight", "beta": "bias"}.get(last) if base else None
        out[f"{base}.{new}" if new and f"{base}.{new}" not in state else key] = value
    return out


def _torch_load(path: Path, *, mmap: bool) -> Any:
    kwargs: dict[str, Any] = {"map_location": "cpu", "weights_only": True}
    if mmap:
        kwargs["mmap"] = True
    safe = getattr(torch.serialization, "safe_globals", None)
    if safe is None:  # torch < 2.5: no official RNA-FM files (their args are a Namespace)
        return torch.load(path, **kwargs)
    with safe([argparse.Namespace]):
        return torch.load(path, **kwargs)


def peek_state(path: str | os.PathLike[str]) -> Any:
    """What ``path`` holds, read cheaply (memory-mapped when possible): a safetensors file gives a
    dict of its tensors; a torch file gives the loaded object (official RNA-FM checkpoints too).

    Raises:
        ConfigError: The file cannot be read as safetensors or a ``weights_only`` torch file.
    """
    p = Path(path)
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(p)
        try:
            return _torch_load(p, mmap=True)
        except RuntimeError:  # legacy (non-zip) files cannot be memory-mapped
            return _torch_load(p, mmap=False)
    except Exception as exc:
        raise ConfigError(
            f"{str(p)!r} is not a readable weights file (safetensors, or a torch file loadable "
            f"with weights_only=True): {_reason(exc)}"
        ) from exc


def _reason(exc: BaseException) -> str:
    """The gist of a loading error on one line (torch's weights-only message spans many)."""
    text = str(exc)
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = text.split(marker, 1)[1].strip().split("\n\n")[0]
    line = " ".join(text.split()) if "\n" not in text.strip() else text.strip().splitlines()[0]
    line = line[:300] + ("..." if len(line) > 300 else "")
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The state dict in ``path`` (see the module notes), with legacy layer-norm names renamed.

    Raises:
        FileNotFoundError: ``path`` is not a file.
        ConfigError: The file does not hold a mapping of tensors.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"weights file {str(p)!r} does not exist.")
    state = peek_state(p)
    if isinstance(state, Mapping) and "model" in state and "step" in state:
        state = state["model"]  # a biocoreset pretrain checkpoint
    if not (
        isinstance(state, Mapping)
        and state
        and all(isinstance(v, torch.Tensor) for v in state.values())
    ):
        raise ConfigError(
            f"{str(p)!r} does not hold a state dict (a mapping of parameter names to tensors)."
        )
    return rename_legacy_keys(state)


def load_into(
    model: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str | os.PathLike[str]
) -> None:
    """Load ``state`` into ``model``, refusing a state dict that does not fit it.

    Keys the model may lack in a file are allowed: non-persistent position buffers, and a weight
    tied to another one that is present (a transformers LM decoder tied to the embeddings).

    Raises:
        ConfigError: Missing or unexpected keys, or a shape mismatch (the message names them).
    """
    try:
        missing, unexpected = model.load_state_dict(dict(state), strict=False)
    except RuntimeError as exc:  # shape mismatch
        raise ConfigError(f"{str(source)!r} does not fit the model: {exc}") from exc
    own = model.state_dict(keep_vars=True)
    loaded = {id(own[k]) for k in state if k in own}
    missing = [
        k for k in missing if not k.endswith(_OPTIONAL_SUFFIXES) and id(own.get(k)) not in loaded
    ]
    if missing or unexpected:
        raise ConfigError(
            f"{str(source)!r} does not fit the model: missing {list(missing)[:5]}, unexpected "
            f"{list(unexpected)[:5]}. Was it written for another architecture or size?"
        )

"""Saving models: a folder that :func:`biocoreset.modelio.load_model` (``--model DIR``) reads back.

Two formats, both with the manifest ``biocoreset-model.json`` naming the adapter and its options:

* ``"hf"`` — a transformers folder (``save_pretrained``: ``config.json``, ``model.safetensors``,
  the tokenizer), what ``biocoreset pretrain`` writes into ``final/``. Models that are not
  transformers models (ESM-C) are saved as ``"state-dict"`` instead.
* ``"state-dict"`` — ``model.pt`` (loadable with ``torch.load(weights_only=True)``), plus
  ``config.json`` and the tokenizer for transformers models; what ``biocoreset finetune`` writes.

Example:
    >>> import tempfile
    >>> from biocoreset.plugins import create
    >>> folder = save_model(create("adapter", "rna-fm", size="tiny"), tempfile.mkdtemp(),
    ...                     format="state-dict", spec={"adapter_options": {"size": "tiny"}})
    >>> sorted(p.name for p in folder.iterdir())[:3]
    ['biocoreset-model.json', 'config.json', 'model.pt']
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from biocoreset.errors import ConfigError
from biocoreset.modelio.load import model_spec
from biocoreset.modelio.manifest import ModelManifest, write_manifest
from biocoreset.modelio.quiet import quiet_transformers
from biocoreset.protocols import ModelAdapter, capabilities
from biocoreset.store.atomic import atomic_path, check_output
from biocoreset.store.disk import write_errors

__all__ = ["WEIGHTS_FILE", "save_model"]

WEIGHTS_FILE = "model.pt"
"""The state-dict file of a ``"state-dict"`` folder."""

# Adapter options that describe how a run scores, not the model: never recorded in a manifest.
_UNSAVED = frozenset({"loss_mode"})


def _version() -> str | None:
    return getattr(sys.modules.get("biocoreset"), "__version__", None)


def save_model(
    adapter: ModelAdapter,
    folder: str | os.PathLike[str],
    *,
    format: str = "hf",
    spec: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    force: bool = True,
) -> Path:
    """Save ``adapter``'s model into ``folder`` with its manifest; return the folder.

    Args:
        adapter: The adapter whose model is saved.
        folder: Output folder (created).
        format: ``"hf"`` or ``"state-dict"`` (see the module notes).
        spec: ``{"adapter": name, "adapter_options": {...}}`` recorded in the manifest (default: how
            the adapter was loaded, see :func:`~biocoreset.modelio.load.model_spec`). The
            ``loss_mode`` option is a scoring choice and is not recorded.
        extra: Further manifest entries (e.g. the model a run started from).
        force: Overwrite ``model.pt`` if it exists (``False``: refuse).

    Raises:
        ConfigError: Unknown format.
        OutputExistsError: ``model.pt`` exists and ``force`` is false.
        OSError: A write failed (a full disk; ``torch.save``'s and ``safetensors``' own errors are
            turned into one, naming the file, and no partial ``model.pt`` is left).
    """
    if format not in ("hf", "state-dict"):
        raise ConfigError(f"format must be one of hf, state-dict; got {format!r}.")
    out = Path(folder)
    model = adapter.model
    recorded = {**model_spec(adapter), **{k: v for k, v in (spec or {}).items() if v is not None}}
    hf_model = hasattr(model, "save_pretrained")
    fmt = format if hf_model else "state-dict"
    if fmt == "state-dict":
        check_output(out / WEIGHTS_FILE, force=force)
    out.mkdir(parents=True, exist_ok=True)
    weights = None
    with quiet_transformers(), write_errors(out):  # a full disk: OSError, not RuntimeError
        if fmt == "hf":
            model.save_pretrained(out)  # type: ignore[operator]
        else:
            with atomic_path(out / WEIGHTS_FILE, force=force) as tmp:
                state = {k: v.detach().to("cpu") for k, v in model.state_dict().items()}
                with write_errors(out / WEIGHTS_FILE):
                    torch.save(state, tmp)
            weights = WEIGHTS_FILE
            config = getattr(model, "config", None)
            if hf_model and hasattr(config, "save_pretrained"):
                config.save_pretrained(out)  # type: ignore[union-attr]
        tokenizer = capabilities(adapter).tokenizer
        if hf_model and hasattr(tokenizer, "save_pretrained"):
            tokenizer.save_pretrained(out)
    options = {
        k: v for k, v in (recorded.get("adapter_options") or {}).items() if k not in _UNSAVED
    }
    manifest = ModelManifest(
        format=fmt,
        weights=weights,
        adapter=recorded.get("adapter") or capabilities(adapter).name,
        adapter_options=options,
        model_class=f"{type(model).__module__}.{type(model).__qualname__}",
        biocoreset_version=_version(),
        extra=dict(extra or {}),
    )
    write_manifest(out, manifest)
    return out

"""The model manifest: ``biocoreset-model.json``, beside every model the library saves.

It makes a saved folder self-describing: which adapter builds the model and with which options,
so ``--model FOLDER`` needs no ``--adapter`` and no ``--adapter-options``.

Example:
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> _ = write_manifest(folder, ModelManifest(format="state-dict", weights="model.pt",
    ...                    adapter="rna-fm", adapter_options={"size": "tiny"}))
    >>> read_manifest(folder).adapter_options
    {'size': 'tiny'}
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from biocoreset.data.masking import MaskingConfig
from biocoreset.errors import ConfigError, InputError
from biocoreset.store.atomic import atomic_path

__all__ = [
    "FINAL_DIR",
    "MODEL_MANIFEST",
    "ModelManifest",
    "model_folder",
    "options_from_json",
    "options_to_json",
    "read_manifest",
    "write_manifest",
]

MODEL_MANIFEST = "biocoreset-model.json"
"""File in a saved model folder recording how to rebuild the model (format, adapter, options)."""

FINAL_DIR = "final"
"""Subfolder of a ``biocoreset pretrain`` run holding the trained model."""

FORMATS = ("hf", "state-dict")


@attrs.frozen(kw_only=True)
class ModelManifest:
    """What ``biocoreset-model.json`` holds.

    Attributes:
        format: ``"hf"`` (a transformers folder: ``config.json`` + ``model.safetensors``) or
            ``"state-dict"`` (``weights`` is a torch state dict; ``config.json`` beside it for
            transformers models).
        weights: The weight file, relative to the folder (``None`` for ``"hf"``).
        adapter: Name of the adapter that builds the model (``"hf"``, ``"rna-fm"``, ``"esmc"``...).
        adapter_options: Its options (architecture and behaviour), JSON values only.
        model_class: ``module.Class`` of the model, for the reader's information.
        biocoreset_version: Version that wrote the folder.
        extra: Anything else a writer records (e.g. the model the run started from).
    """

    format: str = attrs.field(validator=attrs.validators.in_(FORMATS))
    weights: str | None = None
    adapter: str | None = None
    adapter_options: dict[str, Any] = attrs.field(factory=dict)
    model_class: str | None = None
    biocoreset_version: str | None = None
    extra: dict[str, Any] = attrs.field(factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``extra`` merged at top level)."""
        d = attrs.asdict(self)
        extra = d.pop("extra")
        d["adapter_options"] = options_to_json(self.adapter_options)
        return {**extra, **d}


def options_to_json(options: Mapping[str, Any]) -> dict[str, Any]:
    """Adapter options as JSON values (a masking config as a table, a dtype as its name).

    >>> import torch
    >>> options_to_json({"dtype": torch.float64, "masking": MaskingConfig()})
    {'dtype': 'float64', 'masking': {'probability': 0.15, 'replacement': [0.8, 0.1, 0.1]}}
    """
    out: dict[str, Any] = {}
    for key, value in options.items():
        if isinstance(value, MaskingConfig):
            value = {"probability": value.probability, "replacement": list(value.replacement)}
        elif type(value).__name__ == "dtype" and str(value).startswith("torch."):
            value = str(value).removeprefix("torch.")
        elif isinstance(value, Path):
            value = str(value)
        out[key] = value
    json.dumps(out)  # fails loudly on a value that cannot be recorded
    return out


def options_from_json(options: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`options_to_json` (a masking table becomes a ``MaskingConfig``).

    >>> options_from_json({"masking": {"probability": 0.2}})["masking"].probability
    0.2
    """
    out = dict(options)
    if isinstance(out.get("masking"), Mapping):
        out["masking"] = MaskingConfig(**out["masking"])
    return out


def model_folder(path: str | os.PathLike[str]) -> Path:
    """The folder (or file) holding the model ``path`` names: a pretrain run folder gives ``final/``.

    Raises:
        InputError: ``path`` does not exist, or is an unfinished pretrain run.
    """
    from biocoreset.store.owned import missing_output_note

    p = Path(path)
    if not p.exists():
        raise InputError(f"model {str(p)!r} does not exist{missing_output_note(p)}.")
    if p.is_dir() and not (p / MODEL_MANIFEST).exists():
        if (p / FINAL_DIR / MODEL_MANIFEST).exists():
            return p / FINAL_DIR
        if (p / "checkpoints").is_dir() and not (p / FINAL_DIR).exists():
            note = missing_output_note(p / FINAL_DIR)
            if note:
                raise InputError(f"the model folder {str(p / FINAL_DIR)!r} is missing{note}.")
            raise InputError(
                f"{str(p)!r} is an unfinished pretrain run (checkpoints/ but no final/); rerun its "
                "pretrain command to finish it."
            )
    return p


def read_manifest(folder: str | os.PathLike[str]) -> ModelManifest | None:
    """The manifest of a saved model folder, or ``None`` when there is none.

    Raises:
        ConfigError: The manifest is not valid JSON or has unknown fields.
    """
    p = Path(folder) / MODEL_MANIFEST
    if not p.is_file():
        return None
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{str(p)!r} is not valid JSON ({exc}).") from exc
    known = {f.name for f in attrs.fields(ModelManifest)} - {"extra"}
    try:
        return ModelManifest(
            **{k: data[k] for k in known if data.get(k) is not None},
            extra={k: v for k, v in data.items() if k not in known},
        )
    except (TypeError, ValueError, KeyError) as exc:
        raise ConfigError(f"{str(p)!r} is not a biocoreset model manifest: {exc}") from exc


def write_manifest(folder: str | os.PathLike[str], manifest: ModelManifest) -> Path:
    """Write ``manifest`` into ``folder`` (atomically, replacing an older one); return its path."""
    path = Path(folder) / MODEL_MANIFEST
    with atomic_path(path, force=True) as tmp:
        tmp.write_text(json.dumps(manifest.to_dict(), indent=2) + "\n", encoding="utf-8")
    return path

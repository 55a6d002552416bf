"""Loading models: a path (and optionally an adapter name and options) to a ready adapter.

:func:`load_model` is what ``--model PATH`` does in every command and ``[model]`` does in a run
file. The adapter comes from, in order: the ``adapter`` argument, the folder's manifest
(:mod:`biocoreset.modelio.manifest`), or the files themselves (:func:`guess_adapter`). The loading
is the registered adapter class's own ``from_path(path, **options)`` classmethod (the built-in
``hf``, ``rna-fm`` and ``esmc`` all have one); a plugin adapter without one has the default of
:class:`~biocoreset.protocols.AdapterBase`: its factory receives ``checkpoint=PATH``.

Example:
    >>> import tempfile
    >>> from biocoreset.plugins import create
    >>> from biocoreset.modelio import save_model
    >>> folder = save_model(create("adapter", "rna-fm", size="tiny"), tempfile.mkdtemp(),
    ...                     spec={"adapter_options": {"size": "tiny"}})
    >>> load_model(folder).name
    'rna-fm'
"""

from __future__ import annotations

import json
import os
import weakref
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from biocoreset.errors import ConfigError, InputError
from biocoreset.modelio.device import resolve_device
from biocoreset.modelio.manifest import model_folder, options_from_json, read_manifest
from biocoreset.modelio.quiet import quiet_transformers
from biocoreset.modelio.sources import model_source
from biocoreset.protocols import ModelAdapter, capabilities

if TYPE_CHECKING:
    from biocoreset.plugins.registry import Component

__all__ = ["check_load_options", "guess_adapter", "load_model", "load_weights", "model_spec"]

# What each loaded (or built) model was made from, for save_model: {model: spec}.
_SPECS: weakref.WeakKeyDictionary[torch.nn.Module, dict[str, Any]] = weakref.WeakKeyDictionary()


def model_spec(adapter: ModelAdapter) -> dict[str, Any]:
    """How ``adapter`` was built: ``{"adapter": name, "adapter_options": {...}, "model": path}``.

    Known for adapters from :func:`load_model`; otherwise the adapter's name and no options.

    >>> from biocoreset.plugins import create
    >>> model_spec(create("adapter", "rna-fm", size="tiny"))["adapter"]
    'rna-fm'
    """
    known = _SPECS.get(adapter.model)
    if known is not None:
        return dict(known)
    return {"adapter": capabilities(adapter).name, "adapter_options": {}, "model": None}


def _remember(adapter: ModelAdapter, spec: dict[str, Any]) -> None:
    _SPECS[adapter.model] = spec


def load_weights(model: torch.nn.Module, path: str | os.PathLike[str]) -> None:
    """Load a state dict file over ``model`` (``--weights``): ``model.pt``, ``model.safetensors``,
    a pretrain checkpoint... (see :func:`biocoreset.adapters.weights.read_state_dict`).

    Raises:
        ConfigError: The file is missing, holds no state dict, or does not fit the model (the
            message names the keys).
    """
    from biocoreset.adapters.weights import load_into, read_state_dict

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"weights file {str(p)!r} does not exist.")
    load_into(model, read_state_dict(p), p)


def guess_adapter(path: str | os.PathLike[str]) -> str:
    """The built-in adapter for a model folder or file that has no manifest.

    A transformers folder is ``hf``, unless its config is RNA-FM-shaped (``rna-fm``); a file is
    ``rna-fm`` (official checkpoint, or 25-token ESM embeddings) or ``esmc`` (ESM-C keys).

    Raises:
        ConfigError: Nothing tells which adapter builds it (pass ``adapter=``).
    """
    from biocoreset.adapters.rnafm_checkpoint import is_official_checkpoint
    from biocoreset.adapters.rnafm_model import RNAFM_TOKENS
    from biocoreset.adapters.weights import find_weights, peek_state

    p = Path(path)
    if p.is_dir():
        config = p / "config.json"
        if config.is_file():
            data = json.loads(config.read_text(encoding="utf-8"))
            rnafm = data.get("model_type") == "esm" and data.get("vocab_size") == len(RNAFM_TOKENS)
            return "rna-fm" if rnafm else "hf"
        weights = find_weights(p)
        if weights is None:
            raise InputError(
                f"{str(p)!r} holds no model: no biocoreset-model.json, no config.json and no "
                "weights file (model.safetensors, pytorch_model.bin, model.pt)."
            )
        p = weights
    data = peek_state(p)
    if is_official_checkpoint(data):
        return "rna-fm"
    if isinstance(data, Mapping) and "model" in data and "step" in data:
        data = data["model"]
    if isinstance(data, Mapping):
        if "embed.weight" in data and any(str(k).startswith("transformer.blocks.") for k in data):
            return "esmc"
        for key in (
            "esm.embeddings.word_embeddings.weight",
            "encoder.sentence_encoder.embed_tokens.weight",
        ):
            emb = data.get(key)
            if isinstance(emb, torch.Tensor) and emb.shape[0] == len(RNAFM_TOKENS):
                return "rna-fm"
    raise ConfigError(
        f"cannot tell which adapter builds {str(p)!r}; name it with --adapter (adapter=...); "
        "`biocoreset plugins --kind adapter` lists them."
    )


def _component(name: str) -> Component:
    from biocoreset.plugins import get_registry

    return get_registry().get("adapter", name)


def check_load_options(component: Component, options: Iterable[str]) -> None:
    """Refuse options that neither the adapter's factory nor its class's ``from_path`` accepts
    (did-you-mean), before anything is loaded.

    The valid options are the factory's, then those ``from_path`` names (the default
    ``from_path`` names none: it passes them on to the factory).
    """
    from biocoreset.plugins.options import check_option_names, named_options

    declared = component.options()
    if declared is None:  # the factory takes any keyword: it checks its options itself
        return
    valid = [o.name for o in declared]
    valid += [o.name for o in named_options(component.adapter_class().from_path)]
    check_option_names(
        list(dict.fromkeys(valid)),
        options,
        kind="adapter",
        name=component.name,
        plugin=component.plugin,
    )


def load_model(
    path: str | os.PathLike[str] | None = None,
    *,
    adapter: str | None = None,
    options: Mapping[str, Any] | None = None,
    weights: str | os.PathLike[str] | None = None,
    device: str | torch.device | None = "auto",
    random_init: bool = False,
) -> ModelAdapter:
    """Build an adapter from a saved model (``--model``, ``--adapter``, ``--adapter-options``).

    Args:
        path: A named model source (``"antiberty"``, :mod:`biocoreset.modelio.sources`), or what
            the library or the model's authors saved: a ``biocoreset pretrain`` run folder
            or its ``final/``, a ``biocoreset finetune`` output folder, a transformers folder, a
            ``.pt``/``.pth``/``.safetensors`` state dict, an official RNA-FM ``.pth``, an ESM-C
            ``.pth``. ``None``: build from ``options`` alone (e.g. ``{"size": "tiny"}``).
        adapter: Adapter name (default: the manifest's, else guessed from the files, else ``hf``).
        options: Adapter options, over the manifest's (those are used only when the adapter is
            the manifest's).
        weights: A state dict loaded over the model afterwards (e.g. ``ft/model.pt``).
        device: ``"auto"``, a device string, or ``None`` to leave the model where it is.
        random_init: Build the architecture only; do not read the weights (pretraining).

    Returns:
        The adapter, its model on ``device``.

    Raises:
        ConfigError: Unknown adapter, bad options, or weights that do not fit.
        InputError: ``path`` does not exist or holds no model.
    """
    user = dict(options or {})
    source: str | None = None
    if path is None:
        name = adapter or "hf"
        try:
            built: ModelAdapter = _component(name).factory(**options_from_json(user))
        except ConfigError as exc:
            raise ConfigError(
                f"{exc} From the command line: --model PATH (a model folder or file), or the "
                "adapter's options with --adapter-options."
            ) from None
        opts = user
    elif (named := model_source(path)) is not None:
        name = adapter or "hf"
        if name != "hf":
            raise ConfigError(
                f"--model {path} is loaded by the 'hf' adapter, not {name!r}; drop --adapter."
            )
        kwargs = options_from_json(user)
        if random_init:
            kwargs["random_init"] = True
        check_load_options(_component(name), kwargs)
        with quiet_transformers():
            built = named.load(**kwargs)
        opts, source = user, named.name
    else:
        folder = model_folder(path)
        manifest = read_manifest(folder) if folder.is_dir() else None
        name = adapter or (manifest.adapter if manifest else None) or guess_adapter(folder)
        same = manifest is not None and manifest.adapter in (None, name)
        saved = dict(manifest.adapter_options if same and manifest else {})
        # ``random_init`` is how the saved model was first built, never a property of its weights:
        # honouring it from a manifest would silently load random weights (issue 25)
        saved.pop("random_init", None)
        opts = {**saved, **user}
        component = _component(name)
        kwargs = options_from_json(opts)
        if random_init:
            kwargs["random_init"] = True
        check_load_options(component, kwargs)
        with quiet_transformers():
            built = component.adapter_class().from_path(folder, **kwargs)
        source = str(folder.resolve())
    if weights:
        load_weights(built.model, weights)
    if device is not None:
        built.model.to(resolve_device(device))
    _remember(built, {"adapter": name, "adapter_options": opts, "model": source})
    return built

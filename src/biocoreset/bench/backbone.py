"""Backbones for downstream tasks: loading checkpoints and turning sequences into representations.

A :class:`Backbone` is a named way to build a fresh :class:`~biocoreset.protocols.ModelAdapter`
(one row of a results table). Tasks either fine-tune a fresh copy per seed or read frozen features,
which the backbone computes once and caches for every seed and task that asks again.

Representations. Sequences are tokenised *without masking* with the adapter's ``encode`` (the same
tokens and special tokens as pretraining) and run through the encoder:

1. ``adapter.embed(input_ids, attention_mask) -> [B, T, H]`` when the adapter defines it (the hook
   for non-Hugging-Face models such as ESM-C);
2. else the Hugging Face base model's ``last_hidden_state`` (``model.base_model``);
3. else ``model(..., output_hidden_states=True).hidden_states[-1]``.

Residue features are the positions the adapter flags as residues (special tokens and padding
dropped; sequences longer than ``adapter.max_length`` are cut to it); the pooled feature is their mean.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import torch

from biocoreset.errors import ConfigError, InputError
from biocoreset.protocols import ModelAdapter

__all__ = [
    "Backbone",
    "build_adapter",
    "encode_batch",
    "load_backbone",
    "pooled",
    "quiet_transformers",
    "representations",
    "residue_features",
    "resolve_device",
]


def resolve_device(spec: str = "auto") -> torch.device:
    """``"auto"``: CUDA when available, else CPU; otherwise the given torch device."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(spec)
    except RuntimeError as exc:
        raise ConfigError(
            f"device {spec!r} is not a torch device ('auto', 'cpu', 'cuda:0', ...)."
        ) from exc


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Hide transformers' per-file progress bars (loading/saving weights) inside the block."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover - transformers is a dependency
        yield
        return
    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


def build_adapter(
    name: str,
    model_path: str | os.PathLike[str] | None,
    options: dict[str, Any] | None = None,
    *,
    masking: Any = None,
    weights: bool = True,
) -> ModelAdapter:
    """Build a registered adapter, as the command line does.

    Args:
        name: Adapter name (``"hf"``, ``"rna-fm"``, ``"esmc"``, plugins).
        model_path: ``hf``: a transformers model folder (config + tokenizer; weights read only when
            ``weights``). Other adapters receive it as ``checkpoint=``.
        options: Adapter options.
        masking: Masking configuration for ``hf`` (other adapters take it from ``options``).
        weights: Load the folder's weights (``False``: architecture only, for pretraining from scratch).

    Raises:
        ConfigError: ``hf`` without a model folder.
    """
    from biocoreset.plugins import get_registry

    opts = dict(options or {})
    if name == "hf":
        if not model_path:
            raise ConfigError(
                "--model PATH (a transformers model folder with config and tokenizer) is required for adapter 'hf'."
            )
        from transformers import AutoConfig, AutoModelForMaskedLM, AutoTokenizer

        from biocoreset.adapters.hf import HFAdapter

        with quiet_transformers():
            if weights:
                model = AutoModelForMaskedLM.from_pretrained(model_path, local_files_only=True)
            else:
                config = AutoConfig.from_pretrained(model_path, local_files_only=True)
                model = AutoModelForMaskedLM.from_config(config)
            tok = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
        if masking is not None:
            opts.setdefault("masking", masking)
        return HFAdapter(model, tok, **opts)
    factory = get_registry().get("adapter", name).factory
    if model_path:
        opts["checkpoint"] = str(model_path)
    return factory(**opts)


def _load_weights(adapter: ModelAdapter, state: dict[str, torch.Tensor], source: str) -> None:
    missing, unexpected = adapter.model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith(("position_ids", "inv_freq"))]
    if missing or unexpected:
        raise InputError(
            f"weights in {source!r} do not fit the {getattr(adapter, 'name', '?')!r} architecture: "
            f"missing {missing[:3]}, unexpected {unexpected[:3]}. Pass the adapter options used in pretraining."
        )


def load_backbone(
    path: str | os.PathLike[str],
    *,
    adapter: str | None = None,
    adapter_options: dict[str, Any] | None = None,
) -> ModelAdapter:
    """Load a trained model as an adapter.

    ``path`` may be a ``biocoreset pretrain`` output folder (its ``final/``), a ``final/`` folder with
    ``biocoreset-model.json``, a transformers model folder, or a ``.pt`` state dict / pretrain
    checkpoint (then ``adapter`` and ``adapter_options`` say which architecture to build).

    Raises:
        InputError: Nothing loadable at ``path`` or weights that do not fit.
    """
    from biocoreset.train.pretrain import MODEL_MANIFEST

    p = Path(path)
    if p.is_dir() and (p / "final").is_dir() and not (p / MODEL_MANIFEST).exists():
        p = p / "final"
    manifest: dict[str, Any] = {}
    if p.is_dir() and (p / MODEL_MANIFEST).exists():
        manifest = json.loads((p / MODEL_MANIFEST).read_text(encoding="utf-8"))
    name = adapter or manifest.get("adapter") or "hf"
    opts = (
        dict(manifest.get("adapter_options") or {})
        if adapter_options is None
        else dict(adapter_options)
    )
    if p.is_dir() and (p / "config.json").exists():
        if name == "hf":
            return build_adapter("hf", p, opts)
        from transformers import AutoModelForMaskedLM

        built = build_adapter(name, None, opts)
        with quiet_transformers():
            state = AutoModelForMaskedLM.from_pretrained(p, local_files_only=True).state_dict()
        _load_weights(built, state, str(p))
        return built
    weights = p / manifest["weights"] if manifest.get("weights") else p
    if weights.is_file():
        if name == "hf":
            raise InputError(
                f"{str(p)!r} is a state dict: say which adapter builds its architecture (adapter=...)."
            )
        state = torch.load(weights, map_location="cpu", weights_only=True)
        if (
            isinstance(state, dict) and "model" in state and "step" in state
        ):  # a pretrain checkpoint
            state = state["model"]
        built = build_adapter(name, None, opts)
        _load_weights(built, state, str(weights))
        return built
    raise InputError(
        f"nothing to load at {str(path)!r}: expected a pretrain output folder, a transformers model "
        "folder or a .pt state dict."
    )


def encode_batch(
    adapter: ModelAdapter, sequences: Sequence[str], ids: Sequence[str] | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tokenise without masking: ``(input_ids, attention_mask, residue_mask)``, each ``[B, T]``.

    Sequences longer than ``adapter.max_length`` residues are cut to it.

    Raises:
        ConfigError: The adapter has no ``encode`` method.
    """
    encode = getattr(adapter, "encode", None)
    if not callable(encode):
        raise ConfigError(
            f"adapter {getattr(adapter, 'name', type(adapter).__name__)!r} has no encode(record_id, sequence) "
            "method; benchmark tasks need it to tokenise without masking."
        )
    rows, flags = [], []
    limit = int(getattr(adapter, "max_length", 10**9))
    for k, seq in enumerate(sequences):
        rid = ids[k] if ids is not None else f"#{k}"
        tok, res = encode(rid, seq)
        kept, t_out, r_out = 0, [], []
        for t, r in zip(tok, res, strict=True):
            if r:
                if kept >= limit:
                    continue
                kept += 1
            t_out.append(int(t))
            r_out.append(bool(r))
        rows.append(t_out)
        flags.append(r_out)
    width = max(len(r) for r in rows)
    pad = int(getattr(adapter, "pad_token_id", 0))
    B = len(rows)
    input_ids = torch.full((B, width), pad, dtype=torch.long)
    attention = torch.zeros((B, width), dtype=torch.long)
    residue = torch.zeros((B, width), dtype=torch.bool)
    for b, (r, f) in enumerate(zip(rows, flags, strict=True)):
        input_ids[b, : len(r)] = torch.tensor(r)
        attention[b, : len(r)] = 1
        residue[b, : len(f)] = torch.tensor(f)
    return input_ids, attention, residue


def representations(
    adapter: ModelAdapter, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """``[B, T, H]`` final hidden states of the encoder (see the module docstring for the order tried)."""
    embed = getattr(adapter, "embed", None)
    if callable(embed):
        return embed(input_ids, attention_mask)
    model = adapter.model
    base = getattr(model, "base_model", None)
    if isinstance(base, torch.nn.Module):
        out = base(input_ids=input_ids, attention_mask=attention_mask)
        hidden = getattr(out, "last_hidden_state", None)
        if hidden is not None:
            return hidden
    out = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
    states = getattr(out, "hidden_states", None)
    if not states:
        raise ConfigError(
            f"cannot get hidden states from {type(model).__name__}; give the adapter an "
            "embed(input_ids, attention_mask) -> [B, T, H] method."
        )
    return states[-1]


def residue_features(
    adapter: ModelAdapter,
    sequences: Sequence[str],
    device: torch.device,
    ids: Sequence[str] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(features [B, L, H], mask [B, L])``: residue positions only, left-aligned and padded."""
    input_ids, attention, residue = encode_batch(adapter, sequences, ids)
    hidden = representations(adapter, input_ids.to(device), attention.to(device))
    residue = residue.to(device)
    lengths = residue.sum(1)
    L = int(lengths.max())
    feats = hidden.new_zeros((hidden.shape[0], L, hidden.shape[-1]))
    mask = torch.zeros((hidden.shape[0], L), dtype=torch.bool, device=device)
    for b in range(hidden.shape[0]):
        n = int(lengths[b])
        feats[b, :n] = hidden[b][residue[b]]
        mask[b, :n] = True
    return feats, mask


def pooled(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``features [B, L, H]`` over ``mask [B, L]``."""
    m = mask.to(features.dtype).unsqueeze(-1)
    return (features * m).sum(1) / m.sum(1).clamp(min=1)


@attrs.define(eq=False)
class Backbone:
    """A named model to benchmark: builds fresh adapters and caches frozen features.

    Attributes:
        name: Row label (e.g. ``"CCI"``).
        load: Callable returning a fresh adapter with the trained weights (called once per
            fine-tuning run, once for frozen features).
        data_size: Pretraining data size shown in the table (e.g. ``"0.2M"``).
        device: Device for features and training.
        batch_size: Sequences per forward pass when computing frozen features.
    """

    name: str
    load: Callable[[], ModelAdapter]
    data_size: str = ""
    device: str = "auto"
    batch_size: int = 32
    _frozen: ModelAdapter | None = attrs.field(default=None, init=False, repr=False)
    _cache: dict[Any, Any] = attrs.field(factory=dict, init=False, repr=False)

    @classmethod
    def from_path(
        cls,
        name: str,
        path: str | os.PathLike[str],
        *,
        data_size: str = "",
        adapter: str | None = None,
        adapter_options: dict[str, Any] | None = None,
        **kw: Any,
    ) -> Backbone:
        """A backbone loading ``path`` with :func:`load_backbone` each time it is needed."""
        return cls(
            name=name,
            load=lambda: load_backbone(path, adapter=adapter, adapter_options=adapter_options),
            data_size=data_size,
            **kw,
        )

    @property
    def torch_device(self) -> torch.device:
        """The resolved device."""
        return resolve_device(self.device)

    def fresh(self) -> ModelAdapter:
        """A new adapter (for fine-tuning), on the device, in train mode."""
        adapter = self.load()
        adapter.model.to(self.torch_device).train()
        return adapter

    def frozen(self) -> ModelAdapter:
        """The shared frozen adapter (loaded once), in eval mode."""
        if self._frozen is None:
            adapter = self.load()
            adapter.model.to(self.torch_device).eval()
            for p in adapter.model.parameters():
                p.requires_grad_(False)
            self._frozen = adapter
        return self._frozen

    def features(
        self, key: Any, sequences: Sequence[str], level: str, ids: Sequence[str] | None = None
    ) -> list[torch.Tensor]:
        """Frozen features of ``sequences``, cached under ``key``.

        Args:
            key: Cache key (e.g. ``(task name, split)``).
            sequences: The sequences.
            level: ``"pooled"`` (one ``[H]`` vector each) or ``"residue"`` (one ``[L_i, H]`` each).
            ids: Record ids, named in tokenisation errors.
        """
        ck = (key, level)
        if ck not in self._cache:
            adapter = self.frozen()
            out: list[torch.Tensor] = []
            with torch.no_grad():
                for s in range(0, len(sequences), self.batch_size):
                    chunk_ids = None if ids is None else ids[s : s + self.batch_size]
                    feats, mask = residue_features(
                        adapter, sequences[s : s + self.batch_size], self.torch_device, chunk_ids
                    )
                    if level == "pooled":
                        out.extend(pooled(feats, mask).unbind(0))
                    else:
                        out.extend(feats[b, : int(mask[b].sum())] for b in range(feats.shape[0]))
            self._cache[ck] = out
        return self._cache[ck]

    def release(self) -> None:
        """Drop the frozen model and cached features."""
        self._frozen = None
        self._cache.clear()

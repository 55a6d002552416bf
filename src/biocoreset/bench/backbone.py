"""Backbones for downstream tasks: loading checkpoints and turning sequences into representations.

A :class:`Backbone` is a named way to build a fresh :class:`~biocoreset.protocols.ModelAdapter`
(one row of a results table). Tasks either fine-tune a fresh copy per seed or read frozen features,
which the backbone computes once and caches for every seed and task that asks again.

Representations. Sequences are tokenised *without masking* with the adapter's ``encode`` (the same
tokens and special tokens as pretraining) and run through the encoder:

``adapter.embed(input_ids, attention_mask) -> [B, T, H]``: the adapter's own (the hook for
non-Hugging-Face models such as ESM-C), else the default of
:class:`~biocoreset.protocols.AdapterBase`: the Hugging Face base model's ``last_hidden_state``
(``model.base_model``), else ``model(..., output_hidden_states=True).hidden_states[-1]``.

Residue features are the positions the adapter flags as residues (special tokens and padding
dropped; sequences longer than ``adapter.max_length`` are cut to it); the pooled feature is their mean.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import torch

from biocoreset.errors import ConfigError
from biocoreset.modelio import load_model, quiet_transformers, resolve_device
from biocoreset.protocols import ModelAdapter, capabilities

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

# quiet_transformers and resolve_device belong to biocoreset.modelio; re-exported for old imports.


def build_adapter(
    name: str,
    model_path: str | os.PathLike[str] | None,
    options: dict[str, Any] | None = None,
    *,
    masking: Any = None,
    weights: bool = True,
) -> ModelAdapter:
    """Build a registered adapter as the command line does (see :func:`biocoreset.modelio.load_model`).

    Args:
        name: Adapter name (``"hf"``, ``"rna-fm"``, ``"esmc"``, plugins).
        model_path: A model folder or file (``None``: build from ``options`` alone).
        options: Adapter options.
        masking: Masking configuration (used unless ``options`` has one).
        weights: Load the weights (``False``: architecture only, for pretraining from scratch).
    """
    opts = dict(options or {})
    if masking is not None:
        opts.setdefault("masking", masking)
    return load_model(model_path, adapter=name, options=opts, device=None, random_init=not weights)


def load_backbone(
    path: str | os.PathLike[str],
    *,
    adapter: str | None = None,
    adapter_options: dict[str, Any] | None = None,
) -> ModelAdapter:
    """Load a trained model as an adapter (on the CPU): :func:`biocoreset.modelio.load_model`.

    ``path`` may be a ``biocoreset pretrain`` output folder (its ``final/``), a folder with
    ``biocoreset-model.json``, a transformers model folder, or a state dict / pretrain checkpoint.
    ``adapter`` and ``adapter_options`` override the manifest's.

    Raises:
        InputError: Nothing loadable at ``path``.
        ConfigError: Weights that do not fit.
    """
    return load_model(path, adapter=adapter, options=adapter_options, device=None)


def encode_batch(
    adapter: ModelAdapter, sequences: Sequence[str], ids: Sequence[str] | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tokenise without masking: ``(input_ids, attention_mask, residue_mask)``, each ``[B, T]``.

    Sequences longer than ``adapter.max_length`` residues are cut to it.

    Raises:
        ConfigError: The adapter has no ``encode`` method.
    """
    caps = capabilities(adapter)
    encode = caps.encode
    if not callable(encode):
        raise ConfigError(
            f"adapter {caps.name or type(adapter).__name__!r} has no encode(record_id, sequence) "
            "method; benchmark tasks need it to tokenise without masking."
        )
    rows, flags = [], []
    limit = int(caps.max_length if caps.max_length is not None else 10**9)
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
    pad = int(caps.pad_token_id if caps.pad_token_id is not None else 0)
    B = len(rows)
    input_ids = torch.full((B, width), pad, dtype=torch.long)
    attention = torch.zeros((B, width), dtype=torch.long)
    residue = torch.zeros((B, width), dtype=torch.bool)
    for b, (row, flag) in enumerate(zip(rows, flags, strict=True)):
        input_ids[b, : len(row)] = torch.tensor(row)
        attention[b, : len(row)] = 1
        residue[b, : len(flag)] = torch.tensor(flag)
    return input_ids, attention, residue


def representations(
    adapter: ModelAdapter, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """``[B, T, H]`` final hidden states of the encoder: the adapter's ``embed`` (see the module
    docstring for what its default tries)."""
    return capabilities(adapter).embed(input_ids, attention_mask)


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

"""Per-sample gradient machinery shared by curvatures and scorers (not a plugin).

:func:`make_engine` picks the engine: ``"hooks"`` (:class:`~biocoreset.grads.engine.HookEngine`)
is the fast, memory-bounded path — one forward and one backward pass per batch, per-layer factors
handed to the curvature during the backward pass; ``"loop"`` (:class:`LoopEngine`) is the exact
reference path, one ``autograd.grad`` per sample. ``"auto"`` is the hook engine, or the loop for an
adapter the hook engine cannot probe.

Example:
    >>> from biocoreset.adapters.hf import HFAdapter
    >>> from biocoreset.testing import tiny_esm
    >>> adapter = HFAdapter(*tiny_esm())
    >>> make_engine(adapter, adapter.scored_parameters()).name
    'hooks'
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import torch

from biocoreset.errors import ConfigError
from biocoreset.grads.engine import HookEngine
from biocoreset.grads.loop import LoopEngine
from biocoreset.grads.probe import ProbeUnavailable
from biocoreset.protocols import ModelAdapter

__all__ = ["ENGINES", "HookEngine", "LoopEngine", "make_engine"]

ENGINES = ("auto", LoopEngine.name, HookEngine.name)
"""The engine names :func:`make_engine` takes: ``"auto"`` (hooks, else the loop) and each engine's
``name`` (``ScoreConfig.engine`` offers the same, :data:`biocoreset.config.core.ENGINES`)."""


def make_engine(
    adapter: ModelAdapter,
    params: Mapping[str, torch.nn.Parameter],
    *,
    engine: str = "auto",
    **options: Any,
) -> Any:
    """Build the per-sample gradient engine ``engine`` for ``params`` of ``adapter``'s model.

    Args:
        adapter: The model adapter.
        params: Scored parameters by qualified name.
        engine: ``"auto"``, ``"hooks"`` or ``"loop"``.
        **options: Engine options: ``dtype`` (both); ``fast_path``, ``autocast`` and
            ``workspace_bytes`` (hooks only; see :class:`~biocoreset.grads.engine.HookEngine`).

    Raises:
        ConfigError: Unknown engine, or (``"hooks"``) a model or option the hook engine refuses.
    """
    if engine not in ENGINES:
        raise ConfigError(f"engine must be one of {ENGINES}, got {engine!r}.")
    if engine in ("auto", "hooks"):
        try:
            return HookEngine(adapter, params, **options)
        except ProbeUnavailable as exc:
            if engine == "hooks":
                raise
            warnings.warn(
                f"{exc} Falling back to the per-sample loop engine.", RuntimeWarning, stacklevel=2
            )
    if options.get("autocast") is not None:
        raise ConfigError(
            "autocast needs the hook engine, which cannot handle this model; drop autocast to "
            "score with the per-sample loop engine."
        )
    return LoopEngine(adapter, params, **{k: v for k, v in options.items() if k == "dtype"})

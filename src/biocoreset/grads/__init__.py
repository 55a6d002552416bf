"""Per-sample gradient machinery shared by curvatures and scorers (not a plugin).

:func:`make_engine` picks the engine: ``"loop"`` is the exact reference path; the hook engine
(``"hooks"``, when available) is the fast, memory-bounded path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from biocoreset.errors import ConfigError
from biocoreset.grads.loop import LoopEngine
from biocoreset.protocols import ModelAdapter

__all__ = ["ENGINES", "LoopEngine", "make_engine"]

ENGINES = ("auto", "loop", "hooks")


def make_engine(
    adapter: ModelAdapter, params: Mapping[str, torch.nn.Parameter], *, engine: str = "auto", **options: Any
) -> Any:
    """Build the per-sample gradient engine ``engine`` for ``params`` of ``adapter``'s model.

    ``"auto"`` uses the hook engine when it is available, else the loop.
    """
    if engine not in ENGINES:
        raise ConfigError(f"engine must be one of {ENGINES}, got {engine!r}.")
    if engine in ("auto", "hooks"):
        try:
            from biocoreset.grads.engine import HookEngine
        except ImportError:
            if engine == "hooks":
                raise
        else:
            return HookEngine(adapter, params, **options)
    return LoopEngine(adapter, params, **{k: v for k, v in options.items() if k == "dtype"})

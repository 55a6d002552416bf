"""biocoreset: influence-guided coreset selection for pretraining biological foundation models.

The names below are imported on first use (PEP 562), so ``import biocoreset`` and
``from biocoreset import select`` load neither torch nor any model code.

>>> from biocoreset import score, select
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

from biocoreset._version import __version__

_LAZY: dict[str, str] = {
    "MaskingConfig": "biocoreset.config",
    "ScoreConfig": "biocoreset.config",
    "SelectConfig": "biocoreset.config",
    "ScoreResult": "biocoreset.store.result",
    "load_scores": "biocoreset.store.result",
    "Selection": "biocoreset.selection",
    "select": "biocoreset.selection",
    "score": "biocoreset.api",
    "hookimpl": "biocoreset.plugins.hookspecs",
}
"""Public name → the module defining it (imported when the name is first used)."""

__all__ = [
    "MaskingConfig",
    "ScoreConfig",
    "ScoreResult",
    "SelectConfig",
    "Selection",
    "__version__",
    "hookimpl",
    "load_scores",
    "score",
    "select",
]

if TYPE_CHECKING:
    from biocoreset.api import score
    from biocoreset.config import MaskingConfig, ScoreConfig, SelectConfig
    from biocoreset.plugins.hookspecs import hookimpl
    from biocoreset.selection import Selection, select
    from biocoreset.store.result import ScoreResult, load_scores


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        if not name.startswith("_") and importlib.util.find_spec(f"biocoreset.{name}") is not None:
            return importlib.import_module(f"biocoreset.{name}")  # a submodule not imported yet
        raise AttributeError(f"module 'biocoreset' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

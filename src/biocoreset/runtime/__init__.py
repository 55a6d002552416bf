"""Process-level runtime below every other layer: the distributed context
(:mod:`~biocoreset.runtime.distributed`) and progress reporting (:mod:`~biocoreset.runtime.progress`).

The distributed names are imported on first use (PEP 562): the distributed context imports torch,
and progress reporting (used by commands that load no model) must not.

>>> from biocoreset.runtime import current
>>> current().is_main
True
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["DistContext", "current", "init_distributed"]

if TYPE_CHECKING:
    from biocoreset.runtime.distributed import DistContext, current, init_distributed


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("biocoreset.runtime.distributed"), name)
    raise AttributeError(f"module 'biocoreset.runtime' has no attribute {name!r}")

"""Progress bars (tqdm) with rate and ETA for every long step; quiet unless stderr is a terminal.

>>> bar = progress_bar(total=3, enabled=False, desc="demo")
>>> bar.update(3); bar.close()
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["progress_bar", "progress_enabled"]


def progress_enabled(enabled: bool | None) -> bool:
    """``enabled``, or whether stderr is a terminal when it is ``None``."""
    return sys.stderr.isatty() if enabled is None else bool(enabled)


def progress_bar(iterable: Any = None, *, enabled: bool | None, **kw: Any) -> Any:
    """A tqdm bar (rate and ETA shown whenever ``total`` is known); disabled when not ``enabled``.

    Args:
        iterable: Optional iterable to wrap.
        enabled: Show it (``None``: when stderr is a terminal).
        **kw: tqdm options (``total``, ``desc``, ``unit``, ``unit_scale``...).
    """
    from tqdm.auto import tqdm

    kw.setdefault("dynamic_ncols", True)
    kw.setdefault("mininterval", 0.5)
    kw.setdefault("smoothing", 0.1)
    return tqdm(iterable, disable=not progress_enabled(enabled), **kw)

"""Atomic file writes: write to a temporary file beside the target, then rename."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from biocoreset.errors import OutputExistsError

__all__ = ["atomic_path", "check_output"]


def check_output(path: str | os.PathLike[str], *, force: bool) -> Path:
    """Refuse to overwrite ``path`` unless ``force``; return it as a :class:`Path`."""
    p = Path(path)
    if p.exists() and not force:
        raise OutputExistsError(
            f"{str(p)!r} already exists; pass force=True (--force) to overwrite it."
        )
    return p


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, force: bool = False) -> Iterator[Path]:
    """Yield a temporary path; on success it replaces ``path`` in one rename, else it is removed."""
    target = check_output(path, force=force)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()

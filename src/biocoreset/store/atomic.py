"""Atomic file writes: write to a temporary file beside the target, then rename.

Every file the library writes goes through :func:`atomic_path`, so a crash leaves either the old
file or the new one, never half of one.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> target = Path(tempfile.mkdtemp()) / "out.txt"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("done")
    >>> target.read_text()
    'done'
"""

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
def atomic_path(
    path: str | os.PathLike[str], *, force: bool = False, fsync: bool = False
) -> Iterator[Path]:
    """Yield a temporary path; on success it replaces ``path`` in one rename, else it is removed.

    Args:
        path: The file to write.
        force: Replace an existing file (else :class:`~biocoreset.errors.OutputExistsError`).
        fsync: Flush the temporary file to disk before the rename (shards, checkpoints: files a
            resumed run trusts after a crash of the machine).
    """
    target = check_output(path, force=force)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if fsync:
            with open(tmp_path, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()

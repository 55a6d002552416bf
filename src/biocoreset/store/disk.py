"""Write failures as :class:`OSError`: a full disk under ``torch.save`` or ``safetensors``.

``torch.save`` reports a failed write (a full disk, a quota) as a :class:`RuntimeError` with a
message from its zip writer (``[enforce fail at inline_container.cc:...] . unexpected pos ...``),
and ``safetensors`` as its own ``SafetensorError``. Neither is an :class:`OSError`, so neither
reached the command line's one-line file-system message. :func:`write_errors` turns them into one,
naming the file and saying whether the disk is full; the temporary file of
:func:`~biocoreset.store.atomic.atomic_path` is removed as usual, so nothing half-written is left.

Example:
    >>> try:
    ...     with write_errors("/tmp/x/model.pt"):
    ...         raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
    ... except OSError as exc:
    ...     print(exc.filename, "|", exc.strerror.split(" (")[0])
    /tmp/x/model.pt | could not write the file
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

__all__ = ["as_os_error", "write_errors"]

_NEARLY_FULL = 1 << 20  # bytes left on the file system below which a failed write is "disk full"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _is_write_error(exc: BaseException) -> bool:
    return isinstance(exc, RuntimeError) or type(exc).__name__ == "SafetensorError"


def _free_bytes(path: Path) -> int | None:
    folder = path.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def as_os_error(exc: BaseException, path: str | os.PathLike[str]) -> OSError:
    """An :class:`OSError` for a failed write of ``path`` (``ENOSPC`` when the disk is full)."""
    text = _first_line(exc)
    free = _free_bytes(Path(path))
    nearly_full = free is not None and free < _NEARLY_FULL
    full = "No space left" in text or "StorageFull" in text or nearly_full
    if full:
        said = "No space left" in text  # safetensors' own words; torch.save's do not say it
        reason = "No space left on device" + ("" if said else f" ({text})")
        return OSError(errno.ENOSPC, reason, os.fspath(path))
    return OSError(errno.EIO, f"could not write the file ({text})", os.fspath(path))


@contextlib.contextmanager
def write_errors(path: str | os.PathLike[str]) -> Iterator[None]:
    """Re-raise a :class:`RuntimeError` (``torch.save``) or ``SafetensorError`` of the block as
    an :class:`OSError` naming ``path`` (see the module docstring); other errors pass through."""
    try:
        yield
    except OSError:
        raise
    except Exception as exc:
        if not _is_write_error(exc):
            raise
        raise as_os_error(exc, path) from exc

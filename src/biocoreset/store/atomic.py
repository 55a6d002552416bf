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
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from biocoreset.errors import OutputExistsError, OutputPathError

__all__ = ["atomic_path", "check_output", "check_writable", "make_dirs", "staged_folder"]


def check_output(path: str | os.PathLike[str], *, force: bool) -> Path:
    """Refuse to overwrite ``path`` unless ``force``; return it as a :class:`Path`."""
    p = Path(path)
    if p.is_dir():
        raise OutputExistsError(
            f"{str(p)!r} is a folder; choose a file path for this output (or remove the folder)."
        )
    if p.exists() and not force:
        raise OutputExistsError(
            f"{str(p)!r} already exists; pass force=True (--force) to overwrite it."
        )
    return p


def check_writable(path: str | os.PathLike[str], *, what: str = "output path") -> Path:
    """Check that ``path`` can be created: no parent is a file and the nearest existing parent is a
    writable folder. Nothing is created.

    Raises:
        OutputPathError: Naming ``path`` and the parent at fault.

    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "some.fasta"; _ = f.write_text(">a\\nA\\n")
    >>> check_writable(f / "out.parquet")
    Traceback (most recent call last):
    ...
    biocoreset.errors.OutputPathError: the output path '.../some.fasta/out.parquet' cannot be created: '.../some.fasta' is a file, not a folder.
    """
    p = Path(path)
    parent = p.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise OutputPathError(
            f"the {what} {str(p)!r} cannot be created: {str(parent)!r} is a file, not a folder."
        )
    try:  # a probe (access() says yes to root even where nothing can be created, e.g. /proc)
        os.rmdir(tempfile.mkdtemp(prefix=".biocoreset-probe-", dir=parent))
    except OSError as exc:
        raise OutputPathError(
            f"the {what} {str(p)!r} cannot be created: nothing can be written in "
            f"{str(parent)!r} ({exc.strerror or exc})."
        ) from exc
    return p


def make_dirs(path: str | os.PathLike[str], *, what: str = "output folder") -> Path:
    """``mkdir -p`` that fails with one clear :class:`~biocoreset.errors.OutputPathError`."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputPathError(
            f"the {what} {str(p)!r} cannot be created ({exc.strerror or exc}); choose another path."
        ) from exc
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
    make_dirs(target.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise OutputPathError(
            f"the output path {str(target)!r} cannot be written ({exc.strerror or exc}); choose "
            "another path."
        ) from exc
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes it private; the result is a normal file
    try:
        yield tmp_path
        if fsync:
            with open(tmp_path, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def staged_folder(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success its files move into ``path`` (the whole
    folder is renamed when ``path`` does not exist yet), on failure it is removed.

    Example:
        >>> import tempfile
        >>> out = Path(tempfile.mkdtemp()) / "coreset"
        >>> with staged_folder(out) as stage:
        ...     _ = (stage / "ids.txt").write_text("a")
        >>> sorted(p.name for p in out.iterdir())
        ['ids.txt']
    """
    target = check_writable(path, what="output folder")
    parent = make_dirs(target.absolute().parent)
    try:
        stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent))
    except OSError as exc:
        raise OutputPathError(
            f"the output folder {str(target)!r} cannot be written ({exc.strerror or exc})."
        ) from exc
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(stage, 0o777 & ~umask)  # mkdtemp makes it private; the folder is the user's output
    try:
        yield stage
        if not target.exists():
            os.replace(stage, target)
        else:
            for f in sorted(stage.iterdir()):
                os.replace(f, target / f.name)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)

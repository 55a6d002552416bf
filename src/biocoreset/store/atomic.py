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
from collections.abc import Iterable, Iterator
from pathlib import Path

from biocoreset.errors import OutputExistsError, OutputPathError
from biocoreset.store._killpoint import kill_point

__all__ = [
    "atomic_path",
    "check_not_cwd",
    "check_not_input",
    "check_output",
    "check_writable",
    "make_dirs",
]


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
    if target.is_symlink() and target.exists():  # written through: the link stays a link
        target = Path(os.path.realpath(target))
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
        kill_point(f"rename:{target.name}")
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def check_not_cwd(dest: str | os.PathLike[str]) -> None:
    """Refuse an output folder that is the current folder or one of its parents (it would be
    renamed away as a whole)."""
    here = Path.cwd().resolve()
    d = Path(dest).resolve()
    if d == here or d in here.parents:
        raise OutputPathError(
            f"the output folder {str(dest)!r} is the current folder or holds it; it is replaced "
            "as a whole, so choose a new folder for it (e.g. -o results)."
        )


def check_not_input(
    inputs: Iterable[str | os.PathLike[str] | None],
    outputs: Iterable[str | os.PathLike[str]],
    *,
    command: str,
) -> None:
    """Refuse when an output path (written, replaced or deleted) is one of the inputs or holds one.

    Raises:
        OutputPathError: Naming the input and the output, before anything is touched.

    >>> check_not_input(["data/c.fa"], ["data/c.fa"], command="score")
    Traceback (most recent call last):
    ...
    biocoreset.errors.OutputPathError: score: the output 'data/c.fa' is the input 'data/c.fa'; writing it would destroy the input. Choose another output path.
    """
    ins = [(str(i), Path(i).resolve()) for i in inputs if i is not None and str(i) != ""]
    for o in outputs:
        out = Path(o).resolve()
        for shown, inp in ins:
            if inp == out:
                raise OutputPathError(
                    f"{command}: the output {str(o)!r} is the input {shown!r}; writing it would "
                    "destroy the input. Choose another output path."
                )
            if out in inp.parents:
                raise OutputPathError(
                    f"{command}: the output {str(o)!r} holds the input {shown!r}; replacing it "
                    "could destroy the input. Choose another output path."
                )

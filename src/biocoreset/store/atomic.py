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
import re
import shutil
import tempfile
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path

from biocoreset.errors import OutputExistsError, OutputPathError

__all__ = [
    "atomic_path",
    "check_not_cwd",
    "check_not_input",
    "check_output",
    "check_writable",
    "make_dirs",
    "recover_dir",
    "replace_dir",
    "staged_folder",
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
def staged_folder(
    path: str | os.PathLike[str], *, own: Collection[str] | None = None
) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` by
    :func:`replace_dir` (all-old or all-new), on failure it is removed.

    Args:
        path: The output folder.
        own: Names the command writes into ``path``: an old one the new result lacks is dropped;
            any other entry of the old folder (the user's) is kept (``None``: keep nothing old).

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
    recover_dir(target, own=own)
    try:
        stage = Path(
            tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=parent)
        )
    except OSError as exc:
        raise OutputPathError(
            f"the output folder {str(target)!r} cannot be written ({exc.strerror or exc})."
        ) from exc
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(stage, 0o777 & ~umask)  # mkdtemp makes it private; the folder is the user's output
    try:
        yield stage
        replace_dir(stage, target, own=own)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)


# -- folder replacement: all-old or all-new -------------------------------------------------------
#
# replace_dir(stage, dest) runs four steps, each one rename or one delete:
#   1. dest  -> .<dest>.<pid>.old     (the old result, aside)
#   2. stage -> dest                  (the new result, in place)
#   3. entries of the aside that are not the command's own outputs (the user's) -> dest
#   4. delete the aside
# A crash leaves dest absent (after 1) or new (after 2); recover_dir(dest), called by the next
# run of a command writing dest, renames the aside back (dest absent) or finishes steps 3-4, and
# deletes stale stages (.<dest>.<pid>.XXXXXXXX.tmp) of dead processes. Nothing else is touched.

_RANDOM = r"[a-z0-9_]{8}"


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # a leftover of this very process (an earlier, failed attempt)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def _is_own(name: str, own: Collection[str] | None) -> bool:
    if own is None:
        return True
    if name in own:
        return True
    # a temporary file of atomic_path for one of the own files (a kill -9 leftover)
    m = re.fullmatch(rf"\.(.+)\.(?:\d+\.)?{_RANDOM}\.tmp", name)
    return bool(m and m.group(1) in own)


def _carry(aside: Path, dest: Path, own: Collection[str] | None) -> None:
    for entry in sorted(aside.iterdir()):
        if not _is_own(entry.name, own) and not (dest / entry.name).exists():
            os.replace(entry, dest / entry.name)


def recover_dir(
    dest: str | os.PathLike[str],
    *,
    own: Collection[str] | None = None,
    keep: str | os.PathLike[str] | None = None,
) -> None:
    """Finish or undo a :func:`replace_dir` of ``dest`` that a crash interrupted, and delete the
    stale staging folders of ``dest`` left by killed processes.

    Only siblings named by this module's patterns for ``dest`` are touched: ``.<name>.<pid>.old``
    and ``.<name>.<pid>.XXXXXXXX.tmp`` folders whose process is gone, and ``.<name>.XXXXXXXX.tmp``
    folders of earlier versions. ``keep`` (a stage in use) is never removed.
    """
    d = Path(dest).absolute()
    parent = d.parent
    if not parent.is_dir() or not d.name:
        return
    name = re.escape(d.name)
    kept = Path(keep).absolute() if keep is not None else None
    for entry in sorted(parent.iterdir()):
        if entry == kept:
            continue
        m = re.fullmatch(rf"\.{name}\.(\d+)\.old", entry.name)
        if m and entry.is_dir() and not _alive(int(m.group(1))):
            if not d.exists():
                os.replace(entry, d)  # the crash came between steps 1 and 2: the old one returns
            else:
                _carry(entry, d, own)
                shutil.rmtree(entry)
            continue
        m = re.fullmatch(rf"\.{name}\.(?:(\d+)\.)?{_RANDOM}\.tmp", entry.name)
        if m and entry.is_dir() and not (m.group(1) and _alive(int(m.group(1)))):
            shutil.rmtree(entry)


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


def replace_dir(
    stage: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    own: Collection[str] | None = None,
) -> Path:
    """Put the folder ``stage`` at ``dest``: readers see the old folder or the new one, never a mix.

    Args:
        stage: The new result, a folder beside ``dest`` (same file system).
        dest: The output folder.
        own: Names the command writes: old entries outside it (the user's files) move into the
            new folder (``None``: the whole old folder is the command's and goes).

    Raises:
        OutputPathError: ``dest`` is the current folder or one of its parents.
    """
    stage_p, dest_p = Path(stage), Path(dest)
    if not dest_p.exists():
        os.replace(stage_p, dest_p)
        return dest_p
    check_not_cwd(dest_p)
    aside = dest_p.absolute().parent / f".{dest_p.absolute().name}.{os.getpid()}.old"
    if aside.exists():
        recover_dir(dest_p, own=own, keep=stage_p)
    os.replace(dest_p, aside)  # step 1
    try:
        os.replace(stage_p, dest_p)  # step 2
    except BaseException:
        os.replace(aside, dest_p)  # undo step 1: the old folder stays
        raise
    _carry(aside, dest_p, own)  # step 3
    shutil.rmtree(aside)  # step 4
    return dest_p


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

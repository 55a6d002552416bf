"""One owner for a command's own output, replaced with ``--force`` (see docs/reliability.md).

Every command that writes an output folder (``select``, ``diagnose``, ``finetune``, pretrain's
``final/``, ``run``, ``demo``) goes through :class:`OwnedOutput`; score files (one file, one
rename) follow the same rules through :class:`~biocoreset.store.shards.ScoreStore`. The rules:

* **--force has one meaning**: the old output stays intact until the new one is complete; then it
  is swapped in, all-old or all-new (:func:`replace_dir`). A killed or failed run leaves the old
  output.
* **Only its own**: a command replaces the entries it writes (``own``); any other entry of an old
  folder (the user's) is moved into the new one. Nothing of the user's is deleted.
* **Recovery first**: before any check, a swap that a kill interrupted is finished or undone
  (:func:`recover_dir`): the old folder returns, or the user's files reach the new one. A reader
  that finds the output missing is told what happened (:func:`missing_output_note`).
* **Symbolic links are written through**: ``-o link`` where ``link`` points to a folder replaces
  the folder it points to; the link stays a link and nothing of the user's moves out of the
  target. A link to nothing is refused with one line. A hidden ``.<name>.<pid>.old`` link left by
  earlier versions (which moved the link itself) is put back.
* **One writer at a time**: a lock file ``.<name>.lock`` beside the output (created with
  ``O_EXCL``; it names the pid and host) is held from the staging to the swap; a second run is
  refused with one line naming the holder; the lock of a process that is gone is removed.

Example:
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp()) / "coreset"
    >>> with OwnedOutput(out, own={"ids.txt"}, command="select").replace() as stage:
    ...     _ = (stage / "ids.txt").write_text("a")
    >>> sorted(p.name for p in out.parent.iterdir())
    ['coreset']
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Collection, Iterable, Iterator
from pathlib import Path

from biocoreset.errors import OutputExistsError, OutputPathError
from biocoreset.store._killpoint import kill_point
from biocoreset.store.atomic import check_not_cwd, check_not_input, check_writable, make_dirs
from biocoreset.store.lock import FolderLock

__all__ = [
    "OwnedOutput",
    "missing_output_note",
    "recover_dir",
    "replace_dir",
    "resolve_output",
    "staged_folder",
]

Own = Collection[str] | Callable[[str], bool] | None
"""The names a command writes into its folder: a collection, a predicate, or ``None`` (the whole
old folder is the command's)."""


def resolve_output(path: str | os.PathLike[str]) -> Path:
    """Where an output named ``path`` is written: ``path`` itself, or the target of the symbolic
    link ``path`` (written through: the link stays).

    Raises:
        OutputPathError: ``path`` is a link to nothing.
    """
    p = Path(path)
    if not p.is_symlink():
        return p
    if not p.exists():
        raise OutputPathError(
            f"the output {str(p)!r} is a symbolic link to {os.readlink(p)!r}, which does not "
            "exist; create its target or choose another output path."
        )
    return Path(os.path.realpath(p))


class OwnedOutput:
    """A command's output folder.

    Args:
        path: The output as the user named it (a symbolic link is written through).
        own: What the command writes into it (see :data:`Own`).
        marker: Names whose presence marks an earlier output of the command (default: ``own``,
            when it is a collection).
        command: The command, for messages.
        exclusive: A non-empty folder holding no ``marker`` is refused (the command owns its
            whole folder), ``force`` or not.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        own: Own,
        command: str,
        marker: Iterable[str] | None = None,
        exclusive: bool = False,
    ) -> None:
        self.path = Path(path)
        self.own = own
        self.command = command
        if marker is None and isinstance(own, Collection) and not isinstance(own, str):
            marker = own
        self.marker = tuple(marker or ())
        self.exclusive = exclusive

    @property
    def target(self) -> Path:
        """The folder written (:func:`resolve_output`)."""
        return resolve_output(self.path)

    @property
    def lock(self) -> FolderLock:
        """The lock file ``.<name>.lock`` beside the target."""
        t = self.target.absolute()
        return FolderLock(t.parent / f".{t.name}.lock", owner=f"{str(self.path)!r}")

    # -- before any work --------------------------------------------------------------------

    def recover(self) -> None:
        """Refuse when another live process is writing the output; then finish or undo a swap a
        kill interrupted (:func:`recover_dir`). Call it before any "already exists" check."""
        t = self.target
        self.lock.check()
        self._drop_stale_lock()
        if self.path.is_symlink() or not self.path.exists():
            recover_dir(self.path, own=self.own)  # a link moved aside by an earlier version
        recover_dir(t, own=self.own)

    def check(self, *, force: bool, inputs: Iterable[str | os.PathLike[str] | None] = ()) -> bool:
        """Refuse an output the command must not write, before any work; return whether it
        holds an earlier output.

        Raises:
            OutputExistsError: The output is a file; an earlier output without ``force``; with
                ``exclusive``, a non-empty folder that is not the command's.
            OutputPathError: It is (or holds) an input, the current folder, a link to nothing, or
                cannot be created.
            ConfigError: Another live process is writing it.
        """
        out, t = self.path, self.target
        check_not_input(inputs, [out], command=self.command)
        if t.exists() and not t.is_dir():
            raise OutputExistsError(
                f"{self.command}: the output {str(out)!r} is a file; choose a folder for the output."
            )
        check_writable(t, what="output folder")
        self.recover()
        if not t.is_dir():
            return False
        check_not_cwd(t)
        existing = [n for n in self.marker if (t / n).exists()]
        if self.exclusive and not existing and any(t.iterdir()):
            raise OutputExistsError(
                f"{self.command}: the output folder {str(out)!r} is not empty and is not a "
                f"{self.command} output (it holds none of {', '.join(self.marker)}); --force "
                f"replaces only a {self.command} output, never other files: choose a new or "
                "empty folder."
            )
        if existing and not force:
            raise OutputExistsError(
                f"{str(out)!r} already holds {', '.join(existing)}; pass force=True (--force) "
                "to overwrite."
            )
        return bool(existing)

    # -- the swap ---------------------------------------------------------------------------

    def _drop_stale_lock(self) -> None:
        lock = self.lock
        held = lock._read()
        if held and lock._stale(held):
            with contextlib.suppress(FileNotFoundError):
                lock.path.unlink()  # a killed run's: recovery is this module's job

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the output's lock (a stale one, of a process that is gone, is removed first).

        Raises:
            ConfigError: Another live process holds it.
        """
        lock = self.lock
        make_dirs(lock.path.parent)
        self._drop_stale_lock()
        lock.acquire()
        try:
            yield
        finally:
            lock.release()

    @contextlib.contextmanager
    def replace(self) -> Iterator[Path]:
        """Yield a new folder beside the output; when the block ends without error it replaces
        the output (:func:`replace_dir`), else it is removed and the old output stays.

        Raises:
            OutputPathError: The folder cannot be written.
            ConfigError: Another live process is writing the output.
        """
        target = check_writable(self.target, what="output folder")
        parent = make_dirs(target.absolute().parent)
        with self.locked():
            if self.path.is_symlink() or not self.path.exists():
                recover_dir(self.path, own=self.own)
            recover_dir(target, own=self.own)
            try:
                stage = Path(
                    tempfile.mkdtemp(
                        prefix=f".{target.absolute().name}.{os.getpid()}.",
                        suffix=".tmp",
                        dir=parent,
                    )
                )
            except OSError as exc:
                raise OutputPathError(
                    f"the output folder {str(self.path)!r} cannot be written "
                    f"({exc.strerror or exc})."
                ) from exc
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(stage, 0o777 & ~umask)  # mkdtemp makes it private; the output is the user's
            try:
                yield stage
                kill_point(f"staged:{target.name}")
                replace_dir(stage, target, own=self.own)
            finally:
                if stage.exists():
                    shutil.rmtree(stage, ignore_errors=True)


@contextlib.contextmanager
def staged_folder(path: str | os.PathLike[str], *, own: Own = None) -> Iterator[Path]:
    """:meth:`OwnedOutput.replace` for ``path`` (kept for callers of earlier versions).

    Example:
        >>> import tempfile
        >>> out = Path(tempfile.mkdtemp()) / "coreset"
        >>> with staged_folder(out) as stage:
        ...     _ = (stage / "ids.txt").write_text("a")
        >>> sorted(p.name for p in out.iterdir())
        ['ids.txt']
    """
    with OwnedOutput(path, own=own, command="biocoreset").replace() as stage:
        yield stage


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


def _is_own(name: str, own: Own) -> bool:
    if own is None:
        return True
    mine: Callable[[str], bool] = own if callable(own) else own.__contains__
    if mine(name):
        return True
    # a temporary file of atomic_path for one of the own files (a kill -9 leftover)
    m = re.fullmatch(rf"\.(.+)\.(?:\d+\.)?{_RANDOM}\.tmp", name)
    return bool(m and mine(m.group(1)))


def _carry(aside: Path, dest: Path, own: Own) -> None:
    for entry in sorted(aside.iterdir()):
        if not _is_own(entry.name, own) and not (dest / entry.name).exists():
            os.replace(entry, dest / entry.name)


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    else:
        p.unlink()


def _put_link_back(link: Path, dest: Path, own: Own) -> None:
    """Undo an earlier version's swap of a symbolic link ``dest``: that moved the link aside
    (``link``), put a real folder at ``dest`` and moved the user's files out of the link's target
    into it. Move ``dest``'s entries back into the target (the new result replaces the old own
    entries) and put the link back; on a name clash with a user's file, leave both as they are."""
    if not dest.exists() and not dest.is_symlink():
        os.replace(link, dest)  # killed between steps 1 and 2: the link returns
        return
    target = link.resolve()
    if dest.is_symlink() or not dest.is_dir() or not target.is_dir():
        return
    names = {e.name for e in dest.iterdir()}
    for e in sorted(target.iterdir()):  # old own entries the new result lacks
        if e.name not in names and _is_own(e.name, own):
            _remove(e)
    for e in sorted(dest.iterdir()):
        there = target / e.name
        if there.exists() or there.is_symlink():
            if not _is_own(e.name, own):
                continue  # a user's file on both sides: keep both
            _remove(there)
        shutil.move(str(e), str(there))
    if not any(dest.iterdir()):
        dest.rmdir()
        os.replace(link, dest)


def recover_dir(
    dest: str | os.PathLike[str],
    *,
    own: Own = None,
    keep: str | os.PathLike[str] | None = None,
) -> None:
    """Finish or undo a :func:`replace_dir` of ``dest`` that a crash interrupted, and delete the
    stale staging folders of ``dest`` left by killed processes.

    Only siblings named by this module's patterns for ``dest`` are touched: ``.<name>.<pid>.old``
    and ``.<name>.<pid>.XXXXXXXX.tmp`` folders whose process is gone, and ``.<name>.XXXXXXXX.tmp``
    folders of earlier versions. ``keep`` (a stage in use) is never removed. The user's files of
    an aside reach ``dest`` (``own`` says which entries are the command's; ``None``: all).
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
        if m and not _alive(int(m.group(1))):
            if entry.is_symlink():
                _put_link_back(entry, d, own)
            elif entry.is_dir():
                if not d.exists() and not d.is_symlink():
                    os.replace(entry, d)  # the crash came between steps 1 and 2: old returns
                else:
                    _carry(entry, d, own)
                    shutil.rmtree(entry)
            continue
        m = re.fullmatch(rf"\.{name}\.(?:(\d+)\.)?{_RANDOM}\.tmp", entry.name)
        if (
            m
            and entry.is_dir()
            and not entry.is_symlink()
            and not (m.group(1) and _alive(int(m.group(1))))
        ):
            shutil.rmtree(entry)


def replace_dir(
    stage: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    own: Own = None,
) -> Path:
    """Put the folder ``stage`` at ``dest``: readers see the old folder or the new one, never a mix.

    Args:
        stage: The new result, a folder beside ``dest`` (same file system).
        dest: The output folder (a symbolic link is written through: its target is replaced).
        own: Names the command writes: old entries outside it (the user's files) move into the
            new folder (``None``: the whole old folder is the command's and goes).

    Raises:
        OutputPathError: ``dest`` is the current folder or one of its parents.
    """
    stage_p, dest_p = Path(stage), resolve_output(dest)
    if not dest_p.exists():
        os.replace(stage_p, dest_p)
        return dest_p
    check_not_cwd(dest_p)
    aside = dest_p.absolute().parent / f".{dest_p.absolute().name}.{os.getpid()}.old"
    if aside.exists() or aside.is_symlink():
        recover_dir(dest_p, own=own, keep=stage_p)
    os.replace(dest_p, aside)  # step 1
    kill_point(f"step1:{dest_p.name}")
    try:
        os.replace(stage_p, dest_p)  # step 2
    except BaseException:
        os.replace(aside, dest_p)  # undo step 1: the old folder stays
        raise
    kill_point(f"step2:{dest_p.name}")
    _carry(aside, dest_p, own)  # step 3
    kill_point(f"step3:{dest_p.name}")
    shutil.rmtree(aside)  # step 4
    return dest_p


def missing_output_note(path: str | os.PathLike[str]) -> str:
    """For a reader that finds ``path`` missing: what happened to it, when a replacement of it was
    cut between its rename steps (an empty string otherwise).

    >>> missing_output_note("/no/such/folder")
    ''
    """
    p = Path(path).absolute()
    if not p.parent.is_dir() or not p.name:
        return ""
    for entry in sorted(p.parent.iterdir()):
        m = re.fullmatch(rf"\.{re.escape(p.name)}\.(\d+)\.old", entry.name)
        if not m:
            continue
        if _alive(int(m.group(1))):
            return (
                f" (it is being replaced by process {m.group(1)} right now; retry when that "
                "finishes)"
            )
        return (
            f" (a replacement of it was interrupted: process {m.group(1)} was killed between its "
            f"rename steps; the previous version is kept in {str(entry)!r}; rerun the command "
            f"that writes {str(path)!r} to put it back, or rename that folder to {p.name!r})"
        )
    return ""

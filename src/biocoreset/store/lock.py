"""A lock file naming the process (pid and host) that works in a folder.

A second process that finds the lock held by a live process is refused with one line naming the
holder; a lock whose process is gone (same host) is stale and taken over with a warning. A lock
held from another host cannot be checked and counts as live.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> lock = FolderLock(Path(tempfile.mkdtemp()) / "lock", owner="'scores.parquet'")
    >>> lock.acquire(); lock.path.exists()
    True
    >>> lock.release(); lock.path.exists()
    False
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import warnings
from pathlib import Path
from typing import Any

from biocoreset.errors import BioCoresetWarning, ConfigError

__all__ = ["FolderLock", "pid_alive"]


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    except OSError:
        return False
    return True


class FolderLock:
    """The lock file ``path`` (JSON ``{"pid": ..., "host": ...}``).

    Args:
        path: The lock file.
        owner: What the lock protects, for messages (e.g. the output file).
    """

    def __init__(self, path: str | os.PathLike[str], *, owner: str) -> None:
        self.path = Path(path)
        self.owner = owner

    def _read(self) -> dict[str, Any] | None:
        try:
            held: dict[str, Any] = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}  # being written, or garbage: held by an unknown process
        return held if isinstance(held, dict) else {}

    @staticmethod
    def _mine(held: dict[str, Any]) -> bool:
        return held.get("pid") == os.getpid() and held.get("host") == socket.gethostname()

    @staticmethod
    def _stale(held: dict[str, Any]) -> bool:
        pid = held.get("pid")
        return (
            held.get("host") == socket.gethostname() and isinstance(pid, int) and not pid_alive(pid)
        )

    def check(self) -> None:
        """Refuse when another live process holds the lock.

        Raises:
            ConfigError: Naming the holder's pid and host and the lock file.
        """
        held = self._read()
        if held is None or self._stale(held) or self._mine(held):
            return
        raise ConfigError(
            f"{self.owner} is being written by another process (pid {held.get('pid', '?')} on "
            f"{held.get('host', '?')}; lock file {str(self.path)!r}). Wait for it to finish; if "
            "that process is gone, delete the lock file and rerun."
        )

    def acquire(self) -> None:
        """Take the lock (its folder must exist); take over a stale one with a warning.

        Raises:
            ConfigError: Another live process holds it.
        """
        for _ in range(5):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                held = self._read()
                if held is None:
                    continue  # released meanwhile
                if self._mine(held):
                    return
                self.check()  # raises unless stale
                warnings.warn(
                    f"taking over the stale lock of {self.owner}: pid {held.get('pid')} on "
                    f"{held.get('host')} is gone (interrupted); its work is resumed.",
                    BioCoresetWarning,
                    stacklevel=3,
                )
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
                continue
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    json.dump({"pid": os.getpid(), "host": socket.gethostname()}, fh)
            except BaseException:  # e.g. a full disk: an empty lock would block every later run
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()  # created by this call (O_EXCL): ours to remove
                raise
            return
        raise ConfigError(f"could not take the lock {str(self.path)!r}; rerun the command.")

    def release(self) -> None:
        """Remove the lock if this process holds it (otherwise do nothing)."""
        held = self._read()
        if held and self._mine(held):
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

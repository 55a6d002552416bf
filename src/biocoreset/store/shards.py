"""Resumable, sharded score files.

While scoring into ``scores.parquet``, biocoreset keeps a work folder ``scores.parquet.parts/``
beside it::

    scores.parquet.parts/
      manifest.json            what is being computed: the run's fingerprint and its hash
      curvature.pt             the fitted curvature (so a resumed run does not refit)
      shard-00000000.parquet   rows [0, S)           written as soon as they are scored
      shard-00000001.parquet   rows [S, 2S)
      checksum-00000000.sha256 the SHA-256 of shard 0, written after it
      lock                     pid and host of the process scoring into the folder
      ...

Each shard holds ``shard_size`` consecutive rows of the (validated) input and is written to a
temporary file, flushed to disk and renamed, so a shard either exists whole or not at all. Rerunning
the same command after a crash (even ``kill -9``) finds the manifest, checks that the fingerprint —
configuration, model weights, data digest, library version — is unchanged, restores the curvature and
scores only the missing shards. A changed fingerprint refuses to resume and names what changed.
When every shard exists they are merged, in row order and checked for gaps and duplicates, into the
final file (written to a temporary file and renamed), and the work folder is removed. An existing
final file is never overwritten without ``force``.

Shard ``k`` is the same row range whatever the number of processes, so a run may be resumed with a
different ``torchrun`` world size (the default shard size, which depends on the world size, is taken
from the manifest when resuming); under ``torchrun`` every rank writes its own shards into the same
folder (a shared file system across nodes) and rank 0 merges.

Every finished shard has a checksum file beside it (``checksum-K.sha256``, written atomically
after the shard; the manifest is rank 0's, while shards are written by every rank, so each shard
carries its own). A shard without one was cut short by a crash and is scored again; a shard whose
bytes no longer match its checksum (replaced or edited after it was written) stops the resume and
the merge with an error naming it: delete it and rerun to rescore it.

Only one process at a time may score into a work folder: :meth:`ScoreStore.prepare` takes the
``lock`` file (rank 0 only under ``torchrun``; the other ranks work under rank 0's lock). A second
process gets a one-line error naming the pid and host holding it; a lock whose process is gone
(same host) is stale and taken over with a warning.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from biocoreset.errors import ConfigError, InputError, OutputExistsError
from biocoreset.runtime.distributed import DistContext
from biocoreset.store.atomic import atomic_path, check_writable
from biocoreset.store.curvature_state import (
    load_curvature,
    restore_curvature,
    save_curvature,
    snapshot_curvature,
)
from biocoreset.store.lock import FolderLock
from biocoreset.store.owned import resolve_output
from biocoreset.store.result import is_score_file
from biocoreset.store.shard_merge import iter_shards, merge_shards, read_halves
from biocoreset.store.shard_parts import (
    HALF_COLUMNS,
    MemorySink,
    ShardRecord,
    Sink,
    _diff,
    file_sha256,
    fingerprint_hash,
)

__all__ = [
    "HALF_COLUMNS",
    "MANIFEST_NAME",
    "MemorySink",
    "ScoreStore",
    "ShardRecord",
    "Sink",
    "fingerprint_hash",
    "restore_curvature",
    "snapshot_curvature",
]

MANIFEST_NAME = "manifest.json"
CURVATURE_NAME = "curvature.pt"
LOCK_NAME = "lock"
CHECKSUM_SUFFIX = ".sha256"
_SHARD_RE = re.compile(r"^shard-(\d{8})\.parquet$")
_WORK_NAME = re.compile(
    rf"^(?:{re.escape(MANIFEST_NAME)}|{re.escape(CURVATURE_NAME)}|{LOCK_NAME}|shard-\d{{8}}\.parquet"
    rf"|checksum-\d{{8}}{re.escape(CHECKSUM_SUFFIX)}|\..*\.tmp)$"
)
"""The names the store writes into its work folder (anything else there is the user's)."""
_FORMAT = 1


class ScoreStore:
    """The final score file and its work folder.

    Args:
        output: The final Parquet file.

    Example:
        >>> import tempfile, os
        >>> store = ScoreStore(os.path.join(tempfile.mkdtemp(), "s.parquet"))
        >>> store.prepare({"n": 2}, num_rows=2, shard_size=1, force=False)
        False
        >>> for k, rid in enumerate("ab"):
        ...     store.write_shard(ShardRecord.of(k, rows=[k], ids=[rid], scores=[1.0 + k],
        ...                                      loss=[0.5], length=[4]))
        >>> sorted(store.completed_shards())
        [0, 1]
        >>> store.merge({"seed": 0}).name
        's.parquet'
        >>> store.parts.exists()
        False
    """

    def __init__(self, output: str | os.PathLike[str]) -> None:
        self.output = resolve_output(output)  # a symbolic link is written through
        self.parts = self.output.with_name(self.output.name + ".parts")
        self.manifest: dict[str, Any] | None = None
        self.lock = FolderLock(self.parts / LOCK_NAME, owner=f"{str(self.output)!r}")

    # -- life cycle ----------------------------------------------------------------------------

    def check_output(self, *, force: bool) -> None:
        """Refuse an existing final file unless ``force``.

        Raises:
            OutputExistsError: The final file exists and ``force`` is false.
        """
        if self.output.exists() and not force:
            raise OutputExistsError(
                f"{str(self.output)!r} already exists; pass force=True (--force) to overwrite it."
            )
        if self.output.is_dir():
            raise OutputExistsError(
                f"{str(self.output)!r} is a folder; the score output must be a file path."
            )
        if self.output.exists() and not is_score_file(self.output):
            raise OutputExistsError(
                f"{str(self.output)!r} exists and is not a biocoreset score file; force=True "
                "(--force) replaces only a score file, never other files: choose another path."
            )
        check_writable(self.output, what="score output")
        self.check_parts()

    def prepare(
        self,
        fingerprint: Mapping[str, Any],
        *,
        num_rows: int,
        shard_size: int,
        force: bool,
        adopt_shard_size: bool = False,
    ) -> bool:
        """Create the work folder, or check an existing one can be resumed.

        Args:
            fingerprint: Everything that determines the scores (JSON-serialisable).
            num_rows: Rows to score.
            shard_size: Rows per shard.
            force: Replace an existing final file (when the new one is merged) and discard an
                unfinished run of another configuration (one of the same is resumed).
            adopt_shard_size: ``shard_size`` is a default, not a request: an unfinished run of the
                same fingerprint is resumed with the shard size it started with (the default
                depends on the number of ranks, which may change between runs). The shard size
                used is ``manifest["shard_size"]``.

        Returns:
            Whether an unfinished run is resumed.

        Raises:
            OutputExistsError: The final file exists and ``force`` is false.
            ConfigError: An unfinished run with a different fingerprint exists (names what differs).
        """
        self.check_output(force=force)
        self.check_lock()  # before --force may discard another live process's folder
        self.check_parts()
        if (
            force
            and self.parts.exists()
            and not self._same_run(fingerprint, num_rows, None if adopt_shard_size else shard_size)
        ):
            # only unfinished work of another configuration goes (the same one is resumed); an
            # old final file stays until the new one replaces it in one rename (merge), so a
            # killed or failed run leaves yesterday's result
            shutil.rmtree(self.parts)
        path = self.parts / MANIFEST_NAME
        old: dict[str, Any] | None = self._read_manifest() if path.exists() else None
        if adopt_shard_size and old is not None and isinstance(old.get("shard_size"), int):
            shard_size = old["shard_size"]
        manifest = {
            "format": _FORMAT,
            "hash": fingerprint_hash(fingerprint),
            "num_rows": int(num_rows),
            "shard_size": int(shard_size),
            "fingerprint": dict(fingerprint),
        }
        if old is not None:
            if (
                old.get("hash") != manifest["hash"]
                or old.get("num_rows") != num_rows
                or (old.get("shard_size") != shard_size)
            ):
                changes = _diff(
                    {
                        **old.get("fingerprint", {}),
                        "num_rows": old.get("num_rows"),
                        "shard_size": old.get("shard_size"),
                    },
                    {**dict(fingerprint), "num_rows": num_rows, "shard_size": shard_size},
                )
                raise ConfigError(
                    f"{str(self.parts)!r} holds an unfinished run with a different configuration "
                    f"({'; '.join(changes[:6]) or 'fingerprint changed'}"
                    f"{' ...' if len(changes) > 6 else ''}). Rerun with the original settings to resume "
                    "it, or pass force=True (--force) to discard it and start over."
                )
            self.manifest = old
            self.acquire_lock()
            self._clean_temporaries()
            self.verify_shards()
            return True
        if self.parts.exists() and any(
            not p.name.endswith(".tmp") and p.name != LOCK_NAME for p in self.parts.iterdir()
        ):  # only the store's own names (check_parts), but no manifest
            raise ConfigError(
                f"{str(self.parts)!r} exists without a manifest (not a biocoreset work folder, or a "
                "crash before the run started); remove it or pass force=True (--force)."
            )
        self.parts.mkdir(parents=True, exist_ok=True)
        self.acquire_lock()
        self._clean_temporaries()
        self._write_json(path, manifest)
        self.manifest = manifest
        return False

    def _same_run(
        self, fingerprint: Mapping[str, Any], num_rows: int, shard_size: int | None
    ) -> bool:
        """Whether the work folder holds an unfinished run of this very fingerprint."""
        try:
            old = self._read_manifest()
        except ConfigError:  # no manifest, or a corrupt one
            return False
        return (
            old.get("hash") == fingerprint_hash(fingerprint)
            and old.get("num_rows") == num_rows
            and (shard_size is None or old.get("shard_size") == shard_size)
        )

    def check_parts(self) -> None:
        """Refuse a ``<output>.parts`` that is not a biocoreset work folder (a file, a link, or a
        folder holding anything but the store's own files): it is the user's, and ``--force``
        must not delete it.

        Raises:
            ConfigError: Naming the path and one entry that is not the store's.
        """
        p = self.parts
        if not p.exists() and not p.is_symlink():
            return
        if p.is_symlink() or not p.is_dir():
            raise ConfigError(
                f"{str(p)!r} exists and is not a biocoreset work folder (the work folder of "
                f"{str(self.output)!r} goes there); move it away or choose another output path."
            )
        foreign = sorted(e.name for e in p.iterdir() if not _WORK_NAME.match(e.name))
        if foreign:
            raise ConfigError(
                f"{str(p)!r} exists without a manifest and is not a biocoreset work folder (it holds "
                f"{foreign[0]!r}); the work "
                f"folder of {str(self.output)!r} goes there, and --force deletes only a work "
                "folder: move it away or choose another output path."
            )

    # -- lock ----------------------------------------------------------------------------------

    def check_lock(self) -> None:
        """Refuse a work folder another live process is scoring into (see :class:`FolderLock`)."""
        self.lock.check()

    def acquire_lock(self) -> None:
        """Take the work folder's lock (see :meth:`FolderLock.acquire`)."""
        self.lock.acquire()

    def release_lock(self) -> None:
        """Release the lock if this process holds it."""
        self.lock.release()

    def attach(self, fingerprint: Mapping[str, Any]) -> None:
        """Open a work folder another process prepared (other ``torchrun`` ranks).

        Raises:
            ConfigError: The manifest is missing or its hash differs from ``fingerprint``'s.
        """
        old = self._read_manifest()
        if old.get("hash") != fingerprint_hash(fingerprint):
            raise ConfigError(
                f"{str(self.parts)!r}: this process computed a different fingerprint than rank 0 "
                f"({'; '.join(_diff(old.get('fingerprint', {}), dict(fingerprint))[:4])}); every rank "
                "must run the same command on the same data and model."
            )
        self.manifest = old

    def _read_manifest(self) -> dict[str, Any]:
        path = self.parts / MANIFEST_NAME
        try:
            manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            return manifest
        except FileNotFoundError:
            raise ConfigError(
                f"{str(path)!r} is missing; the work folder was not prepared."
            ) from None
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"{str(path)!r} is corrupt ({exc}); remove {str(self.parts)!r} or pass --force."
            ) from exc

    def _write_json(self, path: Path, obj: Any) -> None:
        with atomic_path(path, force=True, fsync=True) as tmp:
            tmp.write_bytes(json.dumps(obj, sort_keys=True, indent=1, default=str).encode("utf-8"))

    def _clean_temporaries(self) -> None:
        for p in self.parts.glob(".*.tmp"):
            with contextlib.suppress(FileNotFoundError):  # another rank removed it first
                p.unlink()

    # -- shards --------------------------------------------------------------------------------

    def shard_path(self, k: int) -> Path:
        """Path of shard ``k``."""
        return self.parts / f"shard-{k:08d}.parquet"

    def completed_shards(self) -> set[int]:
        """Indices of the shards already on disk."""
        if not self.parts.exists():
            return set()
        out = set()
        names = {p.name for p in self.parts.iterdir()}
        for name in names:
            m = _SHARD_RE.match(name)
            if m and self.checksum_path(int(m.group(1))).name in names:  # else cut short: rescore
                out.add(int(m.group(1)))
        return out

    def checksum_path(self, k: int) -> Path:
        """Path of shard ``k``'s checksum file."""
        return self.parts / f"checksum-{k:08d}{CHECKSUM_SUFFIX}"

    def verify_shard(self, k: int) -> None:
        """Check that shard ``k`` still has the bytes it was written with.

        Raises:
            InputError: The shard or its checksum is missing, or they disagree (names the shard).
        """
        path, check = self.shard_path(k), self.checksum_path(k)
        try:
            expected = check.read_text(encoding="utf-8").split()[0]
        except (OSError, IndexError):
            raise InputError(
                f"shard {k} ({str(path)!r}) has no checksum file; delete the shard and rerun the "
                "same command to rescore it."
            ) from None
        if file_sha256(path) != expected:
            raise InputError(
                f"shard {k} ({str(path)!r}) does not match the SHA-256 recorded when it was written "
                "(it was replaced or modified since); delete it and rerun the same command to "
                "rescore it."
            )

    def verify_shards(self) -> None:
        """:meth:`verify_shard` for every finished shard (resuming trusts only intact shards)."""
        for k in sorted(self.completed_shards()):
            self.verify_shard(k)

    def write_shard(self, record: ShardRecord) -> None:
        """Write shard ``record.k`` atomically (temporary file, fsync, rename), then its checksum."""
        import pyarrow.parquet as pq

        k = record.k
        with contextlib.suppress(FileNotFoundError):  # rewritten: the old checksum is void
            self.checksum_path(k).unlink()
        with atomic_path(self.shard_path(k), force=True, fsync=True) as tmp:
            pq.write_table(record.table(), tmp)
            digest = file_sha256(tmp)
        with atomic_path(self.checksum_path(k), force=True, fsync=True) as tmp:
            tmp.write_text(f"{digest}  {self.shard_path(k).name}\n", encoding="utf-8")

    def iter_shards(self) -> Iterator[Any]:
        """Shard tables in row order, checked to cover every row exactly once
        (:func:`~biocoreset.store.shard_merge.iter_shards`)."""
        return iter_shards(self)

    def read_halves(self) -> tuple[np.ndarray, np.ndarray]:
        """The half-means of the mask draws and the lengths of every row
        (:func:`~biocoreset.store.shard_merge.read_halves`)."""
        return read_halves(self)

    def gather_halves(self, ctx: DistContext) -> tuple[np.ndarray, np.ndarray] | None:
        """:meth:`read_halves` on rank 0 (the shards of every rank are in the folder); ``None``
        on the other ranks."""
        return self.read_halves() if ctx.is_main else None

    # -- curvature -----------------------------------------------------------------------------

    @property
    def curvature_path(self) -> Path:
        """Where the fitted curvature is saved."""
        return self.parts / CURVATURE_NAME

    def save_curvature(self, curvature: Any) -> bool:
        """Save the fitted curvature (:func:`save_curvature`); ``False`` if it has no state."""
        return save_curvature(self.curvature_path, curvature)

    def load_curvature(self, curvature: Any, device: Any = "cpu") -> bool:
        """Restore the saved curvature (:func:`load_curvature`); ``False``: refit."""
        return load_curvature(self.curvature_path, curvature, device)

    # -- final file ----------------------------------------------------------------------------

    def merge(
        self, metadata: Mapping[str, Any], *, force: bool = False, progress: Any = None
    ) -> Path:
        """Merge the shards into the final file (atomically) and remove the work folder
        (:func:`~biocoreset.store.shard_merge.merge_shards`)."""
        return merge_shards(self, metadata, force=force, progress=progress)

    def finish(
        self,
        metadata: Callable[[], dict[str, Any]],
        ctx: DistContext,
        *,
        force: bool = False,
        progress: Callable[[int], Any] | None = None,
    ) -> Path:
        """Rank 0 merges the shards with ``metadata()`` (:meth:`merge`); every rank returns the
        final file."""
        meta = metadata()
        ctx.main_only(lambda: self.merge(meta, force=force, progress=progress))
        return self.output

"""Training checkpoints: model, optimizer, scheduler, RNG states and history in one file per step.

Files are ``<folder>/step-000001000.pt``, written through :func:`biocoreset.store.atomic.atomic_path`
(flushed to disk, then renamed), so a crash leaves whole checkpoints only; the newest is resumed.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = save_checkpoint(checkpoint_path(folder, 5), {"step": 5})
    >>> [(s, p.name) for s, p in list_checkpoints(folder)]
    [(5, 'step-000000005.pt')]
"""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from biocoreset.errors import InputError
from biocoreset.store.atomic import atomic_path
from biocoreset.store.disk import write_errors

__all__ = [
    "CHECKPOINT_DIR",
    "checkpoint_path",
    "list_checkpoints",
    "load_checkpoint",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
    "write_history",
]

CHECKPOINT_DIR = "checkpoints"
"""Subfolder of a pretraining run holding its checkpoints."""


def checkpoint_path(folder: Path, step: int) -> Path:
    """Path of the checkpoint after ``step`` optimizer steps."""
    return folder / f"step-{step:09d}.pt"


def list_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every checkpoint in ``folder``, oldest first."""
    if not folder.is_dir():
        return []
    out = []
    for p in folder.glob("step-*.pt"):
        try:
            out.append((int(p.stem.split("-", 1)[1]), p))
        except ValueError:
            continue
    return sorted(out)


def rng_state(device: torch.device) -> dict[str, Any]:
    """The torch (and CUDA) and Python RNG states."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def save_checkpoint(path: Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``path`` atomically (flushed to disk first); return ``path``."""
    with atomic_path(path, force=True, fsync=True) as tmp, write_errors(path):
        torch.save(payload, tmp)  # a full disk: an OSError naming the file, no partial file left
    return path


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint (``weights_only=True``).

    Raises:
        InputError: The file cannot be read (the message says to delete it).
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(
            f"checkpoint {str(path)!r} cannot be read ({exc}); delete it to resume from the previous one."
        ) from exc


def write_history(history: Sequence[Sequence[Any]], out: Path) -> Path:
    """Write ``loss.csv`` (``step, epoch, loss, lr`` per logged step) into ``out`` atomically."""
    path = out / "loss.csv"
    with atomic_path(path, force=True) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["step", "epoch", "loss", "lr"])
        for step, epoch, loss, lr in history:
            w.writerow([step, epoch, f"{loss:.6g}", f"{lr:.6g}"])
    return path

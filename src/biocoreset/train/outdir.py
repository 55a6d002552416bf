"""Output folders of ``pretrain`` and ``finetune``: recognise them, refuse anyone else's, replace
their models all-old or all-new.

A command deletes or replaces only paths it writes itself (:data:`PRETRAIN_FILES`,
:data:`FINETUNE_FILES`); a non-empty folder holding none of them is the user's, and is refused
with or without ``force``; an output path that is, or holds, one of the command's inputs is
refused before anything is touched.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from biocoreset.errors import OutputExistsError
from biocoreset.modelio.manifest import FINAL_DIR, MODEL_MANIFEST
from biocoreset.store.atomic import (
    check_not_cwd,
    check_not_input,
    check_output,
    recover_dir,
    staged_folder,
)
from biocoreset.train.checkpoints import CHECKPOINT_DIR

__all__ = [
    "FINETUNE_FILES",
    "PRETRAIN_FILES",
    "check_finetune_output",
    "check_own_folder",
    "discard_own",
    "write_model_folder",
]

PRETRAIN_FILES = (CHECKPOINT_DIR, FINAL_DIR, "loss.csv", "loss.png", "pretrain.json")
"""What ``pretrain`` writes into its run folder (``pretrain.json`` last: it marks a finished run)."""

FINETUNE_FILES = ("model.pt", "finetune.json", MODEL_MANIFEST)
"""Files that mark a ``finetune`` output folder."""


def check_finetune_output(
    folder: str | os.PathLike[str],
    *,
    force: bool,
    inputs: Sequence[str | os.PathLike[str] | None] = (),
) -> Path:
    """Refuse an output folder ``finetune`` must not write: a file, a non-empty folder that is not
    a ``finetune`` output, one that is (or holds) an input, or an earlier output without ``force``.

    Raises:
        OutputExistsError: As above (nothing is touched).
        OutputPathError: ``folder`` is (or holds) an input, or the current folder.
    """
    out = Path(folder)
    check_own_folder(out, FINETUNE_FILES, command="finetune", inputs=inputs, whole=True)
    for name in ("model.pt", "finetune.json"):
        check_output(out / name, force=force)
    return out


def check_own_folder(
    out: Path,
    marks: Iterable[str],
    *,
    command: str,
    inputs: Iterable[str | os.PathLike[str] | None],
    whole: bool = False,
) -> bool:
    """Refuse ``out`` unless it is new, empty or the command's own output; refuse an output path
    that is an input or holds one. Returns whether ``out`` holds an earlier output.

    Raises:
        OutputExistsError: ``out`` is a file, or a non-empty folder the command did not write.
        OutputPathError: ``out`` (or a path the command writes in it) is one of its inputs.
    """
    marks = tuple(marks)
    check_not_input(inputs, [out] if whole else [out / m for m in marks], command=command)
    if whole and out.is_dir():
        check_not_cwd(out)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(
            f"{command}: the output {str(out)!r} is a file; choose a folder for the output."
        )
    if not out.exists() or not any(out.iterdir()):
        return False
    if any((out / m).exists() for m in marks):
        return True
    raise OutputExistsError(
        f"{command}: the output folder {str(out)!r} is not empty and is not a {command} output "
        f"(it holds none of {', '.join(marks)}); --force replaces only a {command} output, never "
        "other files: choose a new or empty folder."
    )


def discard_own(out: Path, names: Iterable[str]) -> None:
    """Delete the command's own paths ``names`` in ``out`` (in order), nothing else."""
    for name in names:
        p = out / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()


def write_model_folder(dest: Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(stage)`` on a new folder beside ``dest``, then put it at ``dest`` by
    :func:`~biocoreset.store.atomic.replace_dir`: the model folder is the old one or the new one,
    never a mix. The user's files in an old ``dest`` are kept; stale staging folders of ``dest``
    (a killed earlier run) are removed first.

    Raises:
        OutputPathError: The folder cannot be written.
    """
    recover_dir(dest)  # first: an interrupted swap may bring the old folder back
    with staged_folder(dest, own=_own_entries(dest)) as stage:
        write(stage)
    return dest


def _own_entries(dest: Path) -> set[str] | None:
    """The entries of an old model folder that the library wrote: the files its manifest folder
    format produces (weights, config, tokenizer) — every entry but the user's, which are kept."""
    if not dest.is_dir():
        return None
    return {p.name for p in dest.iterdir() if _library_file(p.name)}


def _library_file(name: str) -> bool:
    return (
        name in FINETUNE_FILES
        or name
        in ("config.json", "model.safetensors", "pytorch_model.bin", "generation_config.json")
        or name.startswith(("tokenizer", "special_tokens", "vocab", "merges", "added_tokens"))
        or (name.startswith(tuple(f".{n}." for n in FINETUNE_FILES)) and name.endswith(".tmp"))
    )

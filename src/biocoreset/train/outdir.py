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
from biocoreset.store.atomic import check_not_cwd, check_not_input, check_output
from biocoreset.store.owned import OwnedOutput
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
    owned = _model_output(out, command="finetune")
    target = owned.target  # a symbolic link is written through
    check_own_folder(
        target, FINETUNE_FILES, command="finetune", inputs=inputs, whole=True, shown=out
    )
    owned.recover()  # first: a swap a kill interrupted is finished or undone
    check_own_folder(target, FINETUNE_FILES, command="finetune", inputs=(), whole=True, shown=out)
    for name in ("model.pt", "finetune.json"):
        check_output(target / name, force=force)
    return out


def check_own_folder(
    out: Path,
    marks: Iterable[str],
    *,
    command: str,
    inputs: Iterable[str | os.PathLike[str] | None],
    whole: bool = False,
    shown: Path | None = None,
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
            f"{command}: the output {str(shown or out)!r} is a file; choose a folder for the output."
        )
    if not out.exists() or not any(out.iterdir()):
        return False
    if any((out / m).exists() for m in marks):
        return True
    raise OutputExistsError(
        f"{command}: the output folder {str(shown or out)!r} is not empty and is not a {command} output "
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
    :func:`~biocoreset.store.owned.replace_dir`: the model folder is the old one or the new one,
    never a mix. The user's files in an old ``dest`` are kept; stale staging folders of ``dest``
    (a killed earlier run) are removed first.

    Raises:
        OutputPathError: The folder cannot be written.
    """
    with _model_output(dest, command="write").replace() as stage:  # recovery first, then swap
        write(stage)
    return dest


def _model_output(dest: Path, *, command: str) -> OwnedOutput:
    """A model folder: the library's files (weights, config, tokenizer: :func:`_library_file`)
    are replaced; every other entry (the user's) is kept, also by the recovery after a kill."""
    return OwnedOutput(dest, own=_library_file, marker=FINETUNE_FILES, command=command)


def _library_file(name: str) -> bool:
    return (
        name in FINETUNE_FILES
        or name
        in ("config.json", "model.safetensors", "pytorch_model.bin", "generation_config.json")
        or name.startswith(("tokenizer", "special_tokens", "vocab", "merges", "added_tokens"))
        or (name.startswith(tuple(f".{n}." for n in FINETUNE_FILES)) and name.endswith(".tmp"))
    )

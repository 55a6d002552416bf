"""Loaders for published protein benchmark files (paper Appendix B.2).

* :func:`load_flip_ss` — NetSurfP-2.0 secondary structure as split by FLIP (three aligned FASTA files).
* :func:`load_cb513` — CB513 CSV (``input, dssp3, dssp8, disorder, cb513_mask``).
* :func:`load_deeploc` — DeepLoc 1.0 TSV: membrane-bound vs soluble (binary) or 10-class location.
* :func:`load_tmbed` — TMbed 3-line FASTA: membrane vs soluble, or per-residue topology.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from biocoreset.bench.data import Example
from biocoreset.bench.loaders.generic import iter_fasta_headers, open_text, read_rows
from biocoreset.errors import ConfigError, InputError

__all__ = ["load_cb513", "load_deeploc", "load_flip_ss", "load_tmbed"]

FLIP_SPLITS = ("train", "valid", "test")


def _flip_files(folder: Path) -> tuple[Path, Path, Path]:
    names = ("sequences", "sampled", "mask")
    found = []
    for name in names:
        hits = sorted(folder.glob(f"*{name}.fasta*"))
        if not hits:
            raise InputError(
                f"{str(folder)!r} has no '*{name}.fasta[.gz]' file (FLIP secondary-structure layout)."
            )
        found.append(hits[0])
    return found[0], found[1], found[2]


def load_flip_ss(folder: str | os.PathLike[str], split: str = "train") -> list[Example]:
    """NetSurfP-2.0 3-state secondary structure in the FLIP layout.

    ``folder`` holds ``*sequences.fasta[.gz]`` (sequences), ``*sampled.fasta[.gz]`` (H/E/C labels,
    header ``SET=train|test VALIDATION=True|False``) and ``*mask.fasta[.gz]`` (1 = resolved).

    Args:
        folder: The folder.
        split: ``"train"`` (SET=train, VALIDATION=False), ``"valid"`` (VALIDATION=True) or ``"test"``.

    Raises:
        InputError: Files out of step (ids or lengths differ; naming the record).
    """
    if split not in FLIP_SPLITS:
        raise ConfigError(f"split must be one of {', '.join(FLIP_SPLITS)}, got {split!r}.")
    seq_f, lab_f, mask_f = _flip_files(Path(folder))
    out = []
    rows = zip(
        iter_fasta_headers(seq_f),
        iter_fasta_headers(lab_f),
        iter_fasta_headers(mask_f),
        strict=True,
    )
    for n, ((h1, seq), (h2, lab), (h3, mask)) in enumerate(rows, 1):
        rid = h1.split()[0]
        if h2.split()[0] != rid or h3.split()[0] != rid:
            raise InputError(
                f"FLIP files disagree at record {n}: ids {rid!r}, {h2.split()[0]!r}, {h3.split()[0]!r}."
            )
        if not (len(seq) == len(lab) == len(mask)):
            raise InputError(
                f"FLIP record {rid!r}: lengths {len(seq)}, {len(lab)}, {len(mask)} differ."
            )
        tags = dict(t.split("=", 1) for t in h2.split()[1:] if "=" in t)
        is_test = tags.get("SET") == "test"
        is_valid = tags.get("VALIDATION") == "True"
        which = "test" if is_test else ("valid" if is_valid else "train")
        if which != split:
            continue
        out.append(
            Example(
                id=rid,
                sequence=seq.upper(),
                label=lab.upper(),
                mask=np.frombuffer(mask.encode(), dtype=np.uint8) == ord("1"),
            )
        )
    if not out:
        raise InputError(f"no FLIP record in split {split!r} under {str(folder)!r}.")
    return out


def load_cb513(path: str | os.PathLike[str], *, states: int = 3) -> list[Example]:
    """CB513 (NetSurfP-2.0 CSV layout): ``input`` sequence, ``dssp3``/``dssp8`` labels, ``cb513_mask``.

    Args:
        path: The CSV.
        states: 3 (H/E/C) or 8 (DSSP letters).
    """
    if states not in (3, 8):
        raise ConfigError(f"states must be 3 or 8, got {states!r}.")
    out = []
    for lineno, row in read_rows(path, "csv"):
        where = f"{str(path)!r} line {lineno}"
        seq = row["input"].strip().upper()
        lab = row[f"dssp{states}"].strip()
        mask_text = (row.get("cb513_mask") or "").split()
        mask = np.asarray([float(x) > 0.5 for x in mask_text]) if mask_text else None
        if len(lab) != len(seq) or (mask is not None and mask.size != len(seq)):
            raise InputError(f"{where}: sequence, labels and mask lengths differ.")
        out.append(Example(id=f"cb513:{lineno}", sequence=seq, label=lab, mask=mask))
    if not out:
        raise InputError(f"{str(path)!r} holds no record.")
    return out


DEEPLOC_TARGETS = ("membrane", "location")


def load_deeploc(
    path: str | os.PathLike[str], split: str | None = None, *, target: str = "membrane"
) -> list[Example]:
    """DeepLoc 1.0 TSV (``id, [split,] sequence, location, membrane, ...``).

    Args:
        path: The TSV.
        split: Keep rows whose ``split`` column equals this (``"train"``, ``"val"``); ``None``: all.
            ``"test"`` keeps all rows of a file without a ``split`` column.
        target: ``"membrane"``: binary membrane-bound (``M`` → 1) vs soluble (``S`` → 0); rows with
            ``U`` (unknown) are skipped. ``"location"``: the 10-class location.
    """
    if target not in DEEPLOC_TARGETS:
        raise ConfigError(f"target must be one of {', '.join(DEEPLOC_TARGETS)}, got {target!r}.")
    out = []
    for lineno, row in read_rows(path, "tsv"):
        if split is not None and "split" in row and row["split"] != split:
            continue
        where = f"{str(path)!r} line {lineno}"
        seq = row["sequence"].strip().upper()
        if target == "membrane":
            m = row.get("membrane", "").strip()
            if m == "U":
                continue
            if m not in ("M", "S"):
                raise InputError(f"{where}: membrane label {m!r} is not M, S or U.")
            label: object = int(m == "M")
        else:
            label = row["location"].strip()
        out.append(Example(id=row.get("id") or f"deeploc:{lineno}", sequence=seq, label=label))
    if not out:
        raise InputError(f"{str(path)!r} holds no record for split {split!r}.")
    return out


TMBED_TARGETS = ("membrane", "topology")


def load_tmbed(
    path: str | os.PathLike[str],
    *,
    target: str = "membrane",
    exclude: str | os.PathLike[str] | None = None,
) -> list[Example]:
    """TMbed 3-line FASTA records (``>header`` / sequence / per-residue labels).

    Args:
        path: One CV split file.
        target: ``"membrane"``: 1 when any residue is a transmembrane helix or strand (``HhBb``),
            else 0. ``"topology"``: the per-residue label string (``U`` = unresolved is masked out).
        exclude: Optional file of ids or headers (compared by the first ``|`` field, ``>`` ignored) to
            skip, e.g. TMbed's blacklist.
    """
    if target not in TMBED_TARGETS:
        raise ConfigError(f"target must be one of {', '.join(TMBED_TARGETS)}, got {target!r}.")
    skip: set[str] = set()
    if exclude is not None:
        lines = Path(exclude).read_text(encoding="utf-8").split()
        skip = {ln.lstrip(">").split("|", 1)[0] for ln in lines if ln.strip()}
    out = []
    with open_text(path) as fh:
        lines = [ln.rstrip("\n") for ln in fh if ln.strip()]
    if len(lines) % 3:
        raise InputError(
            f"{str(path)!r}: {len(lines)} lines is not a whole number of 3-line records."
        )
    for k in range(0, len(lines), 3):
        header, seq, lab = lines[k : k + 3]
        if not header.startswith(">"):
            raise InputError(
                f"{str(path)!r} line {k + 1}: expected a '>' header, got {header[:30]!r}."
            )
        rid = header[1:].split("|", 1)[0].strip()
        if rid in skip:
            continue
        if len(seq) != len(lab):
            raise InputError(
                f"{str(path)!r} record {rid!r}: {len(seq)} residues but {len(lab)} labels."
            )
        if target == "membrane":
            out.append(
                Example(id=rid, sequence=seq.upper(), label=int(any(c in "HhBb" for c in lab)))
            )
        else:
            mask = np.asarray([c != "U" for c in lab])
            out.append(Example(id=rid, sequence=seq.upper(), label=lab, mask=mask))
    if not out:
        raise InputError(f"{str(path)!r} holds no record.")
    return out

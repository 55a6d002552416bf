"""Benchmark data loaders: published formats and generic ones, by name.

:data:`FORMATS` maps a format name to a :class:`Format`: a reader ``read(path, split, **options)``,
the kind of examples it yields and whether one path holds several splits (GraphProt prefixes, the
FLIP folder). :func:`load_split` turns a task's ``train`` / ``test`` / ``valid`` paths into a
:class:`~biocoreset.bench.data.Split`; without a ``test`` path a single-split format is split at
random (``test_fraction``, ``split_seed``).

Example:
    >>> sorted(FORMATS)[:3]
    ['archiveii', 'bpseq-folder', 'cb513']
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

from biocoreset.bench.data import Example, Split, random_split
from biocoreset.bench.loaders import generic, protein, rna
from biocoreset.bench.loaders.generic import detect_format
from biocoreset.errors import ConfigError, InputError

__all__ = ["FORMATS", "Format", "load_split", "read_examples"]

PathSpec = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]


@attrs.frozen(kw_only=True)
class Format:
    """A named data format.

    Attributes:
        read: ``read(path, split, **options) -> list[Example]``.
        kind: ``"sequence"``, ``"structure"``, ``"residue"``, ``"contact"``, ``"distance"`` or ``"pair"``.
        multi_split: One path holds every split (``split`` selects one).
        description: One line for docs and errors.
    """

    read: Callable[..., list[Example]]
    kind: str
    multi_split: bool = False
    description: str = ""


def _labelled(path: Any, split: str, **options: Any) -> list[Example]:
    return generic.load_labelled(path, **options)


def _structure_auto(path: Any, split: str, **options: Any) -> list[Example]:
    if Path(path).is_dir():
        return rna.load_bpseq_folder(path)
    fmt = detect_format(path)
    if fmt == "jsonl":
        return rna.load_rgb_structures(path)
    if fmt == "tsv":
        return rna.load_archiveii(path, **options)
    raise InputError(
        f"{str(path)!r}: structure files are JSON lines, an ArchiveII-style TSV or a BPSEQ folder."
    )


def _deeploc(path: Any, split: str, **options: Any) -> list[Example]:
    return protein.load_deeploc(
        path, {"train": "train", "valid": "val", "test": None}[split], **options
    )


FORMATS: dict[str, Format] = {
    "labelled": Format(
        read=_labelled,
        kind="sequence",
        description="generic FASTA/CSV/TSV/JSONL with one label per sequence",
    ),
    "nrc": Format(
        read=lambda p, s, **o: rna.load_nrc(p, **o),
        kind="sequence",
        description="nRC FASTA, header = RNA class",
    ),
    "deepcrispr": Format(
        read=lambda p, s, **o: rna.load_deepcrispr(p, **o),
        kind="sequence",
        description="DeepCRISPR on-target TSV (target, ..., efficiency)",
    ),
    "m6a": Format(
        read=lambda p, s, **o: rna.load_m6a(p, **o),
        kind="sequence",
        description="CSV sequence,label",
    ),
    "graphprot": Format(
        read=lambda p, s, **o: rna.load_graphprot(p, s, **o),
        kind="sequence",
        multi_split=True,
        description="GraphProt prefix: <prefix>.{train,ls}.{positives,negatives}.fa[.gz]",
    ),
    "deeploc": Format(
        read=_deeploc, kind="sequence", description="DeepLoc TSV (membrane M/S or location)"
    ),
    "tmbed": Format(
        read=lambda p, s, **o: protein.load_tmbed(p, **o),
        kind="sequence",
        description="TMbed 3-line FASTA: membrane (any H/h/B/b) vs soluble",
    ),
    "structure": Format(
        read=_structure_auto,
        kind="structure",
        description="JSONL dot-bracket, ArchiveII TSV or BPSEQ folder (by name)",
    ),
    "rgb-jsonl": Format(
        read=lambda p, s, **o: rna.load_rgb_structures(p, **o),
        kind="structure",
        description='JSON lines {"seq", "label": dot-bracket}',
    ),
    "archiveii": Format(
        read=lambda p, s, **o: rna.load_archiveii(p, **o),
        kind="structure",
        description="ArchiveII TSV with pairs_1based",
    ),
    "bpseq-folder": Format(
        read=lambda p, s, **o: rna.load_bpseq_folder(p),
        kind="structure",
        description="a folder of .bpseq files",
    ),
    "residue-labels": Format(
        read=lambda p, s, **o: generic.load_residue_labels(p, **o),
        kind="residue",
        description="generic CSV/TSV/JSONL sequence + per-residue labels (+ mask)",
    ),
    "flip": Format(
        read=lambda p, s, **o: protein.load_flip_ss(p, s),
        kind="residue",
        multi_split=True,
        description="FLIP/NetSurfP folder: sequences, sampled (labels), mask FASTA",
    ),
    "cb513": Format(
        read=lambda p, s, **o: protein.load_cb513(p, **o), kind="residue", description="CB513 CSV"
    ),
    "tmbed-topology": Format(
        read=lambda p, s, **o: protein.load_tmbed(p, target="topology", **o),
        kind="residue",
        description="TMbed per-residue topology",
    ),
    "contact-jsonl": Format(
        read=lambda p, s, **o: generic.load_maps(p, target="contact", **o),
        kind="contact",
        description="JSON lines with sequence and contacts (0-based pairs)",
    ),
    "distance-jsonl": Format(
        read=lambda p, s, **o: generic.load_maps(p, target="distance", **o),
        kind="distance",
        description="JSON lines with sequence and an L x L distance matrix",
    ),
    "pairs": Format(
        read=lambda p, s, **o: generic.load_pairs(p, **o),
        kind="pair",
        description="CSV/TSV/JSONL sequence_a, sequence_b, label",
    ),
}
"""Format name → :class:`Format`."""


def read_examples(fmt: str, path: PathSpec, split: str, **options: Any) -> list[Example]:
    """Read one split with the named format; a list of paths is read in order and concatenated.

    Raises:
        ConfigError: Unknown format (the message lists the choices).
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown data format {fmt!r}; choices: {', '.join(sorted(FORMATS))}.")
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    out: list[Example] = []
    for p in paths:
        out.extend(FORMATS[fmt].read(p, split, **options))
    return out


def load_split(
    fmt: str,
    *,
    train: PathSpec | Sequence[Example],
    test: PathSpec | Sequence[Example] | None = None,
    valid: PathSpec | Sequence[Example] | None = None,
    test_fraction: float = 0.2,
    split_seed: int = 0,
    options: dict[str, Any] | None = None,
    kind: str | Sequence[str] | None = None,
) -> Split:
    """Build a :class:`Split` from paths (or ready :class:`Example` lists).

    Args:
        fmt: Format name (see :data:`FORMATS`).
        train: Training path(s) or examples.
        test: Test path(s) or examples; ``None``: the same path for a multi-split format, otherwise a
            seeded random ``test_fraction`` of ``train``.
        valid: Validation path(s) or examples.
        test_fraction: Fraction held out when ``test`` is ``None`` for a single-split format.
        split_seed: Seed of that split (independent of the training seeds).
        options: Reader options (e.g. ``label_type``, ``region``, ``target``).
        kind: Expected example kind(s); a format of another kind is an error.

    Raises:
        ConfigError: Unknown format or a format of the wrong kind.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown data format {fmt!r}; choices: {', '.join(sorted(FORMATS))}.")
    spec = FORMATS[fmt]
    kinds = (kind,) if isinstance(kind, str) else tuple(kind or ())
    if kinds and spec.kind not in kinds:
        fitting = sorted(k for k, f in FORMATS.items() if f.kind in kinds)
        raise ConfigError(
            f"data format {fmt!r} yields {spec.kind} examples; this task needs {' or '.join(kinds)}: "
            f"{', '.join(fitting)}."
        )
    opts = dict(options or {})

    def read(p: Any, split: str) -> list[Example]:
        if isinstance(p, (list, tuple)) and p and isinstance(p[0], Example):
            return list(p)
        return read_examples(fmt, p, split, **opts)

    train_ex = read(train, "train")
    if test is None and spec.multi_split and not _is_examples(train):
        test_ex = read(train, "test")
    elif test is None:
        train_ex, test_ex = random_split(train_ex, test_fraction, split_seed)
    else:
        test_ex = read(test, "test")
    valid_ex: list[Example] = []
    if valid is not None:
        valid_ex = read(valid, "valid")
    if not train_ex or not test_ex:
        raise InputError(f"format {fmt!r}: the train or test split is empty.")
    return Split(train=train_ex, test=test_ex, valid=valid_ex)


def _is_examples(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and bool(value) and isinstance(value[0], Example)

"""Generic benchmark file formats, so users can bring their own data.

Files may be gzip-compressed (detected by content). The format is taken from the name (``.gz``
ignored): ``.fa/.fasta/.fna/.fas`` FASTA, ``.csv`` CSV, ``.tsv/.tab/.txt`` TSV, ``.jsonl/.json``
JSON lines. CSV/TSV files have a header row.

* Labelled sequences (:func:`load_labelled`): columns/keys ``sequence`` (or ``seq``, ``input``) and
  ``label`` (or ``target``, ``y``), optional ``id``. In FASTA the label is in the header:
  ``>id label`` or ``>id|label`` (``header_label="last-field"``) or the whole header
  (``header_label="whole"``, e.g. nRC).
* Sequence pairs (:func:`load_pairs`): ``sequence_a``/``sequence_b`` (or ``seq_a``/``seq_b``,
  ``protein_a``/``protein_b``) and ``label`` (or ``affinity``).
* Per-residue labels (:func:`load_residue_labels`): ``sequence`` and ``labels`` (one letter per
  residue), optional ``mask`` (``0``/``1`` string or list).
* Maps (:func:`load_maps`, JSON lines only): ``sequence``, and ``contacts`` (0-based ``[i, j]``
  pairs) or ``distance`` (an ``L × L`` nested list, ``null`` for unknown).
"""

from __future__ import annotations

import csv
import gzip
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from biocoreset.bench.data import Example, normalise_rna
from biocoreset.errors import ConfigError, InputError

__all__ = [
    "FORMATS_BY_SUFFIX",
    "detect_format",
    "iter_fasta_headers",
    "load_labelled",
    "load_maps",
    "load_pairs",
    "load_residue_labels",
    "normalise",
    "open_text",
    "read_rows",
    "read_sequences",
]

FORMATS_BY_SUFFIX = {
    ".fa": "fasta",
    ".fasta": "fasta",
    ".fna": "fasta",
    ".fas": "fasta",
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".txt": "tsv",
    ".jsonl": "jsonl",
    ".json": "jsonl",
}
MOLECULES = ("rna", "protein", "none")
LABEL_TYPES = ("class", "binary", "float", "multilabel")

SEQUENCE_FIELDS = ("sequence", "seq", "input", "Sequence")
LABEL_FIELDS = ("label", "target", "y", "Label")
ID_FIELDS = ("id", "name", "ID")


def open_text(path: str | os.PathLike[str]) -> Any:
    """Open a plain or gzip text file (detected by its magic bytes).

    Raises:
        InputError: The file does not exist.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"data file {str(p)!r} does not exist.")
    with open(p, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(p, "rt", encoding="utf-8", newline="")
    return open(p, encoding="utf-8", newline="")


def detect_format(path: str | os.PathLike[str]) -> str:
    """``"fasta"``, ``"csv"``, ``"tsv"`` or ``"jsonl"`` from the file name.

    >>> detect_format("train.csv.gz"), detect_format("x.fa")
    ('csv', 'fasta')
    """
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    fmt = FORMATS_BY_SUFFIX.get(suffixes[-1]) if suffixes else None
    if fmt is None:
        raise InputError(
            f"cannot tell the format of {str(path)!r} from its name; use one of "
            f"{', '.join(sorted(FORMATS_BY_SUFFIX))} (optionally + .gz) or pass format=."
        )
    return fmt


def normalise(sequence: str, molecule: str) -> str:
    """Normalise a sequence for ``molecule`` (``"rna"``: upper case, T→U; ``"protein"``: upper case).

    >>> normalise("acgt", "rna"), normalise("mkt", "protein")
    ('ACGU', 'MKT')
    """
    if molecule == "rna":
        return normalise_rna(sequence)
    if molecule == "protein":
        return "".join(sequence.split()).upper()
    if molecule == "none":
        return sequence
    raise ConfigError(f"molecule must be one of {', '.join(MOLECULES)}, got {molecule!r}.")


def iter_fasta_headers(path: str | os.PathLike[str]) -> Iterator[tuple[str, str]]:
    """Stream ``(full header, sequence)`` pairs of a FASTA file (plain or gzip).

    Raises:
        InputError: The file is empty or not FASTA.
    """
    from Bio.SeqIO.FastaIO import SimpleFastaParser

    with open_text(path) as fh:
        first = fh.readline()
        while first and not first.strip():
            first = fh.readline()
        if not first:
            raise InputError(f"{str(path)!r} is empty: it holds no FASTA record.")
        if not first.startswith(">"):
            raise InputError(f"{str(path)!r} is not FASTA: its first line is {first[:40]!r}.")
        fh.seek(0)
        yield from SimpleFastaParser(fh)


def read_rows(
    path: str | os.PathLike[str], fmt: str | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Stream ``(line number, row dict)`` from a CSV/TSV (with header) or JSON-lines file.

    Raises:
        InputError: A JSON line that does not parse (naming the line).
    """
    fmt = fmt or detect_format(path)
    with open_text(path) as fh:
        if fmt in ("csv", "tsv"):
            reader = csv.DictReader(fh, delimiter="," if fmt == "csv" else "\t")
            for row in reader:
                yield reader.line_num, row
        elif fmt == "jsonl":
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(
                        f"{str(path)!r} line {lineno}: not valid JSON ({exc.msg})."
                    ) from None
                if not isinstance(row, dict):
                    raise InputError(
                        f"{str(path)!r} line {lineno}: expected a JSON object, got {type(row).__name__}."
                    )
                yield lineno, row
        else:
            raise ConfigError(f"read_rows handles csv, tsv and jsonl, not {fmt!r}.")


def _field(row: dict[str, Any], wanted: str | Sequence[str], where: str) -> Any:
    names = (wanted,) if isinstance(wanted, str) else tuple(wanted)
    for name in names:
        if name in row and row[name] is not None:
            return row[name]
    raise InputError(
        f"{where}: no {'/'.join(names)!s} field; the record has {', '.join(map(str, row))}."
    )


def _label(value: Any, label_type: str, where: str) -> Any:
    try:
        if label_type == "class":
            return str(value).strip()
        if label_type == "binary":
            v = float(value)
            if v not in (0.0, 1.0):
                raise ValueError
            return int(v)
        if label_type == "float":
            return float(value)
        if label_type == "multilabel":
            if isinstance(value, str):
                value = [x for x in value.replace(",", ";").split(";") if x.strip()]
            out = tuple(int(float(x)) for x in value)
            if any(x not in (0, 1) for x in out):
                raise ValueError
            return out
    except (TypeError, ValueError):
        raise InputError(f"{where}: label {value!r} is not a valid {label_type} label.") from None
    raise ConfigError(f"label_type must be one of {', '.join(LABEL_TYPES)}, got {label_type!r}.")


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}.")


def load_labelled(
    path: str | os.PathLike[str],
    *,
    label_type: str = "class",
    format: str = "auto",
    molecule: str = "rna",
    sequence_field: str | Sequence[str] = SEQUENCE_FIELDS,
    label_field: str | Sequence[str] = LABEL_FIELDS,
    id_field: str | Sequence[str] = ID_FIELDS,
    header_label: str = "last-field",
) -> list[Example]:
    """Sequences with one label each, from FASTA, CSV, TSV or JSON lines.

    Args:
        path: The file.
        label_type: ``"class"`` (str), ``"binary"`` (0/1), ``"float"`` or ``"multilabel"``
            (JSON list or ``;``-separated 0/1 string).
        format: ``"auto"`` (from the name), ``"fasta"``, ``"csv"``, ``"tsv"`` or ``"jsonl"``.
        molecule: Sequence normalisation: ``"rna"``, ``"protein"`` or ``"none"``.
        sequence_field: Column/key (or aliases) of the sequence.
        label_field: Column/key (or aliases) of the label.
        id_field: Column/key (or aliases) of the id; missing ids become ``<file stem>:<row>``.
        header_label: FASTA only: ``"last-field"`` (``>id label`` or ``>id|label``) or ``"whole"``.

    Raises:
        InputError: Missing fields, bad labels or empty sequences (naming file and line/record).
    """
    _check_choice("label_type", label_type, LABEL_TYPES)
    _check_choice("header_label", header_label, ("last-field", "whole"))
    fmt = detect_format(path) if format == "auto" else format
    stem = Path(path).name
    out: list[Example] = []
    if fmt == "fasta":
        for i, (header, seq) in enumerate(iter_fasta_headers(path)):
            where = f"{str(path)!r} record {i + 1} ({header[:30]!r})"
            if header_label == "whole":
                rid, raw = f"{stem}:{i + 1}", header.strip()
            else:
                parts = header.replace("|", " ").split()
                if len(parts) < 2:
                    raise InputError(
                        f"{where}: the header holds no label; expected '>id label' or '>id|label'."
                    )
                rid, raw = parts[0], parts[-1]
            out.append(_example(rid, seq, _label(raw, label_type, where), molecule, where))
    else:
        for lineno, row in read_rows(path, fmt):
            where = f"{str(path)!r} line {lineno}"
            seq = str(_field(row, sequence_field, where))
            label = _label(_field(row, label_field, where), label_type, where)
            try:
                rid = str(_field(row, id_field, where))
            except InputError:
                rid = f"{stem}:{lineno}"
            out.append(_example(rid, seq, label, molecule, where))
    if not out:
        raise InputError(f"{str(path)!r} holds no record.")
    return out


def _example(rid: str, seq: str, label: Any, molecule: str, where: str, **kw: Any) -> Example:
    seq = normalise(seq, molecule)
    if not seq:
        raise InputError(f"{where}: empty sequence.")
    return Example(id=rid, sequence=seq, label=label, **kw)


def read_sequences(
    path: str | os.PathLike[str],
    *,
    format: str = "auto",
    sequence_field: str | Sequence[str] = SEQUENCE_FIELDS,
) -> Iterator[tuple[str, str]]:
    """Stream ``(id, sequence)`` from FASTA, CSV, TSV or JSON lines (sequences as written).

    For tables without an id column the id is ``<file name>:<line>``.
    """
    fmt = detect_format(path) if format == "auto" else format
    stem = Path(path).name
    if fmt == "fasta":
        for i, (header, seq) in enumerate(iter_fasta_headers(path)):
            yield (header.split()[0] if header.strip() else f"{stem}:{i + 1}"), seq
        return
    for lineno, row in read_rows(path, fmt):
        where = f"{str(path)!r} line {lineno}"
        seq = str(_field(row, sequence_field, where))
        try:
            rid = str(_field(row, ID_FIELDS, where))
        except InputError:
            rid = f"{stem}:{lineno}"
        yield rid, seq


def load_pairs(
    path: str | os.PathLike[str],
    *,
    format: str = "auto",
    molecule: str = "protein",
    first_field: str | Sequence[str] = ("sequence_a", "seq_a", "protein_a", "sequence1", "seq1"),
    second_field: str | Sequence[str] = ("sequence_b", "seq_b", "protein_b", "sequence2", "seq2"),
    label_field: str | Sequence[str] = ("label", "affinity", "target", "y"),
) -> list[Example]:
    """Sequence pairs with a numeric label (e.g. binding affinity) from CSV, TSV or JSON lines.

    Raises:
        InputError: Missing fields or a label that is not a number (naming file and line).
    """
    fmt = detect_format(path) if format == "auto" else format
    stem = Path(path).name
    out = []
    for lineno, row in read_rows(path, fmt):
        where = f"{str(path)!r} line {lineno}"
        a = normalise(str(_field(row, first_field, where)), molecule)
        b = normalise(str(_field(row, second_field, where)), molecule)
        label = _label(_field(row, label_field, where), "float", where)
        try:
            rid = str(_field(row, ID_FIELDS, where))
        except InputError:
            rid = f"{stem}:{lineno}"
        if not a or not b:
            raise InputError(f"{where}: empty sequence in the pair.")
        out.append(Example(id=rid, sequence=a, sequence_b=b, label=label))
    if not out:
        raise InputError(f"{str(path)!r} holds no record.")
    return out


def _mask(value: Any, length: int, where: str) -> np.ndarray:
    if isinstance(value, str):
        items: list[Any] = value.split() if (" " in value.strip()) else list(value.strip())
    else:
        items = list(value)
    try:
        mask = np.asarray([float(x) for x in items]) > 0.5
    except ValueError:
        raise InputError(
            f"{where}: mask {str(value)[:30]!r} is not a 0/1 string or list."
        ) from None
    if mask.size != length:
        raise InputError(
            f"{where}: mask has {mask.size} entries for a sequence of {length} residues."
        )
    return mask


def load_residue_labels(
    path: str | os.PathLike[str],
    *,
    format: str = "auto",
    molecule: str = "protein",
    labels_field: str | Sequence[str] = ("labels", "label", "dssp3", "ss3"),
    mask_field: str | Sequence[str] = ("mask",),
) -> list[Example]:
    """Sequences with one label letter per residue (and an optional validity mask).

    Raises:
        InputError: Labels or mask not aligned with the sequence (naming file and line).
    """
    fmt = detect_format(path) if format == "auto" else format
    stem = Path(path).name
    out = []
    for lineno, row in read_rows(path, fmt):
        where = f"{str(path)!r} line {lineno}"
        seq = normalise(str(_field(row, SEQUENCE_FIELDS, where)), molecule)
        labels = "".join(str(_field(row, labels_field, where)).split())
        if len(labels) != len(seq):
            raise InputError(
                f"{where}: {len(labels)} labels for a sequence of {len(seq)} residues."
            )
        names = (mask_field,) if isinstance(mask_field, str) else tuple(mask_field)
        mask = None
        if any(row.get(n) is not None for n in names):
            mask = _mask(_field(row, names, where), len(seq), where)
        try:
            rid = str(_field(row, ID_FIELDS, where))
        except InputError:
            rid = f"{stem}:{lineno}"
        out.append(Example(id=rid, sequence=seq, label=labels, mask=mask))
    if not out:
        raise InputError(f"{str(path)!r} holds no record.")
    return out


def load_maps(
    path: str | os.PathLike[str],
    *,
    target: str,
    molecule: str = "rna",
    contact_threshold: float | None = None,
) -> list[Example]:
    """Contact or distance maps from JSON lines.

    Args:
        path: JSON lines with ``sequence`` (or ``seq``) and ``contacts`` (0-based pairs) or
            ``distance`` (``L × L`` nested list, ``null`` unknown).
        target: ``"contact"`` (label: ``[K, 2]`` pairs) or ``"distance"`` (label: ``[L, L]`` floats).
        molecule: Sequence normalisation.
        contact_threshold: For ``target="contact"`` from a ``distance`` field: pairs closer than this.

    Raises:
        InputError: Shapes that do not fit the sequence, or indices out of range.
    """
    _check_choice("target", target, ("contact", "distance"))
    stem = Path(path).name
    out = []
    for lineno, row in read_rows(path, "jsonl"):
        where = f"{str(path)!r} line {lineno}"
        seq = normalise(str(_field(row, SEQUENCE_FIELDS, where)), molecule)
        L = len(seq)
        rid = str(row.get("id", f"{stem}:{lineno}"))
        dist = None
        if "distance" in row:
            dist = np.asarray(
                [[np.nan if v is None else float(v) for v in r] for r in row["distance"]],
                dtype=np.float64,
            )
            if dist.shape != (L, L):
                raise InputError(
                    f"{where}: distance map of shape {dist.shape} for a sequence of {L} residues."
                )
        if target == "distance":
            if dist is None:
                raise InputError(f"{where}: no 'distance' field.")
            out.append(Example(id=rid, sequence=seq, label=dist))
            continue
        if "contacts" in row:
            pairs = np.asarray(row["contacts"], dtype=np.int64).reshape(-1, 2)
        elif dist is not None and contact_threshold is not None:
            i, j = np.nonzero(np.triu(np.nan_to_num(dist, nan=np.inf) < contact_threshold, k=1))
            pairs = np.stack([i, j], 1)
        else:
            raise InputError(
                f"{where}: no 'contacts' field (or 'distance' with contact_threshold=)."
            )
        if pairs.size and (pairs.min() < 0 or pairs.max() >= L):
            raise InputError(f"{where}: contact indices must be 0-based and < {L}.")
        pairs = np.sort(pairs, axis=1)
        pairs = pairs[pairs[:, 0] != pairs[:, 1]]
        out.append(Example(id=rid, sequence=seq, label=np.unique(pairs, axis=0).reshape(-1, 2)))
    if not out:
        raise InputError(f"{str(path)!r} holds no record.")
    return out

"""Loaders for published RNA benchmark files (paper Appendix B.1).

Each takes a path; nothing here assumes where the files live. Sequences are upper-cased and DNA
``T`` becomes ``U``.

* :func:`load_nrc` — nRC ncRNA type classification (FASTA, header = class).
* :func:`load_deepcrispr` — DeepCRISPR on-target regression (headerless TSV, 23-nt target, efficiency).
* :func:`load_m6a` — m6A modification sites (CSV ``sequence,label``).
* :func:`load_rgb_structures` — bpRNA/RNAStrAlign/ArchiveII JSON lines ``{"seq", "label"}``
  (dot-bracket).
* :func:`load_archiveii` — ArchiveII TSV (``sequence``, ``dot_bracket``, ``pairs_1based``).
* :func:`load_bpseq_folder` — a folder of ``.bpseq`` files.
* :func:`load_graphprot` — GraphProt RBP-24 CLIP sites (positive/negative FASTA per split).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from biocoreset.bench.data import Example, normalise_rna
from biocoreset.bench.loaders.generic import iter_fasta_headers, load_labelled, open_text, read_rows
from biocoreset.bench.loaders.structure import pairs_from_1based, parse_dot_bracket, read_bpseq
from biocoreset.errors import ConfigError, InputError

__all__ = [
    "load_archiveii",
    "load_bpseq_folder",
    "load_deepcrispr",
    "load_graphprot",
    "load_m6a",
    "load_nrc",
    "load_rgb_structures",
]


def load_nrc(path: str | os.PathLike[str]) -> list[Example]:
    """nRC type classification: FASTA whose header is the class name (ids ``<file>:<n>``).

    >>> # load_nrc("dataset_nRC_train.fasta")[0].label -> '5S_rRNA'
    """
    return load_labelled(
        path, format="fasta", header_label="whole", label_type="class", molecule="rna"
    )


def load_deepcrispr(
    path: str | os.PathLike[str], *, target_column: int = 4, label_column: int = -1
) -> list[Example]:
    """DeepCRISPR on-target regression: headerless TSV ``chrom, start, end, strand, target (23 nt),
    4 epigenetic tracks, efficiency``.

    Args:
        path: The ``*.repisgt`` TSV.
        target_column: 0-based column of the guide + PAM sequence.
        label_column: Column of the efficiency (default last).

    Raises:
        InputError: Short rows or a non-numeric efficiency (naming the line).
    """
    out = []
    with open_text(path) as fh:
        for lineno, row in enumerate(csv.reader(fh, delimiter="\t"), 1):
            if not row or not "".join(row).strip():
                continue
            where = f"{str(path)!r} line {lineno}"
            if len(row) <= max(target_column, 4):
                raise InputError(
                    f"{where}: {len(row)} columns; expected the DeepCRISPR layout (10 columns)."
                )
            try:
                label = float(row[label_column])
            except ValueError:
                raise InputError(
                    f"{where}: efficiency {row[label_column]!r} is not a number."
                ) from None
            seq = normalise_rna(row[target_column])
            if not seq:
                raise InputError(f"{where}: empty target sequence.")
            rid = f"{row[0]}:{row[1]}-{row[2]}:{row[3]}"
            out.append(Example(id=rid, sequence=seq, label=label))
    if not out:
        raise InputError(f"{str(path)!r} holds no record.")
    return out


def load_m6a(path: str | os.PathLike[str]) -> list[Example]:
    """m6A sites: CSV ``sequence,label`` (41-nt windows, label 0/1)."""
    return load_labelled(path, format="csv", label_type="binary", molecule="rna")


def load_rgb_structures(path: str | os.PathLike[str]) -> list[Example]:
    """Secondary structures as JSON lines ``{"seq": ..., "label": dot-bracket}`` (RGB benchmark layout).

    Also accepts ``sequence`` / ``structure`` / ``dot_bracket`` keys and an ``id``.

    Raises:
        InputError: A structure whose length differs from the sequence, or unbalanced brackets.
    """
    stem = Path(path).name
    out = []
    for lineno, row in read_rows(path, "jsonl"):
        where = f"{str(path)!r} line {lineno}"
        seq = normalise_rna(str(row.get("seq", row.get("sequence", ""))))
        db = row.get("label", row.get("structure", row.get("dot_bracket")))
        if not seq or db is None:
            raise InputError(
                f"{where}: needs 'seq' and 'label' (dot-bracket); has {', '.join(row)}."
            )
        db = str(db).strip()
        if len(db) != len(seq):
            raise InputError(
                f"{where}: structure of length {len(db)} for a sequence of {len(seq)} nt."
            )
        out.append(
            Example(
                id=str(row.get("id", f"{stem}:{lineno}")),
                sequence=seq,
                label=parse_dot_bracket(db, where=where),
            )
        )
    if not out:
        raise InputError(f"{str(path)!r} holds no record.")
    return out


def load_archiveii(
    path: str | os.PathLike[str], *, families: list[str] | None = None, pseudoknots: bool = True
) -> list[Example]:
    """ArchiveII TSV (``id, family, length, sequence, dot_bracket, pairs_1based``).

    Args:
        path: The TSV.
        families: Keep only these families (e.g. ``["tRNA", "5s"]``).
        pseudoknots: Keep pseudoknotted pairs (``pairs_1based``); ``False`` keeps only the ``()`` pairs
            of the dot-bracket.
    """
    out = []
    for lineno, row in read_rows(path, "tsv"):
        where = f"{str(path)!r} line {lineno}"
        if families is not None and row.get("family") not in families:
            continue
        seq = normalise_rna(row["sequence"])
        if pseudoknots and row.get("pairs_1based") is not None:
            pairs = pairs_from_1based(row["pairs_1based"], len(seq), where=where)
        else:
            db = "".join(c if c in "()" else "." for c in row["dot_bracket"])
            pairs = parse_dot_bracket(db, where=where)
        out.append(Example(id=row.get("id") or f"archiveii:{lineno}", sequence=seq, label=pairs))
    if not out:
        raise InputError(
            f"{str(path)!r} holds no record{' of families ' + str(families) if families else ''}."
        )
    return out


def load_bpseq_folder(folder: str | os.PathLike[str]) -> list[Example]:
    """Every ``*.bpseq`` file of a folder (id = file stem)."""
    files = sorted(Path(folder).glob("*.bpseq"))
    if not files:
        raise InputError(f"{str(folder)!r} holds no .bpseq file.")
    out = []
    for f in files:
        seq, pairs = read_bpseq(f)
        out.append(Example(id=f.stem, sequence=normalise_rna(seq), label=pairs))
    return out


GRAPHPROT_SPLITS = {"train": "train", "test": "ls", "ls": "ls"}


def load_graphprot(
    prefix: str | os.PathLike[str], split: str = "train", *, region: str = "full"
) -> list[Example]:
    """GraphProt RBP-24 binding sites of one protein and split.

    Reads ``<prefix>.<split>.positives.fa[.gz]`` (label 1) and ``<prefix>.<split>.negatives.fa[.gz]``
    (label 0), e.g. ``prefix = ".../ALKBH5_Baltz2012"``.

    Args:
        prefix: Path prefix of the protein's files.
        split: ``"train"`` or ``"test"`` (the ``ls`` files).
        region: ``"full"`` (site and flanking context, upper-cased) or ``"site"`` (the upper-case
            binding site only).

    Raises:
        InputError: A missing file, or ``region="site"`` on a record without upper-case letters.
    """
    if split not in GRAPHPROT_SPLITS:
        raise ConfigError(
            f"GraphProt split must be one of {', '.join(GRAPHPROT_SPLITS)}, got {split!r}."
        )
    if region not in ("full", "site"):
        raise ConfigError(f"region must be 'full' or 'site', got {region!r}.")
    tag = GRAPHPROT_SPLITS[split]
    out: list[Example] = []
    for cls, label in (("positives", 1), ("negatives", 0)):
        base = Path(f"{prefix}.{tag}.{cls}.fa")
        path = base if base.exists() else base.with_name(base.name + ".gz")
        if not path.exists():
            raise InputError(f"GraphProt file {str(base)!r} (or .gz) does not exist.")
        for i, (header, seq) in enumerate(iter_fasta_headers(path)):
            if region == "site":
                site = "".join(c for c in seq if c.isupper())
                if not site:
                    raise InputError(f"{str(path)!r} record {i + 1}: no upper-case binding site.")
                seq = site
            rid = f"{header.split(';', 1)[0]}:{cls}:{i + 1}"
            out.append(Example(id=rid, sequence=normalise_rna(seq), label=label))
    return out

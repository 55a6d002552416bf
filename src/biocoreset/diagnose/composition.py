"""What a coreset contains: labels, coverage, entropy, length — against random sets of its size.

Example:
    >>> import numpy as np
    >>> labels = np.array(["a", "a", "b", "c", "c", "c"])
    >>> comp = composition(np.array([0, 2]), labels, np.array([10, 20, 30, 40, 50, 60]))
    >>> comp["covered"], comp["labels"], comp["largest_share"], comp["median_length"]
    (2, 3, 0.5, 20.0)
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from biocoreset.errors import ConfigError, InputError

__all__ = [
    "UNLABELLED",
    "composition",
    "composition_summary",
    "labels_from_regex",
    "random_baseline",
    "read_id_file",
    "read_labels",
]

UNLABELLED = "(unlabelled)"
"""Label of sequences that a label table or pattern does not cover."""


def read_labels(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read a label table: one ``id<TAB>label`` per line; an ``id<TAB>label`` header line and lines
    starting with ``#`` are skipped; further columns are ignored.

    Raises:
        InputError: Missing file, a line without a tab (named by its number), or an id given twice
            with two labels.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"label file {str(p)!r} does not exist.")
    out: dict[str, str] = {}
    with p.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            line = line.rstrip("\r\n")
            if not line or line.startswith("#"):
                continue
            fields = line.split("\t")
            if len(fields) < 2:
                raise InputError(
                    f"{str(p)!r} line {number}: expected 'id<TAB>label', got {line[:60]!r}."
                )
            rid, label = fields[0].strip(), fields[1].strip()
            if number == 1 and (rid.lower(), label.lower()) == ("id", "label"):
                continue
            if out.get(rid, label) != label:
                raise InputError(
                    f"{str(p)!r} line {number}: id {rid!r} has two labels, {out[rid]!r} and {label!r}."
                )
            out[rid] = label
    if not out:
        raise InputError(f"label file {str(p)!r} holds no 'id<TAB>label' line.")
    return out


def labels_from_regex(headers: Iterable[str], pattern: str) -> list[str]:
    """The label of each header: the first group of ``pattern`` (or the whole match) found by
    :func:`re.search`; :data:`UNLABELLED` where it does not match.

    >>> labels_from_regex(["RF00001|X01556.1/3-118", "odd"], r"^(RF\\d+)")
    ['RF00001', '(unlabelled)']

    Raises:
        ConfigError: ``pattern`` is not a valid regular expression.
    """
    try:
        rx = re.compile(pattern)
    except re.error as exc:
        raise ConfigError(
            f"--label-regex {pattern!r} is not a valid regular expression: {exc}."
        ) from exc
    out = []
    for header in headers:
        m = rx.search(header)
        out.append((m.group(1) if m.groups() else m.group(0)) if m else UNLABELLED)
    return out


def read_id_file(path: str | os.PathLike[str]) -> list[str]:
    """Ids of a coreset: a ``coreset_ids.txt`` (one id per line) or a folder holding one.

    Raises:
        InputError: Neither a file nor a folder with ``coreset_ids.txt``.
    """
    p = Path(path)
    if p.is_dir():
        p = p / "coreset_ids.txt"
    if not p.is_file():
        raise InputError(
            f"coreset {str(path)!r}: expected a coreset folder (with coreset_ids.txt, as written by "
            "`biocoreset select`) or an id file."
        )
    return [line.strip() for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]


def _entropy(counts: Sequence[int]) -> float:
    total = sum(counts)
    return -sum(c / total * math.log(c / total) for c in counts if c) if total else 0.0


def composition(
    indices: np.ndarray, labels: np.ndarray | None, lengths: np.ndarray
) -> dict[str, Any]:
    """Size, median length and, with labels, coverage, entropy and the largest label's share.

    Args:
        indices: Rows of the set.
        labels: Label of every row (``None``: lengths only).
        lengths: Length of every row.

    Returns:
        ``size``, ``median_length``, and with labels ``covered`` (labels present), ``labels``
        (labels in the corpus, :data:`UNLABELLED` not counted), ``coverage`` (their ratio),
        ``entropy`` (natural log, over the set's labels) and ``largest_share``.
    """
    idx = np.asarray(indices, dtype=np.int64)
    out: dict[str, Any] = {
        "size": int(idx.size),
        "median_length": float(np.median(lengths[idx])) if idx.size else float("nan"),
    }
    if labels is not None:
        everything = {str(x) for x in labels.tolist()} - {UNLABELLED}
        counts = Counter(str(x) for x in labels[idx].tolist())
        present = set(counts) - {UNLABELLED}
        out.update(
            covered=len(present),
            labels=len(everything),
            coverage=len(present) / len(everything) if everything else float("nan"),
            entropy=_entropy(list(counts.values())),
            largest_share=max(counts.values()) / idx.size if idx.size else float("nan"),
        )
    return out


def random_baseline(
    n: int,
    size: int,
    labels: np.ndarray | None,
    lengths: np.ndarray,
    *,
    draws: int = 50,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Mean and sd of :func:`composition` over ``draws`` uniform random sets of ``size`` rows."""
    rng = np.random.default_rng([seed, 0xD1A6])
    rows = [
        composition(rng.choice(n, size=size, replace=False), labels, lengths) for _ in range(draws)
    ]
    keys = [k for k, v in rows[0].items() if isinstance(v, float) or k == "covered"]
    return {
        k: {"mean": float(np.mean([r[k] for r in rows])), "sd": float(np.std([r[k] for r in rows]))}
        for k in keys
    }


def composition_summary(
    indices: np.ndarray,
    lengths: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    seed: int = 0,
) -> list[str]:
    """Two lines for ``biocoreset select``: length against the corpus and against random sets of the
    same size, and (with labels) label coverage and the largest share.

    >>> L = np.arange(1, 101)
    >>> composition_summary(np.arange(10), L)[0]
    'length: median 5.5 (corpus 50.5; random sets of 10: 48.7 ± 10.3)'
    """
    idx = np.asarray(indices, dtype=np.int64)
    n = lengths.size
    mine = composition(idx, labels, lengths)
    base = random_baseline(n, idx.size, labels, lengths, draws=30, seed=seed)
    ml = base["median_length"]
    lines = [
        f"length: median {mine['median_length']:.1f} (corpus {float(np.median(lengths)):.1f}; "
        f"random sets of {idx.size:,}: {ml['mean']:.1f} ± {ml['sd']:.1f})"
    ]
    if labels is not None and mine["labels"]:
        cov = base["covered"]
        lines.append(
            f"labels: {mine['covered']} of {mine['labels']} covered (random: {cov['mean']:.1f} ± "
            f"{cov['sd']:.1f}); largest share {mine['largest_share']:.0%}"
        )
    else:
        lines.append(
            "labels: none given (see `biocoreset diagnose --labels/--label-regex` for coverage)"
        )
    return lines


def label_array(
    ids: Sequence[str],
    labels: Mapping[str, str] | None = None,
    regex: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> np.ndarray | None:
    """One label per id from a table (``labels``) or a pattern over the headers (or the ids)."""
    if labels is not None and regex is not None:
        raise ConfigError(
            "give either a label table (--labels) or a pattern (--label-regex), not both."
        )
    if labels is not None:
        return np.array([labels.get(i, UNLABELLED) for i in ids], dtype=object)
    if regex is not None:
        texts = [headers.get(i, i) for i in ids] if headers else list(ids)
        return np.array(labels_from_regex(texts, regex), dtype=object)
    return None

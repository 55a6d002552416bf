"""The coreset and the order of training: id lists, records, step plans, per-epoch seeds.

Everything here is a pure function of ``(seed, epoch, step)`` and the coreset, which makes a
pretraining run deterministic and exactly resumable.

Example:
    >>> load_coreset([("a", "ACGU"), ("b", "GG"), ("c", "UU")], ["c", "a"])
    [('a', 'ACGU'), ('c', 'UU')]
"""

from __future__ import annotations

import hashlib
import math
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from biocoreset.errors import ConfigError, InputError

if TYPE_CHECKING:
    from biocoreset.train.pretrain_config import PretrainConfig

__all__ = [
    "coreset_fingerprint",
    "epoch_mask_seed",
    "load_coreset",
    "plan_steps",
    "pretrain_order",
    "read_id_list",
    "seed_words",
]


def read_id_list(path: str | os.PathLike[str]) -> list[str]:
    """Read a coreset id list: one id per line (the first word); blank lines and ``#`` comments skipped.

    Raises:
        InputError: Missing file, a duplicated id (naming both lines) or no id at all.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"id list {str(p)!r} does not exist.")
    ids: list[str] = []
    seen: dict[str, int] = {}
    with open(p, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            rid = text.split()[0]
            if rid in seen:
                raise InputError(
                    f"{str(p)!r}: id {rid!r} appears twice (lines {seen[rid]} and {lineno}); a coreset "
                    "lists each sequence once."
                )
            seen[rid] = lineno
            ids.append(rid)
    if not ids:
        raise InputError(f"id list {str(p)!r} holds no id.")
    return ids


def load_coreset(
    corpus: Any, ids: Sequence[str] | str | os.PathLike[str] | None = None
) -> list[tuple[str, str]]:
    """The coreset's ``(id, sequence)`` records, in corpus order.

    The corpus is streamed once; only the selected records are kept in memory.

    Args:
        corpus: A FASTA path (plain or gzip) or an iterable of ``(id, sequence)`` pairs.
        ids: The coreset: an id-list file (see :func:`read_id_list`), a sequence of ids, or ``None``
            for the whole corpus.

    Raises:
        InputError: An id missing from the corpus, a selected id occurring twice in the corpus, or an
            empty coreset.
    """
    from biocoreset.data.sources import as_source

    source = as_source(corpus)
    if isinstance(ids, (str, os.PathLike)):
        ids = read_id_list(ids)
    wanted = None if ids is None else set(ids)
    if ids is not None and wanted is not None and len(wanted) != len(ids):
        dup = next(i for i, c in Counter(ids).items() if c > 1)
        raise InputError(f"coreset id {dup!r} is listed more than once.")
    records: list[tuple[str, str]] = []
    where: dict[str, int] = {}
    for i, (rid, seq) in enumerate(source):
        if wanted is not None and rid not in wanted:
            continue
        if rid in where:
            raise InputError(
                f"sequence id {rid!r} occurs twice in {source.describe()} (records {where[rid] + 1} and "
                f"{i + 1}); ids must be unique."
            )
        where[rid] = i
        records.append((rid, seq))
    if wanted is not None:
        missing = [rid for rid in ids if rid not in where]  # type: ignore[union-attr]
        if missing:
            raise InputError(
                f"{len(missing)} coreset id(s) are not in {source.describe()}, e.g. {missing[:3]!r}. "
                "Check that the id list was selected from this corpus."
            )
    if not records:
        raise InputError(f"the coreset is empty ({source.describe()}).")
    return records


def coreset_fingerprint(records: Sequence[tuple[str, str]]) -> str:
    """SHA-256 of the records (ids and sequences, in order): what a resumed run checks.

    >>> coreset_fingerprint([("a", "ACGU")])[:12]
    'ceb47da91324'
    """
    h = hashlib.sha256()
    for rid, seq in records:
        h.update(rid.encode("utf-8"))
        h.update(b"\t")
        h.update(seq.encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def plan_steps(n: int, config: PretrainConfig) -> tuple[int, int]:
    """``(steps_per_epoch, total_steps)`` for ``n`` coreset sequences.

    >>> from biocoreset.train.pretrain_config import PretrainConfig
    >>> plan_steps(100, PretrainConfig(batch_size=16, epochs=10))
    (7, 70)
    >>> plan_steps(100, PretrainConfig(batch_size=16, max_steps=5))
    (7, 5)
    >>> plan_steps(100, PretrainConfig(batch_size=16, epochs=2, reference_size=1000))
    (7, 126)
    """
    bs = config.batch_size
    if config.drop_last:
        if n < bs:
            raise ConfigError(f"drop_last with batch_size {bs} leaves no batch from {n} sequences.")
        per_epoch = n // bs
    else:
        per_epoch = math.ceil(n / bs)
    if config.max_steps is not None:
        total = config.max_steps
    elif config.reference_size is not None:
        total = config.epochs * math.ceil(config.reference_size / bs)
    else:
        total = config.epochs * per_epoch
    return per_epoch, total


def seed_words(*parts: int) -> int:
    """One 32-bit seed from several integers (NumPy ``SeedSequence``).

    >>> seed_words(0, 1) != seed_words(1, 0)
    True
    """
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(1)[0])


def epoch_mask_seed(seed: int, epoch: int, *, vary: bool = True) -> int:
    """Masking seed of ``epoch``: derived from ``(seed, epoch)`` (or ``seed`` itself when not ``vary``).

    >>> epoch_mask_seed(0, 0) != epoch_mask_seed(0, 1)
    True
    >>> epoch_mask_seed(3, 7, vary=False)
    3
    """
    return seed_words(seed, epoch, 0x4D41534B) if vary else int(seed)


def pretrain_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The order of the ``n`` coreset records in pretraining epoch ``epoch`` (seeded permutation).

    >>> sorted(pretrain_order(5, 0, 0).tolist())
    [0, 1, 2, 3, 4]
    """
    return np.random.default_rng([int(seed), int(epoch), 0x0DE5]).permutation(n)

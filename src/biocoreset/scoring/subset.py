"""``D_sub``: the fine-tuning and Fisher subset, drawn as a seeded function of the sequence ids.

The rule (``"id-hash-v1"``, recorded in the score metadata as ``subset_rule``):

1. each id gets a 64-bit key: ``fmix64(id_hash(id) XOR seed_word(seed))``, where ``id_hash`` is the
   8-byte BLAKE2b digest of the id (:func:`~biocoreset.data.validation.id_hash`, computed once by the
   index pass), ``seed_word`` the 8-byte BLAKE2b digest of the seed (personalised
   ``biocoreset.dsub``) and ``fmix64`` MurmurHash3's 64-bit finaliser (a bijection that mixes every
   bit into every other);
2. ``D_sub`` is the ``m`` ids with the smallest keys, where ``m`` is 1% of the rows (at least 256,
   all if fewer) by default, ``subset`` for an ``int``, ``⌊subset × n⌋`` (at least 1) for a
   ``float``; an explicit list of ids is taken as given.

``D_sub``'s canonical order (:func:`subset_order`: the metadata's ``subset_ids``, the order
fine-tuning starts from) is by key, or as given for explicit ids. So ``D_sub`` depends only on the
set of ids and the seed: reordering the records, splitting the
corpus into several files or running on any number of ranks gives the same ``D_sub`` — and so the
same Fisher and scores. Two ids share a key only if their 64-bit id hashes collide; a tie at the
cut is resolved by taking every tied id (so ``D_sub`` stays a function of the ids).

Example:
    >>> def chosen(ids, seed=0):
    ...     keys = subset_keys(np.array([id_hash(i) for i in ids], dtype=np.uint64), seed)
    ...     return {ids[j] for j in np.argsort(keys)[: subset_size(len(ids), 0.1)]}
    >>> ids = [f"seq{i}" for i in range(1000)]
    >>> len(chosen(ids)), chosen(ids) == chosen(ids[::-1]), chosen(ids) == chosen(ids, seed=1)
    (100, True, False)
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from biocoreset.data.validation import SourceIndex, id_hash
from biocoreset.errors import ConfigError, InputError

__all__ = [
    "SUBSET_RULE",
    "draw_subset",
    "explicit_ids",
    "subset_key",
    "subset_keys",
    "subset_order",
    "subset_size",
]

SUBSET_RULE = "id-hash-v1"
"""Name of the ``D_sub`` rule (recorded in the score metadata; see the module docstring)."""

_M1 = np.uint64(0xFF51AFD7ED558CCD)
_M2 = np.uint64(0xC4CEB9FE1A85EC53)
_S33 = np.uint64(33)
_CHUNK = 1 << 20


def explicit_ids(subset: Any) -> list[str] | None:
    """The ids of an explicit ``subset`` (``None`` for a size, a fraction or the default).

    >>> explicit_ids(["b", "a"]), explicit_ids(0.1), explicit_ids(None)
    (['b', 'a'], None, None)
    """
    if subset is None or isinstance(subset, (int, float)):
        return None
    return [str(s) for s in subset]


def subset_size(n: int, subset: Any) -> int:
    """Size of ``D_sub`` among ``n`` rows: ``None`` → 1% (at least 256, all if fewer), an ``int`` →
    itself, a ``float`` → ``⌊subset × n⌋`` (at least 1).

    Raises:
        ConfigError: A size larger than ``n``.

    >>> subset_size(300, None), subset_size(100_000, None), subset_size(10, 3), subset_size(10, 0.25)
    (256, 1000, 3, 2)
    """
    if subset is None:
        return min(n, max(256, math.ceil(0.01 * n)))
    if isinstance(subset, int):
        if subset > n:
            raise ConfigError(
                f"subset size {subset} exceeds the {n} sequences; choose a D_sub size <= {n} or a "
                "fraction."
            )
        return int(subset)
    return max(1, math.floor(float(subset) * n))


def _seed_word(seed: int) -> np.uint64:
    digest = hashlib.blake2b(
        int(seed).to_bytes(8, "little"), digest_size=8, person=b"biocoreset.dsub"
    ).digest()
    return np.uint64(int.from_bytes(digest, "little"))


def subset_keys(id_hashes: np.ndarray, seed: int) -> np.ndarray:
    """The ``D_sub`` keys (``uint64``) of ids given by their :func:`id_hash`; the smallest are drawn.

    Args:
        id_hashes: ``uint64`` id hashes (e.g. :attr:`SourceIndex.id_hashes`).
        seed: The subset seed.
    """
    h = np.asarray(id_hashes, dtype=np.uint64)
    out = np.empty_like(h)
    for start in range(0, h.size, _CHUNK):  # in place, in chunks: one array of keys in memory
        k = out[start : start + _CHUNK]
        np.bitwise_xor(h[start : start + _CHUNK], _seed_word(seed), out=k)
        for mult in (_M1, _M2):
            k ^= k >> _S33
            k *= mult
        k ^= k >> _S33
    return out


def subset_key(record_id: str, seed: int) -> int:
    """The ``D_sub`` key of one id (what :func:`subset_keys` computes for many).

    >>> subset_key("seq1", 0) == subset_key("seq1", 0) != subset_key("seq1", 1)
    True
    """
    return int(subset_keys(np.array([id_hash(record_id)], dtype=np.uint64), seed)[0])


def draw_subset(index: SourceIndex, subset: Any, seed: int) -> np.ndarray:
    """Rows (ascending) of ``D_sub`` in the indexed input.

    Args:
        index: The index pass's result (its ``id_hashes``, and ``positions`` for explicit ids).
        subset: Size (int), fraction (float), explicit ids, or ``None`` (1%, at least 256).
        seed: The subset seed.

    Raises:
        ConfigError: A size larger than the number of rows.
        InputError: Explicit ids missing from the data, or an empty list.
    """
    wanted = explicit_ids(subset)
    if wanted is not None:
        if not wanted:
            raise InputError("the explicit subset is empty.")
        missing = [rid for rid in wanted if rid not in index.positions]
        if missing:
            raise InputError(
                f"{len(missing)} subset id(s) are not in the sequences, e.g. {missing[:3]!r}."
            )
        return np.array(sorted({index.positions[rid] for rid in wanted}), dtype=np.int64)
    n = index.num_rows
    if index.id_hashes.size != n:
        raise ConfigError(
            "internal error: the index holds no id hashes for the D_sub draw; please report this."
        )
    m = subset_size(n, subset)
    if m >= n:
        return np.arange(n, dtype=np.int64)
    keys = subset_keys(index.id_hashes, seed)
    cut = np.partition(keys, m - 1)[m - 1]
    return np.flatnonzero(keys <= cut).astype(np.int64)


def subset_order(ids: Sequence[str], subset: Any, seed: int) -> list[int]:
    """Positions of ``ids`` (the members of ``D_sub``, in any order) in ``D_sub``'s canonical
    order: ascending key (ties by id), or the given order for explicit ids. Anything computed from
    ``D_sub`` in this order does not depend on the input order.

    >>> ids = ["b", "a", "c"]
    >>> subset_order(ids, ["c", "b", "a"], 0)
    [2, 0, 1]
    >>> sorted(subset_order(ids, None, 0)) == [0, 1, 2]
    True
    """
    given = explicit_ids(subset)
    if given is not None:
        rank = {rid: i for i, rid in reversed(list(enumerate(given)))}
        return sorted(range(len(ids)), key=lambda i: (rank.get(ids[i], len(rank)), ids[i]))
    keys = subset_keys(np.array([id_hash(i) for i in ids], dtype=np.uint64), seed).tolist()
    return sorted(range(len(ids)), key=lambda i: (keys[i], ids[i]))

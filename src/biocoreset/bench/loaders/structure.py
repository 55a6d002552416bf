"""RNA secondary structure notations: dot-bracket, pair lists and BPSEQ, to 0-based pair arrays."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from biocoreset.errors import InputError

__all__ = ["pairs_from_1based", "pairs_to_dot_bracket", "parse_dot_bracket", "read_bpseq"]

_OPEN = "([{<" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_CLOSE = ")]}>" + "abcdefghijklmnopqrstuvwxyz"
_UNPAIRED = ".:,-_~"


def parse_dot_bracket(structure: str, *, where: str = "structure") -> np.ndarray:
    """0-based base pairs ``[K, 2]`` (``i < j``, sorted) of a dot-bracket string.

    Brackets ``()``, ``[]``, ``{}``, ``<>`` and letter pairs ``Aa`` (pseudoknots) are matched
    independently; ``.``, ``:``, ``,``, ``-``, ``_`` and ``~`` are unpaired.

    Raises:
        InputError: Unbalanced brackets or an unknown symbol (naming the 1-based position).

    >>> parse_dot_bracket("((.[))]").tolist()
    [[0, 5], [1, 4], [3, 6]]
    """
    stacks: dict[str, list[int]] = {c: [] for c in _OPEN}
    pairs: list[tuple[int, int]] = []
    for pos, ch in enumerate(structure.strip()):
        if ch in _UNPAIRED:
            continue
        if ch in stacks:
            stacks[ch].append(pos)
        elif ch in _CLOSE:
            opener = _OPEN[_CLOSE.index(ch)]
            if not stacks[opener]:
                raise InputError(f"{where}: {ch!r} at position {pos + 1} closes nothing.")
            pairs.append((stacks[opener].pop(), pos))
        else:
            raise InputError(f"{where}: unknown symbol {ch!r} at position {pos + 1}.")
    for opener, stack in stacks.items():
        if stack:
            raise InputError(f"{where}: {opener!r} at position {stack[-1] + 1} is never closed.")
    return np.asarray(sorted(pairs), dtype=np.int64).reshape(-1, 2)


def pairs_from_1based(text: str, length: int, *, where: str = "pairs") -> np.ndarray:
    """Parse ``"4-20;5-19"`` (1-based ``i-j`` items separated by ``;``) into 0-based pairs.

    Raises:
        InputError: A malformed item or an index outside ``1..length``.

    >>> pairs_from_1based("4-20;5-19", 30).tolist()
    [[3, 19], [4, 18]]
    """
    out = []
    for item in text.replace(",", ";").split(";"):
        item = item.strip()
        if not item:
            continue
        try:
            a, b = (int(x) for x in item.split("-"))
        except ValueError:
            raise InputError(f"{where}: pair {item!r} is not 'i-j'.") from None
        if not (1 <= a <= length and 1 <= b <= length) or a == b:
            raise InputError(
                f"{where}: pair {item!r} is outside 1..{length} or pairs a base with itself."
            )
        out.append((min(a, b) - 1, max(a, b) - 1))
    return np.asarray(sorted(set(out)), dtype=np.int64).reshape(-1, 2)


def pairs_to_dot_bracket(pairs: np.ndarray, length: int) -> str:
    """Dot-bracket string of nested ``pairs`` (crossing pairs get ``[]``, ``{}``, ``<>``).

    >>> pairs_to_dot_bracket(parse_dot_bracket("((.[))]"), 7)
    '((.[))]'
    """
    out = ["."] * length
    levels: list[list[tuple[int, int]]] = []
    for i, j in sorted(map(tuple, np.asarray(pairs).reshape(-1, 2).tolist())):
        for level in levels:
            if all(not (a < i < b < j or i < a < j < b) for a, b in level):
                level.append((i, j))
                break
        else:
            levels.append([(i, j)])
    for k, level in enumerate(levels):
        o, c = _OPEN[k], _CLOSE[k]
        for i, j in level:
            out[i], out[j] = o, c
    return "".join(out)


def read_bpseq(path: str | os.PathLike[str]) -> tuple[str, np.ndarray]:
    """Read a BPSEQ file: ``(sequence, 0-based pairs)``.

    Lines are ``index base partner`` (1-based, partner 0 when unpaired); ``#`` lines are comments.

    Raises:
        InputError: A malformed line or an inconsistent partner (naming the line).
    """
    p = Path(path)
    seq: list[str] = []
    partner: dict[int, int] = {}
    with open(p, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip() or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) != 3:
                if not seq:  # header lines such as "Filename: ..."
                    continue
                raise InputError(f"{str(p)!r} line {lineno}: expected 'index base partner'.")
            try:
                i, j = int(parts[0]), int(parts[2])
            except ValueError:
                raise InputError(f"{str(p)!r} line {lineno}: indices must be integers.") from None
            if i != len(seq) + 1:
                raise InputError(f"{str(p)!r} line {lineno}: index {i}, expected {len(seq) + 1}.")
            seq.append(parts[1])
            if j:
                partner[i] = j
    for i, j in partner.items():
        if partner.get(j) != i:
            raise InputError(
                f"{str(p)!r}: base {i} pairs with {j}, but {j} does not pair with {i}."
            )
    pairs = sorted({(min(i, j) - 1, max(i, j) - 1) for i, j in partner.items()})
    return "".join(seq), np.asarray(pairs, dtype=np.int64).reshape(-1, 2)

"""Length-aware batching: group records of similar length within a bounded window.

Batches of consecutive records in file order are padded to their longest member, so a corpus whose
neighbouring records differ in length spends much of its compute on padding. :func:`length_batches`
reads a *window* of records (by default 64 batches' worth), sorts it by length (stable: equal
lengths keep their input order) and cuts it into batches of at most ``batch_size`` records and, with
``max_tokens``, at most ``max_tokens`` padded residues (rows × the longest member). Memory stays
bounded by the window, so a corpus of any size still streams.

The batches of one window are yielded shortest first, or in a random order when ``rng`` is given
(for training, where the batches — not only the records — should be shuffled so that optimisation
does not see the data ordered by length). Callers that must keep their output in input order carry
a position in each item and write results back by it (the scoring run does).

Example:
    >>> items = [("a", "ACGUACGU"), ("b", "AC"), ("c", "ACGUACG"), ("d", "ACG")]
    >>> [[rid for rid, _ in b] for b in length_batches(items, batch_size=2)]
    [['b', 'd'], ['c', 'a']]
    >>> real_token_fraction([[2, 2], [7, 8]])
    0.95
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np

from biocoreset.errors import ConfigError

__all__ = ["DEFAULT_WINDOW_BATCHES", "grouped_order", "length_batches", "real_token_fraction"]

DEFAULT_WINDOW_BATCHES = 64
"""Default window: 64 batches' worth of records are sorted by length together."""

T = TypeVar("T")


def _sequence_length(item: Any) -> int:
    return len(item[-1])


def _check(name: str, value: int | None, minimum: int = 1) -> None:
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int) or value < minimum
    ):
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}.")


def length_batches(
    items: Iterable[T],
    *,
    batch_size: int,
    window: int | None = None,
    max_tokens: int | None = None,
    length: Callable[[T], int] = _sequence_length,
    rng: np.random.Generator | None = None,
) -> Iterator[list[T]]:
    """Batches of ``items`` grouped by length within windows of ``window`` items.

    Args:
        items: Any iterable; by default an item's length is ``len(item[-1])`` (the sequence of an
            ``(id, sequence)`` or ``(row, id, sequence)`` tuple).
        batch_size: Most items per batch.
        window: Items sorted together (default ``64 × batch_size``). ``batch_size`` (or 1) turns
            grouping off: batches are then consecutive items in input order.
        max_tokens: Most padded residues per batch (items × the longest item's length, as given
            by ``length``); an item longer than this forms a batch of its own. ``None``: no limit.
        length: Length of an item.
        rng: Yield each window's batches in an order drawn from this generator (training);
            ``None``: shortest first.

    Yields:
        Lists of items. Every item appears in exactly one batch; the windows are consecutive, so
        only the current window is held in memory.

    Raises:
        ConfigError: A size that is not a positive integer.

    >>> [len(b) for b in length_batches(range(5), batch_size=2, length=lambda i: 0)]
    [2, 2, 1]
    >>> [b for b in length_batches(["aaa", "a", "aa"], batch_size=3, max_tokens=4, length=len)]
    [['a', 'aa'], ['aaa']]
    """
    _check("batch_size", batch_size)
    _check("window", window)
    _check("max_tokens", max_tokens)
    size = window if window is not None else DEFAULT_WINDOW_BATCHES * batch_size
    buffer: list[T] = []
    for item in items:
        buffer.append(item)
        if len(buffer) >= size:
            yield from _cut(buffer, batch_size, max_tokens, length, rng)
            buffer = []
    if buffer:
        yield from _cut(buffer, batch_size, max_tokens, length, rng)


def _cut(
    window: list[T],
    batch_size: int,
    max_tokens: int | None,
    length: Callable[[T], int],
    rng: np.random.Generator | None,
) -> list[list[T]]:
    lengths = [length(item) for item in window]
    order = sorted(range(len(window)), key=lengths.__getitem__)  # stable: ties keep input order
    batches: list[list[T]] = []
    current: list[T] = []
    for i in order:
        longest = lengths[i]  # ascending, so the newest item is the longest
        full = len(current) == batch_size or (
            max_tokens is not None and current and (len(current) + 1) * longest > max_tokens
        )
        if full:
            batches.append(current)
            current = []
        current.append(window[i])
    if current:
        batches.append(current)
    if rng is not None:
        batches = [batches[j] for j in rng.permutation(len(batches)).tolist()]
    return batches


def real_token_fraction(batches: Iterable[Sequence[int]]) -> float:
    """Fraction of the padded positions that hold real residues: Σ lengths / Σ (rows × longest).

    Args:
        batches: The lengths of each batch's members.

    >>> real_token_fraction([[4, 4], [2, 4]])
    0.875
    """
    real = padded = 0
    for lengths in batches:
        if len(lengths):
            real += int(sum(lengths))
            padded += len(lengths) * int(max(lengths))
    return real / padded if padded else 1.0


def grouped_order(
    order: Sequence[int] | np.ndarray,
    lengths: Sequence[int] | np.ndarray,
    batch_size: int,
    *,
    seed: int | Sequence[int],
    window_batches: int = DEFAULT_WINDOW_BATCHES,
) -> np.ndarray:
    """A training order whose consecutive ``batch_size`` chunks are length-grouped batches, in a
    shuffled batch order (the usual group-by-length practice for training).

    ``order`` (e.g. a seeded permutation of the records) is read in windows of ``window_batches``
    batches; each window is sorted by length (stably, so ties keep ``order``) and cut into batches.
    The full batches are then shuffled with ``seed``, so training is not ordered by length; the one
    short batch (when ``batch_size`` does not divide the number of records) stays last, where a
    consumer cutting the result into chunks of ``batch_size`` expects it.

    Args:
        order: Record indices in their drawn order.
        lengths: Length of every record (indexed by record index).
        batch_size: Records per batch.
        seed: Seed of the batch shuffle (e.g. ``(seed, epoch)``).
        window_batches: Batches per sorting window (bounds how far a record can move).

    Returns:
        A permutation of ``order``.

    >>> out = grouped_order([0, 1, 2, 3, 4], [5, 1, 4, 2, 3], 2, seed=0)
    >>> sorted(out.tolist()), out[-1].item()
    ([0, 1, 2, 3, 4], 0)
    """
    _check("batch_size", batch_size)
    _check("window_batches", window_batches)
    order = np.asarray(order, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    width = batch_size * window_batches
    grouped = np.concatenate(
        [
            chunk[np.argsort(lengths[chunk], kind="stable")]
            for chunk in (order[i : i + width] for i in range(0, order.size, width))
        ]
        or [order]
    )
    full = grouped.size // batch_size
    batches = grouped[: full * batch_size].reshape(full, batch_size)
    perm = np.random.default_rng([*np.atleast_1d(seed).tolist(), 0x6B]).permutation(full)
    return np.concatenate([batches[perm].reshape(-1), grouped[full * batch_size :]])

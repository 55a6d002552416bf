"""The index pass: validate, count and hash every record once, before any model work.

It finds bad records and duplicate ids before any compute, counts the rows, digests the data (for
resume) and keeps one 8-byte id hash per row, from which ``D_sub`` is drawn
(:mod:`biocoreset.scoring.subset`). See :func:`biocoreset.data.validation.scan_source`.

Example:
    >>> from biocoreset.data.sources import as_source
    >>> from biocoreset.data.validation import Validator
    >>> index = index_source(as_source([("a", "ACGU"), ("b", "GG")]), Validator(), progress=False)
    >>> index.num_rows, index.id_hashes.size
    (2, 2)
"""

from __future__ import annotations

from collections.abc import Iterable

from biocoreset.data.readers import ByteCounter
from biocoreset.data.sources import SequenceSource
from biocoreset.data.validation import SourceIndex, Validator, scan_source
from biocoreset.runtime.progress import progress_bar

__all__ = ["index_source"]


def index_source(
    source: SequenceSource,
    validator: Validator,
    *,
    wanted_ids: Iterable[str] | None = None,
    progress: bool | None = None,
) -> SourceIndex:
    """The index pass (see :func:`biocoreset.data.validation.scan_source`) with a progress bar:
    bytes read (with ETA) for files, records for in-memory data.

    Args:
        source: The input.
        validator: The validator (its report is filled).
        wanted_ids: Ids whose rows to return in :attr:`SourceIndex.positions` (an explicit
            ``D_sub``).
        progress: Show a progress bar (``None``: when stderr is a terminal).
    """
    size = source.size_bytes
    counter = ByteCounter()
    if size is not None:
        bar = progress_bar(
            enabled=progress, total=size, desc="read", unit="B", unit_scale=True, unit_divisor=1024
        )
    else:
        bar = progress_bar(enabled=progress, total=source.num_records, desc="read", unit="seq")

    def tick(count: int) -> None:
        done = counter.bytes_read if size is not None else count
        bar.update(done - bar.n)

    try:
        return scan_source(
            lambda: source.iter(counter),
            validator,
            wanted_ids=wanted_ids,
            where=source.describe(),
            on_record=tick,
        )
    finally:
        bar.close()

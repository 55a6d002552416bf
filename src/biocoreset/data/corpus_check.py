"""Is this corpus the one that was scored? A record-by-record check for ``select``.

Score files written by :func:`biocoreset.score_to_file` keep, per row, a 64-bit hash of the
sequence as it was read (column ``sequence_hash``, :func:`~biocoreset.data.validation.sequence_hash`).
While ``select`` reads the corpus to write ``coreset.fasta``, :class:`CorpusCheck` walks the corpus
alongside the scored rows and stops at the first record that differs: another sequence under the
same id, a record that was not scored, or a scored record that is gone.

Example:
    >>> import numpy as np, pyarrow as pa
    >>> from biocoreset.data.validation import sequence_hash
    >>> check = CorpusCheck(pa.array(["a", "b"]), np.array([sequence_hash("AC"), sequence_hash("GU")]))
    >>> check("a", "AC"); check("b", "GU"); check.finish()
    >>> CorpusCheck(pa.array(["a"]), np.array([sequence_hash("AC")]))("a", "AG")
    Traceback (most recent call last):
    ...
    biocoreset.errors.InputError: the corpus: record 'a' (record 1) is not the sequence that was scored (row 1 of the scores): the corpus changed after scoring. Pass the corpus that was scored, or --allow-changed-corpus (allow_changed_corpus=True) to use this one anyway.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from biocoreset.data.validation import sequence_hash
from biocoreset.errors import InputError

__all__ = ["CorpusCheck"]

_HINT = (
    "the corpus changed after scoring. Pass the corpus that was scored, or --allow-changed-corpus "
    "(allow_changed_corpus=True) to use this one anyway."
)
_CHUNK = 1 << 16


class CorpusCheck:
    """Walk a corpus, record by record, against the scored rows.

    Args:
        ids: The score file's id column (a pyarrow array, row order).
        hashes: Its ``sequence_hash`` column.
        skipped: Records validation dropped while scoring (they may appear unscored).
        where: Name of the corpus, for messages.
    """

    def __init__(
        self, ids: Any, hashes: np.ndarray, *, skipped: int = 0, where: str = "the corpus"
    ):
        self.ids, self.hashes = ids, np.asarray(hashes, dtype=np.int64)
        self.skipped, self.where = skipped, where
        self.row = 0
        self.number = 0
        self.unscored = 0
        self._chunk_start = -1
        self._chunk: list[str] = []

    def _id(self, row: int) -> str:
        start = row - row % _CHUNK
        if start != self._chunk_start:
            self._chunk = self.ids.slice(start, _CHUNK).to_pylist()
            self._chunk_start = start
        return str(self._chunk[row - start])

    def __call__(self, rid: str, sequence: str) -> None:
        """Check the next corpus record.

        Raises:
            InputError: It differs from the scored row at its place (names it).
        """
        self.number += 1
        n = len(self.hashes)
        if self.row < n and rid == self._id(self.row):
            if sequence_hash(sequence) != int(self.hashes[self.row]):
                raise InputError(
                    f"{self.where}: record {rid!r} (record {self.number}) is not the sequence that "
                    f"was scored (row {self.row + 1} of the scores): {_HINT}"
                )
            self.row += 1
            return
        self.unscored += 1
        if self.unscored > self.skipped:
            expected = (
                f"; row {self.row + 1} of the scores is {self._id(self.row)!r}"
                if self.row < n
                else ""
            )
            raise InputError(
                f"{self.where}: record {rid!r} (record {self.number}) was not scored{expected}: "
                f"{_HINT}"
            )

    def finish(self) -> None:
        """Check that no scored row is missing from the corpus.

        Raises:
            InputError: The corpus ended before a scored row (names it).
        """
        if self.row < len(self.hashes):
            raise InputError(
                f"{self.where} ends after {self.number} records but the scores have "
                f"{len(self.hashes)} rows; scored record {self._id(self.row)!r} (row {self.row + 1}) "
                f"is missing: {_HINT}"
            )

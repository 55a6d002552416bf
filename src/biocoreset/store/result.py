"""The result of :func:`biocoreset.score`, saved as Parquet with its metadata."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from biocoreset.errors import InputError, OutputExistsError
from biocoreset.store.atomic import atomic_path
from biocoreset.store.checks import check_ids, check_lengths, check_metadata, parse_metadata
from biocoreset.store.shard_parts import DRAW_COLUMN_RE, draw_columns

__all__ = ["METADATA_KEY", "ScoreResult", "is_score_file", "load_scores"]

METADATA_KEY = b"biocoreset"


def _f64(a: Any) -> np.ndarray:
    if np.iscomplexobj(a):
        raise InputError("ScoreResult values are complex numbers; pass real numbers.")
    return np.asarray(a, dtype=np.float64)


def _lengths(a: Any) -> np.ndarray:
    return check_lengths(a, None, where="ScoreResult.length")  # a NaN is refused, not cast


def _draws(a: Any) -> np.ndarray | None:
    return None if a is None else np.atleast_2d(np.asarray(a, dtype=np.float64))


@attrs.frozen(kw_only=True, eq=False)
class ScoreResult:
    """One score per sequence, in input order, with what produced them.

    Attributes:
        ids: Sequence ids in input order.
        scores: float64 scores.
        loss: float64 per-sample masked-LM loss at the scored model.
        length: Residues per sequence (after the long-sequence policy).
        metadata: Curvature, absolute damping, ``D_sub`` ids, seed, number of scored parameters,
            library version, ...
        draws: ``(K, n)`` every mask draw's own score (``score(..., keep_draws=True)``; oriented
            as ``scores``, whose mean over the draws they are), or ``None``. Saved as the columns
            ``score_draw_0 .. score_draw_{K-1}``.

    Example:
        >>> r = ScoreResult(ids=["a", "b"], scores=[2.0, 3.0], loss=[0.1, 0.2], length=[5, 6],
        ...                 draws=[[1.0, 4.0], [3.0, 2.0]])
        >>> r.draw(1).scores.tolist(), r.draw(1).metadata["draw"]
        ([3.0, 2.0], 1)
    """

    ids: list[str] = attrs.field(converter=list)
    scores: np.ndarray = attrs.field(converter=_f64)
    loss: np.ndarray = attrs.field(converter=_f64)
    length: np.ndarray = attrs.field(converter=_lengths)
    metadata: dict[str, Any] = attrs.field(factory=dict)
    draws: np.ndarray | None = attrs.field(default=None, converter=_draws)

    def __attrs_post_init__(self) -> None:
        n = len(self.ids)
        for name in ("scores", "loss", "length"):
            if len(getattr(self, name)) != n:
                raise InputError(
                    f"ScoreResult.{name} has {len(getattr(self, name))} rows, ids has {n}."
                )
        check_metadata(self.metadata, where="ScoreResult.metadata")
        if self.draws is not None and (self.draws.ndim != 2 or self.draws.shape[1] != n):
            raise InputError(
                f"ScoreResult.draws has shape {self.draws.shape}; it must be (draws, {n})."
            )

    def draw(self, k: int) -> ScoreResult:
        """The result with draw ``k``'s own scores as its scores (to select on one draw):
        ``metadata["draw"]`` is ``k``; ``loss`` stays the mean over the draws.

        Raises:
            InputError: The result kept no draws, or ``k`` is not one of them.
        """
        if self.draws is None:
            raise InputError(
                "these scores kept no per-draw columns; score with keep_draws=True "
                "(--keep-draws) to select on one mask draw."
            )
        if not (isinstance(k, int) and 0 <= k < len(self.draws)):
            raise InputError(f"draw {k!r} does not exist: choose 0..{len(self.draws) - 1}.")
        return attrs.evolve(
            self, scores=self.draws[k], draws=None, metadata={**self.metadata, "draw": k}
        )

    def __len__(self) -> int:
        return len(self.ids)

    def to_table(self) -> Any:
        """A :class:`pyarrow.Table` with the metadata in its schema."""
        import pyarrow as pa

        columns = {
            "id": pa.array(self.ids, pa.string()),
            "score": self.scores,
            "loss": self.loss,
            "length": self.length,
        }
        if self.draws is not None:
            columns.update(zip(draw_columns(len(self.draws)), self.draws, strict=True))
        table = pa.table(columns)
        meta = json.dumps(self.metadata, sort_keys=True, default=str).encode("utf-8")
        return table.replace_schema_metadata({METADATA_KEY: meta})

    def save(self, path: str | os.PathLike[str], *, force: bool = False) -> Path:
        """Write Parquet atomically; an existing file is kept unless ``force``, and ``force``
        replaces only an earlier score file, never another file.

        Returns:
            The path written.

        Raises:
            OutputExistsError: ``path`` exists and ``force`` is false, or it is not a score file.
        """
        import pyarrow.parquet as pq

        if force and Path(path).is_file() and not is_score_file(path):
            raise OutputExistsError(
                f"{os.fspath(path)!r} exists and is not a biocoreset score file; force=True "
                "replaces only a score file, never other files: choose another path."
            )
        with atomic_path(path, force=force) as tmp:
            pq.write_table(self.to_table(), tmp)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ScoreResult:
        """Read a file written by :meth:`save`.

        Raises:
            InputError: A missing or unreadable file, missing columns, or malformed contents: the
                checks of :mod:`biocoreset.store.checks` (metadata, null or repeated ids, lengths).
        """
        import pyarrow.parquet as pq

        p = Path(path)
        if not p.exists():
            raise InputError(f"score file {str(p)!r} does not exist.")
        try:
            table = pq.read_table(p)
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise InputError(f"{str(p)!r} is not a readable Parquet score file ({first}).") from exc
        missing = {"id", "score", "loss", "length"} - set(table.column_names)
        if missing:
            raise InputError(
                f"{str(p)!r} lacks column(s) {sorted(missing)}; was it written by biocoreset?"
            )
        where = f"the score file {str(p)!r}"
        meta = parse_metadata((table.schema.metadata or {}).get(METADATA_KEY), where=where)
        ids = table.column("id").to_pylist()
        check_ids(ids, where=where)
        length = table.column("length").to_numpy(zero_copy_only=False)  # nulls become NaN
        found = sorted(
            (int(m.group(1)), name)
            for name in table.column_names
            if (m := DRAW_COLUMN_RE.match(name))
        )
        if [k for k, _ in found] != list(range(len(found))):
            raise InputError(
                f"{str(p)!r} has per-draw columns {[n for _, n in found]}; they must be "
                "score_draw_0 .. score_draw_{K-1} without gaps."
            )
        return cls(
            ids=ids,
            scores=table.column("score").to_numpy(),
            loss=table.column("loss").to_numpy(),
            length=check_lengths(length, ids, where=where),
            metadata=meta,
            draws=np.stack([table.column(n).to_numpy() for _, n in found]) if found else None,
        )


def load_scores(path: str | os.PathLike[str]) -> ScoreResult:
    """Load a score file written by :meth:`ScoreResult.save`.

    >>> import tempfile, os
    >>> r = ScoreResult(ids=["a"], scores=[1.0], loss=[0.5], length=[3], metadata={"seed": 0})
    >>> path = os.path.join(tempfile.mkdtemp(), "s.parquet")
    >>> _ = r.save(path)
    >>> load_scores(path).metadata["seed"]
    0
    """
    return ScoreResult.load(path)


def is_score_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a Parquet file with biocoreset metadata (one ``--force`` may replace)."""
    import pyarrow.parquet as pq

    try:
        return METADATA_KEY in (pq.read_schema(path).metadata or {})
    except Exception:
        return False

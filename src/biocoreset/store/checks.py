"""Checks of a score file's contents, shared by ``select``, ``diagnose`` and
:meth:`~biocoreset.store.result.ScoreResult.load`.

A score file may have been edited by hand or written by another tool. Every reader goes through
these checks, so each malformed case gets the same one-line :class:`~biocoreset.errors.InputError`
naming the file, the field or the row, and the fix:

* :func:`parse_metadata` — the ``biocoreset`` metadata: UTF-8, JSON, an object, and the fields a
  reader uses of the right type (``negated`` a boolean, ``reader`` an object, ...);
* :func:`check_ids` — no null id, no id twice;
* :func:`check_finite_scores` — no NaN or infinite score;
* :func:`check_lengths` — lengths that are whole, non-negative numbers.

Example:
    >>> parse_metadata(b'{"negated": "yes"}', where="the score file 's.parquet'")
    Traceback (most recent call last):
    ...
    biocoreset.errors.InputError: the score file 's.parquet' has biocoreset metadata field 'negated' = 'yes' (str); it must be true or false. Rescore the corpus with `biocoreset score` (or fix the field).
    >>> check_ids(["a", None], where="x.parquet")
    Traceback (most recent call last):
    ...
    biocoreset.errors.InputError: x.parquet has a null id at row 1 (0-based; the row after 'a'); every row needs an id: rescore the corpus with `biocoreset score`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from biocoreset.errors import InputError

__all__ = [
    "check_finite_scores",
    "check_ids",
    "check_lengths",
    "check_metadata",
    "parse_metadata",
]

_FIX = "Rescore the corpus with `biocoreset score` (or fix the field)."


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def parse_metadata(raw: bytes | None, *, where: str) -> dict[str, Any]:
    """The ``biocoreset`` metadata of a score file (``{}`` when it has none), checked with
    :func:`check_metadata`.

    Raises:
        InputError: Not UTF-8, not JSON, not a JSON object, or a field of the wrong type.
    """
    if raw is None:
        return {}
    try:
        meta = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{where} has unreadable biocoreset metadata (not UTF-8 text: {_first_line(exc)}); "
            "rescore the corpus with `biocoreset score`."
        ) from exc
    except ValueError as exc:
        raise InputError(
            f"{where} has unreadable biocoreset metadata (not valid JSON: {_first_line(exc)}); "
            "rescore the corpus with `biocoreset score`."
        ) from exc
    if not isinstance(meta, dict):
        raise InputError(
            f"{where} has biocoreset metadata that is not a JSON object (got "
            f"{_json_type(meta)}); rescore the corpus with `biocoreset score`."
        )
    check_metadata(meta, where=where)
    return meta


def _json_type(value: Any) -> str:
    names = {bool: "a boolean", dict: "an object", list: "a list", str: "a string"}
    if value is None:
        return "null"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# field -> (test, what it must be); nested objects list their own fields
_TOP: dict[str, tuple[Any, str]] = {
    "negated": (lambda v: isinstance(v, bool), "true or false"),
    "reader": (lambda v: isinstance(v, dict), "an object"),
    "validation": (lambda v: isinstance(v, dict), "an object"),
    "stability": (lambda v: v is None or isinstance(v, dict), "an object or null"),
    "mask_draws": (_is_int, "a whole number"),
}
_READER: dict[str, tuple[Any, str]] = {
    "path": (lambda v: isinstance(v, str) and v != "", "a file path (a non-empty string)"),
    "format": (lambda v: isinstance(v, str), "a string"),
    "id_column": (lambda v: isinstance(v, str), "a string"),
    "sequence_column": (lambda v: isinstance(v, str), "a string"),
    "parts": (lambda v: isinstance(v, list), "a list of objects"),
}
_COUNT = (lambda v: _is_int(v) and v >= 0, "a whole number >= 0")
_VALIDATION = {
    "records": _COUNT,
    "kept": _COUNT,
    "skipped_invalid": _COUNT,
    "skipped_empty": _COUNT,
}
_STABILITY = {
    "draws": (_is_int, "a whole number"),
    **{
        k: (lambda v: v is None or _is_number(v), "a number")
        for k in ("projected", "split_half", "single_draw", "draws_for_target", "target")
    },
}


def _check_fields(
    obj: Mapping[str, Any], fields: Mapping[str, tuple[Any, str]], prefix: str, where: str
) -> None:
    for key, (ok, must) in fields.items():
        if key in obj and not ok(obj[key]):
            value = obj[key]
            raise InputError(
                f"{where} has biocoreset metadata field {prefix + key!r} = {value!r} "
                f"({type(value).__name__}); it must be {must}. {_FIX}"
            )


def check_metadata(meta: Mapping[str, Any], *, where: str) -> None:
    """Check the types of the metadata fields a reader uses (others are kept as they are).

    >>> check_metadata({"reader": "oops"}, where="s.parquet")
    Traceback (most recent call last):
    ...
    biocoreset.errors.InputError: s.parquet has biocoreset metadata field 'reader' = 'oops' (str); it must be an object. Rescore the corpus with `biocoreset score` (or fix the field).

    Raises:
        InputError: Naming the field, its value and what it must be.
    """
    _check_fields(meta, _TOP, "", where)
    reader = meta.get("reader") or {}
    _check_fields(reader, _READER, "reader.", where)
    for i, part in enumerate(reader.get("parts") or []):
        if not isinstance(part, dict):
            raise InputError(
                f"{where} has biocoreset metadata field 'reader.parts[{i}]' = {part!r} "
                f"({type(part).__name__}); it must be an object. {_FIX}"
            )
        _check_fields(part, _READER, f"reader.parts[{i}].", where)
    _check_fields(meta.get("validation") or {}, _VALIDATION, "validation.", where)
    _check_fields(meta.get("stability") or {}, _STABILITY, "stability.", where)


def check_ids(ids: Sequence[Any], *, where: str) -> None:
    """Refuse a null id (naming its row) and an id given twice (naming it and both rows; rows are
    0-based).

    >>> check_ids(["a", "b", "a"], where="x.parquet")
    Traceback (most recent call last):
    ...
    biocoreset.errors.InputError: x.parquet holds the id 'a' twice (rows 0 and 2); ids must be unique: deduplicate the corpus (biocoreset dedup) and rescore it.
    """
    first: dict[Any, int] = {}
    for row, i in enumerate(ids):
        if i is None:
            after = f"the row after {ids[row - 1]!r}" if row else "the first row"
            raise InputError(
                f"{where} has a null id at row {row} (0-based; {after}); every row needs an id: "
                "rescore the corpus with `biocoreset score`."
            )
        if i in first:
            raise InputError(
                f"{where} holds the id {i!r} twice (rows {first[i]} and {row}); ids must be "
                "unique: deduplicate the corpus (biocoreset dedup) and rescore it."
            )
        first[i] = row


def check_finite_scores(values: np.ndarray, ids: Sequence[Any] | None, *, where: str) -> None:
    """Refuse NaN or infinite scores, naming how many and the first (its row and id).

    >>> check_finite_scores(np.array([1.0, np.nan]), ["a", "b"], where="s.parquet")
    Traceback (most recent call last):
    ...
    biocoreset.errors.InputError: s.parquet holds 1 NaN or infinite score(s) of 2 (first: row 1, id 'b', nan); rescore those sequences or drop them first.
    """
    arr = np.asarray(values)
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        row = int(bad[0])
        name = f", id {ids[row]!r}" if ids is not None else ""
        raise InputError(
            f"{where} holds {bad.size} NaN or infinite score(s) of {arr.size} (first: row {row}"
            f"{name}, {float(arr[row])}); rescore those sequences or drop them first."
        )


def check_lengths(lengths: Any, ids: Sequence[Any] | None, *, where: str) -> np.ndarray:
    """``lengths`` as int64 after checking that each is a whole number ``>= 0`` (a NaN, an
    infinity, a fraction or a negative is refused, naming its row and id).

    >>> check_lengths([3, 4.0], None, where="x").tolist()
    [3, 4]
    >>> check_lengths([3.0, float("nan")], ["a", "b"], where="s.parquet")
    Traceback (most recent call last):
    ...
    biocoreset.errors.InputError: s.parquet has length nan at row 1 (id 'b'); a length is a whole number of residues >= 0: rescore the corpus with `biocoreset score`.
    """
    try:
        arr = np.asarray(lengths)
        if arr.dtype.kind in "iub" and (arr.size == 0 or arr.min() >= 0):
            return arr.astype(np.int64, copy=False)
        num = arr.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"{where} has lengths that are not numbers ({_first_line(exc)}); a length is a whole "
            "number of residues >= 0."
        ) from exc
    bad = np.flatnonzero(~np.isfinite(num) | (num < 0) | (num != np.round(num)))
    if bad.size:
        row = int(bad[0])
        name = f" (id {ids[row]!r})" if ids is not None and row < len(ids) else ""
        value = float(num[row])
        shown = "nan" if math.isnan(value) else repr(value)
        raise InputError(
            f"{where} has length {shown} at row {row}{name}; a length is a whole number of "
            "residues >= 0: rescore the corpus with `biocoreset score`."
        )
    return num.astype(np.int64)

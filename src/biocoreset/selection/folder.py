"""``biocoreset select`` to a folder: the coreset's files, written all at once or not at all.

:func:`select_to_folder` reads only the score, id (and length) columns of a score file, runs the
selector (:func:`biocoreset.select`), checks the corpus against the sequences that were scored, and
writes ``coreset_ids.txt``, ``coreset.fasta``, ``selection.png`` and ``selection.json`` into a
temporary folder that is moved into place only on success. It imports no model code.

Example:
    >>> import tempfile, numpy as np
    >>> from pathlib import Path
    >>> from biocoreset.store.result import ScoreResult
    >>> d = Path(tempfile.mkdtemp())
    >>> r = ScoreResult(ids=["a", "b", "c"], scores=np.array([0.3, 0.1, 0.9]),
    ...                 loss=np.zeros(3), length=np.array([5, 6, 7]))
    >>> _ = r.save(d / "s.parquet")
    >>> select_to_folder(d / "s.parquet", d / "co", method="topk", budget=1)["budget"]
    1
    >>> (d / "co" / "coreset_ids.txt").read_text().split()
    ['c']
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from biocoreset.data.corpus_check import CorpusCheck
from biocoreset.data.sources import ConcatSource, SequenceSource, open_sequences
from biocoreset.errors import InputError, OutputExistsError
from biocoreset.plugins import get_registry
from biocoreset.protocols import IdentifiedSelector
from biocoreset.runtime.progress import progress_bar
from biocoreset.store.atomic import atomic_path, check_not_input, check_writable
from biocoreset.store.checks import check_ids, check_lengths, parse_metadata
from biocoreset.store.owned import OwnedOutput

__all__ = ["SELECTION_FILES", "read_score_columns", "read_sequence_hashes", "select_to_folder"]

SELECTION_FILES = ("coreset_ids.txt", "coreset.fasta", "selection.png", "selection.json")
"""Files ``biocoreset select`` writes into its output folder."""


def read_score_columns(path: str | os.PathLike[str]) -> tuple[np.ndarray, Any, dict[str, Any]]:
    """Scores (float64 array), the id column (a pyarrow array) and the metadata of a score file.
    (:func:`read_sequence_hashes` reads the per-row sequence hashes.)

    Raises:
        InputError: Missing or unreadable file, missing columns, metadata that is not a JSON
            object of the expected field types, a null or repeated id
            (:mod:`biocoreset.store.checks`).
    """
    import pyarrow.parquet as pq

    from biocoreset.store.result import METADATA_KEY

    p = Path(path)
    if not p.exists():
        raise InputError(f"score file {str(p)!r} does not exist.")
    try:
        names = pq.read_schema(p).names
    except Exception as exc:
        raise InputError(
            f"{str(p)!r} is not a readable Parquet score file ({_first_line(exc)})."
        ) from exc
    missing = [c for c in ("id", "score") if c not in names]
    if missing:
        raise InputError(
            f"{str(p)!r} has no {' or '.join(repr(c) for c in missing)} column (it has "
            f"{', '.join(names) or 'none'}); pass a score file written by `biocoreset score`."
        )
    try:
        table = pq.read_table(p, columns=["id", "score"])
    except Exception as exc:
        raise InputError(
            f"{str(p)!r} is not a readable biocoreset score file ({_first_line(exc)})."
        ) from exc
    if table.num_rows == 0:
        raise InputError(f"the score file {str(p)!r} is empty (no scored sequences).")
    where = f"the score file {str(p)!r}"
    meta = parse_metadata((table.schema.metadata or {}).get(METADATA_KEY), where=where)
    ids = table.column("id").combine_chunks()
    check_ids(ids.to_pylist(), where=where)
    return table.column("score").to_numpy().astype(np.float64, copy=False), ids, meta


def read_sequence_hashes(path: str | os.PathLike[str]) -> np.ndarray | None:
    """The ``sequence_hash`` column of a score file (``None`` when it has none: a file written by
    :meth:`~biocoreset.store.result.ScoreResult.save` or an older version)."""
    import pyarrow.parquet as pq

    if "sequence_hash" not in pq.read_schema(path).names:
        return None
    column = pq.read_table(path, columns=["sequence_hash"]).column("sequence_hash")
    return column.to_numpy().astype(np.int64, copy=False)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _corpus_paths(meta: dict[str, Any]) -> list[str]:
    """The corpus files a score file names (empty when it names none)."""
    reader = meta.get("reader") or {}
    parts = reader.get("parts") or [reader]
    paths = [p.get("path") if isinstance(p, dict) else None for p in parts]
    return [str(p) for p in paths] if paths and all(paths) else []


def _corpus_from_metadata(meta: dict[str, Any]) -> SequenceSource | None:
    reader = meta.get("reader") or {}
    parts = reader.get("parts") or [reader]
    paths = _corpus_paths(meta)
    if not paths or not all(Path(p).exists() for p in paths):
        return None
    sources = [
        open_sequences(
            p["path"],
            format=p.get("format", "auto"),
            id_column=p.get("id_column"),
            sequence_column=p.get("sequence_column"),
        )
        for p in parts
    ]
    return sources[0] if len(sources) == 1 else ConcatSource(sources)


def select_to_folder(
    scores: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    method: str = "cci",
    budget: int | float,
    seed: int = 0,
    options: dict[str, Any] | None = None,
    sequences: SequenceSource | str | os.PathLike[str] | None = None,
    force: bool = False,
    progress: bool | None = None,
    allow_changed_corpus: bool = False,
    debias: str | None = None,
) -> dict[str, Any]:
    """Select a coreset from a score file and write it into ``output``.

    Writes ``coreset_ids.txt`` (one id per line, input order), ``coreset.fasta`` (the selected
    records as they are in the corpus, full header lines included), ``selection.png`` (score distribution with the selection; CCI:
    the β cut, the strata and how many were taken from each) and ``selection.json`` (the summary).
    The corpus is ``sequences`` or, by default, the file named in the score metadata; without one,
    the FASTA is not written (the summary says so). The corpus is checked, record by record,
    against the sequences that were scored (score files of :func:`~biocoreset.score_to_file` keep
    a hash per row); ``allow_changed_corpus`` skips the check.

    The files are written into a temporary folder beside ``output`` and moved into place only
    when every one of them is written: a failure leaves ``output`` as it was.

    With ``debias="length"`` the selector works on
    the length-conditional score (see :func:`biocoreset.select`), the plot shows that score, and
    the summary's ``debias`` holds the fit. The summary's ``composition`` holds two lines (median
    length against the corpus and random sets; size and Spearman ρ of I(z) with length).

    Returns:
        The summary written to ``selection.json``.

    Raises:
        OutputExistsError: One of the files exists and ``force`` is false (nothing is written).
        OutputPathError: ``output`` cannot be created.
        BudgetError: Budget larger than the number of scores, or not positive.
        InputError: The corpus lacks selected ids, or differs from the one scored (names the first
            differing record).
    """
    from biocoreset.selection import select

    values, id_column, meta = read_score_columns(scores)
    out = Path(output)
    owned = OwnedOutput(out, own=SELECTION_FILES, command="select")
    target = owned.target  # a symbolic link is written through
    if target.exists() and not target.is_dir():
        raise OutputExistsError(
            f"{str(out)!r} exists and is not a folder; choose a folder for the coreset files."
        )
    check_writable(target, what="output folder")
    given = [sequences] if isinstance(sequences, (str, os.PathLike)) else []
    check_not_input([scores, *given, *_corpus_paths(meta)], [out], command="select")
    owned.recover()  # first: a swap a kill interrupted is finished or undone
    existing = [name for name in SELECTION_FILES if (target / name).exists()]
    if existing and not force:
        raise OutputExistsError(
            f"{str(out)!r} already holds {', '.join(existing)}; pass force=True (--force) to overwrite."
        )
    negated = bool(meta.get("negated", False))
    lengths = _read_lengths(scores)
    factory = get_registry().get("selector", method).load()
    sel = select(
        values,
        method,
        budget=budget,
        seed=seed,
        negated=negated,
        debias=debias,
        lengths=lengths,
        # only a selector that needs them (cluster) gets every id as a list
        ids=id_column.to_pylist() if isinstance(factory, IdentifiedSelector) else None,
        **(options or {}),
    )
    ids = id_column.take(sel.indices).to_pylist()
    with owned.replace() as stage:
        summary = _write_selection(
            stage,
            out,
            scores,
            values,
            id_column,
            meta,
            sel,
            ids,
            sequences,
            progress,
            allow_changed_corpus,
            lengths,
        )
    return summary  # an old coreset.fasta the new selection lacks went with the old folder


def _write_selection(
    stage: Path,
    out: Path,
    scores: str | os.PathLike[str],
    values: np.ndarray,
    id_column: Any,
    meta: dict[str, Any],
    sel: Any,
    ids: list[str],
    sequences: SequenceSource | str | os.PathLike[str] | None,
    progress: bool | None,
    allow_changed_corpus: bool,
    lengths: np.ndarray | None,
) -> dict[str, Any]:
    from biocoreset.diagnose.plots import plot_selection
    from biocoreset.selection import StrataPlan

    negated, seed = bool(meta.get("negated", False)), sel.seed

    with atomic_path(stage / "coreset_ids.txt", force=True) as tmp:
        tmp.write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
    source: SequenceSource | None
    if sequences is None:
        source = _corpus_from_metadata(meta)
    elif isinstance(sequences, SequenceSource):
        source = sequences
    else:
        source = open_sequences(sequences)
    fasta_note = None
    if source is not None:
        validation = meta.get("validation") or {}
        check = None
        hashes = None if allow_changed_corpus else read_sequence_hashes(scores)
        if hashes is not None:
            skipped = int(validation.get("skipped_invalid", 0)) + int(
                validation.get("skipped_empty", 0)
            )
            check = CorpusCheck(id_column, hashes, skipped=skipped, where=source.describe())
        _write_fasta(
            source,
            ids,
            stage / "coreset.fasta",
            progress,
            total=validation.get("records"),
            check=check,
        )
    else:
        missing = [p for p in _corpus_paths(meta) if not Path(p).exists()]
        fasta_note = (
            f"coreset.fasta not written: the scores name corpus file {missing[0]!r}, which is "
            "missing; pass the corpus (--sequences)."
            if missing
            else "coreset.fasta not written: the scores name no corpus file; pass the corpus "
            "(--sequences)."
        )
    plan = sel.plan
    summary: dict[str, Any] = {
        "method": sel.method,
        "budget": sel.budget,
        "num_scores": int(values.size),
        "seed": sel.seed,
        "options": sel.options,
        "scores_file": str(Path(scores)),
        "score_negated": negated,
        "selected_score_range": [
            float(values[sel.indices].min()),
            float(values[sel.indices].max()),
        ],
        "files": {name: str(out / name) for name in SELECTION_FILES},
        "composition": _composition_lines(values, lengths, sel.indices, negated, seed),
    }
    if sel.debias is not None:
        summary["debias"] = sel.debias
    if fasta_note:
        summary["files"].pop("coreset.fasta")
        summary["note"] = fasta_note
    if isinstance(plan, StrataPlan):
        summary["cci"] = {
            "cut": int(plan.cut.size),
            "cut_at_score": (
                float(
                    values[plan.cut].max()
                    if sel.options.get("cut") == "lowest"
                    else values[plan.cut].min()
                )
                if plan.cut.size
                else None
            ),
            "edges": [float(e) for e in plan.edges],
            "stratum_sizes": [int(v) for v in plan.sizes],
            "taken": [int(v) for v in plan.taken],
        }
    title = f"{sel.method}: {sel.budget} of {values.size} selected"
    shown = values
    if sel.debias is not None:  # the selector saw the length-conditional score: plot that
        from biocoreset.selectors.debias import debias_values

        if lengths is None:  # select() refuses debias without lengths, so this cannot happen
            raise InputError(f"{str(scores)!r} holds no lengths, which debias='length' needs.")
        shown = debias_values(values, lengths, negated=negated)[0]
        title += " (length-conditional score)"
    plot_selection(shown, sel, stage / "selection.png", title=title)
    with atomic_path(stage / "selection.json", force=True) as tmp:
        tmp.write_text(json.dumps(summary, indent=1), encoding="utf-8")
    return summary


def _read_lengths(path: str | os.PathLike[str]) -> np.ndarray | None:
    """The score file's length column (``None`` when it has none).

    Raises:
        InputError: A length that is not a whole number >= 0 (NaN, ...), naming its row and id.
    """
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path, columns=["id", "length"])
    except Exception:
        return None
    values = table.column("length").to_numpy(zero_copy_only=False)  # nulls become NaN
    if values.dtype.kind in "iu":
        return values
    where = f"the score file {str(path)!r}"
    return check_lengths(values, table.column("id").to_pylist(), where=where)


def _composition_lines(
    values: np.ndarray, lengths: np.ndarray | None, indices: np.ndarray, negated: bool, seed: int
) -> list[str]:
    """Two lines: median length against the corpus and random sets of the same size; the size
    and Spearman ρ of I(z) with length over the corpus and the selection."""
    from biocoreset.diagnose.composition import composition_summary
    from biocoreset.stats import spearman

    n = values.size
    if lengths is None or lengths.size != n:
        return [f"size: {indices.size:,} of {n:,} (the scores hold no lengths)"]
    influence = -values if negated else values
    rho_all = spearman(influence, lengths)
    rho_sel = spearman(influence[indices], lengths[indices]) if indices.size > 2 else float("nan")
    first = composition_summary(indices, lengths, seed=seed)[0]
    if np.unique(lengths).size < 2:  # e.g. every sequence truncated to the model's max length
        corr = (
            f"n/a (every scored length is {int(lengths[0])}: the column holds the residues scored)"
        )
    else:
        corr = f"corpus {_signed(rho_all)}, selected {_signed(rho_sel)}"
    return [
        first,
        f"size: {indices.size:,} of {n:,} ({indices.size / n:.1%}); Spearman(I(z), length): {corr}",
    ]


def _signed(rho: float) -> str:
    return "n/a" if math.isnan(rho) else f"{rho:+.2f}"


def _write_fasta(
    source: SequenceSource,
    ids: list[str],
    path: Path,
    progress: bool | None,
    *,
    total: int | None = None,
    width: int = 80,
    check: CorpusCheck | None = None,
) -> None:
    wanted = set(ids)
    found = 0
    with atomic_path(path, force=True) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for rid, seq, header in progress_bar(
            source.iter_with_headers(),
            enabled=progress,
            total=total,
            desc="write FASTA",
            unit="seq",
        ):
            if check is not None:
                check(rid, seq)
            if rid in wanted:
                fh.write(f">{header}\n")
                for i in range(0, len(seq), width):
                    fh.write(seq[i : i + width] + "\n")
                found += 1
                if found == len(wanted) and check is None:
                    break
        if check is not None:
            check.finish()
        if found != len(wanted):
            raise InputError(
                f"{source.describe()} lacks {len(wanted) - found} of the selected ids; is it the corpus "
                "the scores were computed on?"
            )

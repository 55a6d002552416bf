"""The whole job in one call: load the model, fine-tune on ``D_sub``, score, select — ``biocoreset run``.

:func:`run_pipeline` takes a :class:`~biocoreset.runfile.RunConfig` (usually from a TOML file, see
:func:`~biocoreset.runfile.load_run_config`) and writes into its run folder::

    run/
      run.json                 the configuration, its hash and which steps are done
      finetune/model.pt        fine-tuned weights (state dict)    (absent for "w/o ft")
      finetune/finetune.json   fine-tune report: D_sub ids, losses, before/after diagnostic
      scores.parquet           one score per sequence (+ metadata); scores.parquet.parts/ while running
      select-<method>/         coreset.fasta, coreset_ids.txt, selection.png, selection.json

Rerunning the same command resumes: finished steps are skipped and scoring continues from its last
shard. A different configuration in an existing run folder is refused unless ``force``.

:func:`select_to_folder` is the ``biocoreset select`` step on its own: it reads only the score and id
columns, never the whole result.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from biocoreset.data.sources import ConcatSource, SequenceSource, open_sequences
from biocoreset.errors import ConfigError, InputError, OutputExistsError
from biocoreset.modelio import load_model, load_weights
from biocoreset.presets import get_preset
from biocoreset.progress import progress_bar
from biocoreset.protocols import ModelAdapter
from biocoreset.runfile import RunConfig
from biocoreset.runtime.distributed import current
from biocoreset.store.atomic import atomic_path
from biocoreset.store.shards import fingerprint_hash

__all__ = [
    "SELECTION_FILES",
    "load_adapter",
    "read_score_columns",
    "run_pipeline",
    "select_to_folder",
    "selector_options",
]

SELECTION_FILES = ("coreset_ids.txt", "coreset.fasta", "selection.png", "selection.json")
"""Files ``biocoreset select`` writes into its output folder."""


def load_adapter(
    adapter: str | None = None,
    path: str | os.PathLike[str] | None = None,
    options: dict[str, Any] | None = None,
    *,
    weights: str | os.PathLike[str] | None = None,
    device: str = "auto",
) -> ModelAdapter:
    """Build an adapter from names and paths (the CLI's and ``run``'s model loading).

    A thin alias of :func:`biocoreset.modelio.load_model` (see it for what ``path`` may be).

    Args:
        adapter: Adapter name (``None``: the saved folder's manifest, else guessed, else ``hf``).
        path: Model folder or file.
        options: Adapter options.
        weights: A state dict (e.g. ``finetune/model.pt``) loaded over the model.
        device: ``"auto"`` (``cuda:<local rank>`` when available, else CPU) or a torch device.

    Raises:
        ConfigError: Unknown adapter, bad options or unusable weights.
        InputError: ``path`` holds no model.
    """
    return load_model(path, adapter=adapter, options=options, weights=weights, device=device)


def read_score_columns(path: str | os.PathLike[str]) -> tuple[np.ndarray, Any, dict[str, Any]]:
    """Scores (float64 array), the id column (a pyarrow array) and the metadata of a score file.

    Raises:
        InputError: Missing or unreadable file, or missing columns.
    """
    import pyarrow.parquet as pq

    from biocoreset.store.result import METADATA_KEY

    p = Path(path)
    if not p.exists():
        raise InputError(f"score file {str(p)!r} does not exist.")
    try:
        table = pq.read_table(p, columns=["id", "score"])
    except Exception as exc:
        raise InputError(f"{str(p)!r} is not a readable biocoreset score file: {exc}") from exc
    raw = (table.schema.metadata or {}).get(METADATA_KEY, b"{}")
    ids = table.column("id").combine_chunks()
    return (
        table.column("score").to_numpy().astype(np.float64, copy=False),
        ids,
        json.loads(raw.decode("utf-8")),
    )


def _corpus_from_metadata(meta: dict[str, Any]) -> SequenceSource | None:
    reader = meta.get("reader") or {}
    parts = reader.get("parts") or [reader]
    paths = [p.get("path") for p in parts]
    if not all(paths) or not all(Path(p).exists() for p in paths):
        return None
    sources = [
        open_sequences(
            p["path"],
            format=p.get("format", "auto"),
            id_column=p.get("id_column", "id"),
            sequence_column=p.get("sequence_column", "sequence"),
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
    debias: str | None = None,
) -> dict[str, Any]:
    """Select a coreset from a score file and write it into ``output``.

    Writes ``coreset_ids.txt`` (one id per line, input order), ``coreset.fasta`` (the selected
    records as they are in the corpus, full header lines included), ``selection.png`` (score distribution with the selection; CCI:
    the β cut, the strata and how many were taken from each) and ``selection.json`` (the summary).
    The corpus is ``sequences`` or, by default, the file named in the score metadata; without one,
    the FASTA is not written (the summary says so). With ``debias="length"`` the selector works on
    the length-conditional score (see :func:`biocoreset.select`), the plot shows that score, and
    the summary's ``debias`` holds the fit. The summary's ``composition`` holds two lines (median
    length against the corpus and random sets; size and Spearman ρ of I(z) with length).

    Returns:
        The summary written to ``selection.json``.

    Raises:
        OutputExistsError: One of the files exists and ``force`` is false (nothing is written).
        BudgetError: Budget larger than the number of scores, or not positive.
        InputError: The corpus lacks selected ids.
    """
    from biocoreset.plots import plot_selection
    from biocoreset.selection import select

    values, id_column, meta = read_score_columns(scores)
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(
            f"{str(out)!r} exists and is not a folder; choose a folder for the coreset files."
        )
    existing = [name for name in SELECTION_FILES if (out / name).exists()]
    if existing and not force:
        raise OutputExistsError(
            f"{str(out)!r} already holds {', '.join(existing)}; pass force=True (--force) to overwrite."
        )
    negated = bool(meta.get("negated", False))
    lengths = _read_lengths(scores)
    sel = select(
        values,
        method,
        budget=budget,
        seed=seed,
        negated=negated,
        debias=debias,
        lengths=lengths,
        **(options or {}),
    )
    ids = id_column.take(sel.indices).to_pylist()
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "coreset_ids.txt", force=True) as tmp:
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
        total = (meta.get("validation") or {}).get("records")
        _write_fasta(source, ids, out / "coreset.fasta", progress, total=total)
    else:
        fasta_note = "coreset.fasta not written: the scores name no corpus file; pass the corpus (--sequences)."
        stale = out / "coreset.fasta"
        if stale.exists():
            stale.unlink()
    plan = sel.plan
    summary: dict[str, Any] = {
        "method": sel.method,
        "budget": sel.budget,
        "num_scores": int(values.size),
        "seed": sel.seed,
        "options": sel.options,
        "scores_file": str(Path(scores)),
        "score_negated": bool(meta.get("negated", False)),
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
    if plan is not None and hasattr(plan, "edges"):
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

        shown = debias_values(values, lengths, negated=negated)[0]
        title += " (length-conditional score)"
    plot_selection(shown, sel, out / "selection.png", title=title)
    with atomic_path(out / "selection.json", force=True) as tmp:
        tmp.write_text(json.dumps(summary, indent=1), encoding="utf-8")
    return summary


def _read_lengths(path: str | os.PathLike[str]) -> np.ndarray | None:
    """The score file's length column (``None`` when it has none)."""
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path, columns=["length"]).column("length").to_numpy()
    except Exception:
        return None


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
    return [
        first,
        f"size: {indices.size:,} of {n:,} ({indices.size / n:.1%}); Spearman(I(z), length): "
        f"corpus {rho_all:+.2f}, selected {rho_sel:+.2f}",
    ]


def _write_fasta(
    source: SequenceSource,
    ids: list[str],
    path: Path,
    progress: bool | None,
    *,
    total: int | None = None,
    width: int = 80,
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
            if rid in wanted:
                fh.write(f">{header}\n")
                for i in range(0, len(seq), width):
                    fh.write(seq[i : i + width] + "\n")
                found += 1
                if found == len(wanted):
                    break
        if found != len(wanted):
            raise InputError(
                f"{source.describe()} lacks {len(wanted) - found} of the selected ids; is it the corpus "
                "the scores were computed on?"
            )


# -- run ---------------------------------------------------------------------------------------


def _config_dict(cfg: RunConfig) -> dict[str, Any]:
    def conv(v: Any) -> Any:
        if isinstance(v, tuple):
            return list(v)
        return v

    return attrs.asdict(cfg, value_serializer=lambda _inst, _field, v: conv(v))


_RUN_PATHS = ("run.json", "finetune", "scores.parquet", "scores.parquet.parts")


def selector_options(cfg: RunConfig) -> dict[str, dict[str, Any]]:
    """Each method's selector options: the preset's for that selector, then the run file's
    ``[select.options.<method>]``. Every selector is built once with them, so a bad option or
    method fails before any work (the selector checks its own options).

    Raises:
        ConfigError: An option the selector rejects (or an unknown method).
    """
    from biocoreset.plugins import get_registry

    preset = get_preset(cfg.preset)
    out = {}
    for method in cfg.select.methods:
        options = {**preset.options_for(method), **cfg.select.options_for(method)}
        factory = get_registry().get("selector", method).factory
        try:
            factory(**options)
        except TypeError as exc:  # a selector without option checking of its own
            raise ConfigError(f"[select.options.{method}] {exc}") from None
        out[method] = options
    return out


def run_pipeline(
    cfg: RunConfig, *, force: bool = False, progress: bool | None = None
) -> dict[str, Any]:
    """Run fine-tune → score → select as configured, resuming an unfinished run of the same config.

    Args:
        cfg: The run configuration.
        force: Discard an existing run folder's results (the files this function writes) first.
        progress: Progress bars (``None``: when stderr is a terminal).

    Returns:
        The ``run.json`` content.

    Raises:
        ConfigError: The run folder holds a run of another configuration (and not ``force``).
    """
    from biocoreset.api import score_to_file
    from biocoreset.train.finetune import finetune, save_finetuned

    ctx = current(auto_init=True)
    selections = selector_options(cfg)  # fail on a bad selector option before any work
    out = Path(cfg.output)
    state_path = out / "run.json"
    config = _config_dict(cfg)
    chash = fingerprint_hash(config)

    def check_folder() -> None:
        if force:
            for name in _RUN_PATHS:
                p = out / name
                if p.is_dir():
                    shutil.rmtree(p)
                elif p.exists():
                    p.unlink()
            for p in out.glob("select-*") if out.exists() else []:
                shutil.rmtree(p)
        if state_path.exists():
            old = json.loads(state_path.read_text(encoding="utf-8"))
            if old.get("config_hash") != chash:
                raise ConfigError(
                    f"{str(out)!r} holds a run with another configuration (run.json); use another output "
                    "folder, or pass --force to discard its results."
                )
        elif out.exists() and any(out.iterdir()):
            raise OutputExistsError(
                f"run folder {str(out)!r} exists and is not a biocoreset run (no run.json); choose an "
                "empty or new folder, or pass --force."
            )

    ctx.main_only(check_folder)
    state: dict[str, Any] = {"config_hash": chash, "config": config, "steps": {}}
    if state_path.exists():
        state = json.loads(state_path.read_text(encoding="utf-8"))

    def save_state() -> None:
        if ctx.is_main:
            out.mkdir(parents=True, exist_ok=True)
            with atomic_path(state_path, force=True) as tmp:
                tmp.write_text(json.dumps(state, indent=1, default=str), encoding="utf-8")

    save_state()
    data = cfg.data
    source = open_sequences(
        data.path,
        format=data.format,
        id_column=data.id_column,
        sequence_column=data.sequence_column,
    )
    adp = load_adapter(
        cfg.model.adapter,
        cfg.model.path,
        cfg.model.options,
        weights=cfg.model.weights,
        device=cfg.model.device,
    )
    ft_dir = out / "finetune"
    if state["steps"].get("finetune"):
        if (ft_dir / "model.pt").exists():
            load_weights(adp.model, ft_dir / "model.pt")
    else:
        result = finetune(adp, source, config=attrs.evolve(cfg.finetune, progress=progress))
        if cfg.finetune.enabled:
            save_finetuned(ft_dir, adp, result, force=True)
        elif ctx.is_main:
            ft_dir.mkdir(parents=True, exist_ok=True)
            with atomic_path(ft_dir / "finetune.json", force=True) as tmp:
                tmp.write_text(
                    json.dumps(result.to_dict(), indent=1, default=str), encoding="utf-8"
                )
        ctx.barrier()
        state["steps"]["finetune"] = {"done": True, "summary": result.summary()}
        save_state()
    scores_path = out / "scores.parquet"
    if not state["steps"].get("score"):
        if scores_path.exists():  # finished (it appears atomically) before the state was saved
            meta = read_score_columns(scores_path)[2]
        else:
            meta = score_to_file(
                adp, source, scores_path, config=attrs.evolve(cfg.score, progress=progress)
            )
        state["steps"]["score"] = {
            "done": True,
            "num_sequences": meta["num_sequences"],
            "damping": meta.get("damping"),
            "validation": meta["validation"],
        }
        save_state()
    sel = cfg.select
    for method, options in selections.items():
        key = f"select-{method}"
        if state["steps"].get(key) or not ctx.is_main:
            continue
        summary = select_to_folder(
            scores_path,
            out / key,
            method=method,
            budget=sel.budget,
            seed=sel.seed,
            options=options,
            sequences=source,
            force=True,
            progress=progress,
        )
        state["steps"][key] = {"done": True, "budget": summary["budget"], "folder": str(out / key)}
        save_state()
    ctx.barrier()
    return state

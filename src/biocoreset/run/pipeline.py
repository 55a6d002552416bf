"""The whole job in one call: load the model, fine-tune on ``D_sub``, score, select — ``biocoreset run``.

:func:`run_pipeline` takes a :class:`~biocoreset.run.file.RunConfig` (usually from a TOML file, see
:func:`~biocoreset.run.file.load_run_config`) and writes into its run folder::

    run/
      run.json                 the configuration, its hash and which steps are done
      finetune/model.pt        fine-tuned weights (state dict)    (absent for "w/o ft")
      finetune/finetune.json   fine-tune report: D_sub ids, losses, before/after diagnostic
      scores.parquet           one score per sequence (+ metadata); scores.parquet.parts/ while running
      select-<method>/         coreset.fasta, coreset_ids.txt, selection.png, selection.json

Rerunning the same command resumes: finished steps are skipped and scoring continues from its last
shard. A different configuration in an existing run folder is refused unless ``force``. With
``force`` the old results stay until each step's new output replaces its old one whole (see
:mod:`biocoreset.store.owned`); ``run.json`` lists the old ones not yet replaced (``replacing``),
and those the new run does not write go when it finishes. The user's files in the folder are kept.

:func:`~biocoreset.selection.folder.select_to_folder` is the ``biocoreset select``
step on its own: it reads only the score and id columns, never the whole result.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import attrs

from biocoreset.data.sources import open_sequences
from biocoreset.errors import ConfigError, OutputExistsError
from biocoreset.modelio import load_model, load_weights
from biocoreset.run.check import check_run_config
from biocoreset.run.file import RunConfig
from biocoreset.runtime.distributed import current
from biocoreset.selection.folder import read_score_columns, select_to_folder
from biocoreset.store.atomic import atomic_path, check_not_input
from biocoreset.store.owned import OwnedOutput
from biocoreset.store.shards import ScoreStore, fingerprint_hash

__all__ = ["run_pipeline"]


# -- run ---------------------------------------------------------------------------------------


def _config_dict(cfg: RunConfig) -> dict[str, Any]:
    def conv(v: Any) -> Any:
        if isinstance(v, tuple):
            return list(v)
        return v

    return attrs.asdict(cfg, value_serializer=lambda _inst, _field, v: conv(v))


_RUN_PATHS = ("run.json", "finetune", "scores.parquet", "scores.parquet.parts")
"""What ``run`` writes into its folder (besides ``select-*``); ``--force`` replaces only these."""


def run_pipeline(
    cfg: RunConfig, *, force: bool = False, progress: bool | None = None
) -> dict[str, Any]:
    """Run fine-tune → score → select as configured, resuming an unfinished run of the same config.

    Args:
        cfg: The run configuration.
        force: Redo every step of an existing run folder; each old result (the files this
            function writes) stays until its new one replaces it.
        progress: Progress bars (``None``: when stderr is a terminal).

    Returns:
        The ``run.json`` content.

    Raises:
        ConfigError: The run folder holds a run of another configuration (and not ``force``).
    """
    ctx = current(auto_init=True)
    selections = check_run_config(cfg)  # names, options, paths: fail before any work or file
    owned = OwnedOutput(cfg.output, own=_run_own, command="run")
    out = owned.target  # a symbolic link is written through
    if not ctx.is_main:
        return _run_pipeline(cfg, out, selections, force=force, progress=progress)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(
            f"the run folder {str(cfg.output)!r} is a file; choose a new or empty folder for the run."
        )
    with owned.locked():  # one run at a time in a folder
        return _run_pipeline(cfg, out, selections, force=force, progress=progress)


def _run_own(name: str) -> bool:
    return name in _RUN_PATHS or name.startswith("select-")


def _run_pipeline(
    cfg: RunConfig,
    out: Path,
    selections: dict[str, Any],
    *,
    force: bool,
    progress: bool | None,
) -> dict[str, Any]:
    from biocoreset.api import score_to_file
    from biocoreset.train.finetune import finetune, save_finetuned

    ctx = current(auto_init=True)
    state_path = out / "run.json"
    config = _config_dict(cfg)
    chash = fingerprint_hash(config)

    def check_folder() -> None:
        if out.exists() and not out.is_dir():
            raise OutputExistsError(
                f"the run folder {str(out)!r} is a file; choose a new or empty folder for the run."
            )
        if force and out.is_dir():
            # never delete the work folder of a scoring process that is still running
            ScoreStore(out / "scores.parquet").check_lock()
        if not state_path.exists() and out.exists() and any(out.iterdir()):
            raise OutputExistsError(
                f"run folder {str(out)!r} exists and is not a biocoreset run (no run.json); "
                + (
                    "--force discards only a run's own results, never other files: "
                    if force
                    else ""
                )
                + "choose an empty or new folder."
            )
        owned = [out / n for n in _RUN_PATHS] + sorted(out.glob("select-*") if out.exists() else [])
        check_not_input([data.path, cfg.model.path, cfg.model.weights], owned, command="run")
        if force and state_path.exists():
            # nothing is deleted: no step is done any more, and every old result is listed as
            # one to replace (each step's new output replaces it whole; the rest go at the end)
            old = json.loads(state_path.read_text(encoding="utf-8"))
            stale = sorted({p.name for p in owned[1:] if p.exists()} | set(_replacing(old)))
            fresh = {"config_hash": chash, "config": config, "steps": {}, "replacing": stale}
            with atomic_path(state_path, force=True) as tmp:
                tmp.write_text(json.dumps(fresh, indent=1, default=str), encoding="utf-8")
        if state_path.exists():
            old = json.loads(state_path.read_text(encoding="utf-8"))
            # a run that finished no step (it failed at its start) holds nothing to protect
            if old.get("config_hash") != chash and any(old.get("steps") or {}):
                raise ConfigError(
                    f"{str(out)!r} holds a run with another configuration (run.json); use another output "
                    "folder, or pass --force to discard its results."
                )

    data = cfg.data
    ctx.main_only(check_folder)
    state: dict[str, Any] = {"config_hash": chash, "config": config, "steps": {}}
    if state_path.exists():
        old_state = json.loads(state_path.read_text(encoding="utf-8"))
        if old_state.get("config_hash") == chash:
            state = old_state
    replacing: list[str] = _replacing(state)

    def replaced(name: str) -> None:
        if name in replacing:
            replacing.remove(name)
            state["replacing"] = replacing

    def save_state() -> None:
        if ctx.is_main:
            out.mkdir(parents=True, exist_ok=True)
            with atomic_path(state_path, force=True) as tmp:
                tmp.write_text(json.dumps(state, indent=1, default=str), encoding="utf-8")

    save_state()
    source = open_sequences(
        data.path,
        format=data.format,
        id_column=data.id_column,
        sequence_column=data.sequence_column,
    )
    state["input"] = source.reader_options()  # the format read and an OAS unit's metadata
    save_state()
    adp = load_model(
        cfg.model.path,
        adapter=cfg.model.adapter,
        options=cfg.model.options,
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
        elif ctx.is_main:  # the report alone, swapped in whole (an old model.pt goes)
            from biocoreset.train.outdir import write_model_folder

            text = json.dumps(result.to_dict(), indent=1, default=str)
            write_model_folder(ft_dir, lambda stage: (stage / "finetune.json").write_text(text))
        ctx.barrier()
        state["steps"]["finetune"] = {"done": True, "summary": result.summary()}
        replaced("finetune")
        save_state()
    scores_path = out / "scores.parquet"
    if not state["steps"].get("score"):
        old_scores = "scores.parquet" in replacing
        if scores_path.exists() and not old_scores:
            # finished (it appears atomically) before the state was saved
            meta = read_score_columns(scores_path)[2]
        else:  # an old file of a forced run stays until the new one replaces it
            meta = score_to_file(
                adp,
                source,
                scores_path,
                config=attrs.evolve(cfg.score, progress=progress),
                force=old_scores,
            )
        replaced("scores.parquet")
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
            debias=sel.debias,
        )
        state["steps"][key] = {"done": True, "budget": summary["budget"], "folder": str(out / key)}
        replaced(key)
        save_state()
    if ctx.is_main and replacing:  # old results the new run does not write: they go last
        for name in list(replacing):
            p = out / name
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            elif p.exists() or p.is_symlink():
                p.unlink()
            replaced(name)
        save_state()
    ctx.barrier()
    return state


def _replacing(state: dict[str, Any]) -> list[str]:
    """The old results a forced run has not replaced yet (``run.json``'s ``replacing``)."""
    names = state.get("replacing") or []
    return [n for n in names if isinstance(n, str) and _run_own(n) and "/" not in n]

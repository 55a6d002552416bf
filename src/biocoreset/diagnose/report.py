"""``diagnose``: is the selection signal or noise? A report on a score file and its coresets.

It answers the questions a user choosing 1% of a corpus needs answered before trusting the choice:

* how much of the score is sequence length (Spearman ρ, R² of a length fit; a plot);
* how the score relates to the sequence's own loss;
* how stable the score is across MLM mask draws (from ``score(..., mask_draws=K)``'s split-half
  figures: an estimate of two runs' agreement that ran up to 0.1 high in the measurements,
  ``docs/trust.md``), and how many draws would make two runs agree;
* what each coreset contains against random sets of the same size: label coverage, entropy, the
  largest label's share, median length;
* warnings, each naming its fix: strong length dependence, low stability, many zero Fisher
  entries, a fine-tune shorter than its warm-up, a small ``D_sub``.

Example:
    >>> import numpy as np, tempfile
    >>> from biocoreset.store.result import ScoreResult
    >>> L = np.arange(10, 210)
    >>> r = ScoreResult(ids=[f"s{i}" for i in range(200)], scores=1e3 / L, loss=np.ones(200),
    ...                 length=L, metadata={"negated": False})
    >>> d = diagnose(r)
    >>> d.summary["length"]["spearman"], any("length" in w for w in d.warnings)
    (-1.0, True)
    >>> sorted(p.name for p in d.write(tempfile.mkdtemp()).values())
    ['length.png', 'loss.png', 'report.json', 'report.md']
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from biocoreset.diagnose.advice import compute_advice
from biocoreset.diagnose.composition import (
    composition,
    label_array,
    random_baseline,
    read_id_file,
    read_labels,
)
from biocoreset.errors import InputError, OutputExistsError
from biocoreset.stats import LengthControl, length_control, spearman
from biocoreset.store.checks import check_finite_scores, check_ids
from biocoreset.store.owned import OwnedOutput
from biocoreset.store.result import ScoreResult

__all__ = ["REPORT_FILES", "Diagnosis", "diagnose"]

REPORT_FILES = (
    "report.md",
    "report.json",
    "length.png",
    "loss.png",
    "stability.png",
    "coresets.png",
)
"""Files :meth:`Diagnosis.write` may write."""

LENGTH_WARN = 0.5
STABILITY_TARGET = 0.9
ZERO_FISHER_WARN = 0.10
SMALL_SUBSET = 100


@attrs.frozen(kw_only=True, eq=False)
class Diagnosis:
    """A diagnosis of one score file (see :func:`diagnose`).

    Attributes:
        summary: Every figure of the report (what ``report.json`` holds).
        warnings: One sentence per problem found, each naming its fix.
    """

    summary: dict[str, Any]
    warnings: list[str]
    influence: np.ndarray
    lengths: np.ndarray
    loss: np.ndarray
    control: LengthControl
    coresets: dict[str, np.ndarray]

    def figures(self) -> dict[str, Any]:
        """The report's matplotlib figures by file stem (``length``, ``loss``, ``stability``,
        ``coresets``)."""
        from biocoreset.diagnose import figures as f

        out = {
            "length": f.figure_length(self.influence, self.lengths, self.control),
            "loss": f.figure_loss(self.influence, self.loss),
        }
        if self.summary.get("stability"):
            out["stability"] = f.figure_stability(self.summary["stability"])
        if self.coresets:
            out["coresets"] = f.figure_coresets(
                self.lengths, self.coresets, self.summary["coresets"]
            )
        return out

    def markdown(self) -> str:
        """The report as Markdown (figures referenced by file name)."""
        return _markdown(self)

    def write(self, folder: str | os.PathLike[str], *, force: bool = False) -> dict[str, Path]:
        """Write ``report.md``, ``report.json`` and the PNGs into ``folder``: they are written into
        a folder beside it that then replaces it whole (all-old or all-new); other files in an
        existing ``folder`` are kept.

        Raises:
            OutputExistsError: ``folder`` already holds report files and ``force`` is false
                (nothing is written).
        """
        import matplotlib.pyplot as plt

        out = Path(folder)
        owned = OwnedOutput(out, own=REPORT_FILES, command="diagnose")
        target = owned.target  # a symbolic link is written through
        if target.exists() and not target.is_dir():
            raise OutputExistsError(f"{str(out)!r} exists and is not a folder; choose a folder.")
        owned.recover()  # first: a swap a kill interrupted is finished or undone
        existing = [n for n in REPORT_FILES if (target / n).exists()]
        if existing and not force:
            raise OutputExistsError(
                f"{str(out)!r} already holds {', '.join(existing)}; pass force=True (--force) to "
                "overwrite."
            )
        figs = self.figures()
        written: dict[str, Path] = {}
        with owned.replace() as stage:  # all-old or all-new
            try:
                for name, fig in figs.items():
                    fig.savefig(stage / f"{name}.png", dpi=110, format="png")
                    written[f"{name}.png"] = out / f"{name}.png"
            finally:
                for fig in figs.values():
                    plt.close(fig)
            summary = json.dumps(self.summary, indent=1, default=_jsonable)
            (stage / "report.json").write_text(summary, encoding="utf-8")
            written["report.json"] = out / "report.json"
            (stage / "report.md").write_text(self.markdown(), encoding="utf-8")
            written["report.md"] = out / "report.md"
        return written


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _finetune_record(scores_path: Path | None, finetune: Any) -> dict[str, Any] | None:
    if isinstance(finetune, Mapping):
        return dict(finetune)
    path = Path(finetune) if finetune is not None else None
    if path is None and scores_path is not None:
        guess = scores_path.parent / "finetune" / "finetune.json"
        path = guess if guess.is_file() else None
    if path is None:
        return None
    if path.is_dir():
        path = path / "finetune.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"fine-tune record {str(path)!r} is not readable JSON: {exc}") from exc


def _warnings(
    meta: Mapping[str, Any], summary: Mapping[str, Any], ft: Mapping[str, Any] | None
) -> list[str]:
    out = []
    rho = summary["length"]["spearman"]
    if math.isfinite(rho) and abs(rho) > LENGTH_WARN:
        out.append(
            f"the scores follow sequence length (Spearman ρ = {rho:.2f}): Top-I and CCI will mostly "
            'choose by length. Select with `--debias length` (Python: `debias="length"`); see '
            "docs/trust.md."
        )
    stab = summary.get("stability")
    if stab:
        if stab["projected"] < STABILITY_TARGET:
            need = stab["draws_for_target"]
            more = f"--mask-draws {math.ceil(need)}" if math.isfinite(need) else "more mask draws"
            out.append(
                f"projected reliability {stab['projected']:.2f} with {stab['draws']} mask draws "
                f"(target {STABILITY_TARGET}; an estimate of two runs' Spearman ρ that ran up to "
                f"0.1 high in the measurements, docs/trust.md): rescore with {more}."
            )
            out += compute_advice(meta)
    else:
        out.append(
            "stability unknown: the scores come from one MLM mask per sequence. Rescore with "
            "`--mask-draws 8` to measure it (and to reduce the mask noise)."
        )
        out += compute_advice(meta)
    zeros, params = meta.get("fisher_zero_entries"), meta.get("num_scored_parameters")
    if (
        isinstance(zeros, int)
        and isinstance(params, int)
        and params
        and zeros / params > ZERO_FISHER_WARN
    ):
        out.append(
            f"{zeros / params:.0%} of the Fisher entries are zero (no gradient on D_sub, e.g. "
            "embedding rows of letters D_sub lacks): λ alone sets their weight. Enlarge D_sub "
            "(`--subset`) or leave those parameters out (`--parameters`)."
        )
    size = meta.get("subset_size")
    if meta.get("fit_on", "subset") == "subset" and isinstance(size, int) and size < SMALL_SUBSET:
        out.append(
            f"D_sub holds only {size} sequences: the Fisher and the fine-tune rest on very few. Use "
            "`--subset` of at least a few hundred (the default is 1% of the corpus, at least 256)."
        )
    if ft and ft.get("enabled", True):
        steps = int(ft.get("steps", 0))
        warm = int((ft.get("config") or {}).get("warmup_steps", 0))
        if steps < warm:
            out.append(
                f"the fine-tune ran {steps} steps, fewer than its {warm} warm-up steps, so its "
                "learning rate never reached the set value and the model barely moved "
                "(Assumption 1 may not hold). Use a larger D_sub or fewer warm-up steps "
                "(`--warmup-steps`)."
            )
    return out


def diagnose(
    scores: ScoreResult | str | os.PathLike[str],
    *,
    labels: Mapping[str, str] | str | os.PathLike[str] | None = None,
    label_regex: str | None = None,
    headers: Mapping[str, str] | None = None,
    coresets: Mapping[str, Sequence[str]] | Sequence[str | os.PathLike[str]] = (),
    finetune: Mapping[str, Any] | str | os.PathLike[str] | None = None,
    random_draws: int = 50,
    seed: int = 0,
) -> Diagnosis:
    """Diagnose a score file and, optionally, coresets chosen from it.

    Args:
        scores: A :class:`~biocoreset.store.result.ScoreResult` or the path of a score file.
        labels: A label per id: a mapping or an ``id<TAB>label`` file.
        label_regex: Or a pattern whose first group (or whole match) in each header is the label.
        headers: Full header line per id for ``label_regex`` (default: the ids themselves).
        coresets: Coreset folders / id files (named by their path), or a mapping name → ids.
        finetune: The fine-tune record (``finetune.json``, its folder, or its content); by default
            ``finetune/finetune.json`` beside a score file of a run folder, when present.
        random_draws: Random sets per coreset for the baseline.
        seed: Seed of the random baseline.

    Raises:
        InputError: An unreadable or malformed score file (metadata, a null or repeated id, a NaN
            length: :mod:`biocoreset.store.checks`), NaN or infinite scores, or a coreset with ids
            missing from the scores (named).
    """
    path = None
    if not isinstance(scores, ScoreResult):
        path = Path(scores)
        scores = ScoreResult.load(path)
    if len(scores) == 0:
        raise InputError("the score file is empty: there is nothing to diagnose.")
    named_as = f"the score file {str(path)!r}" if path else "the ScoreResult"
    check_ids(scores.ids, where=named_as)  # the checks select makes (biocoreset.store.checks)
    check_finite_scores(scores.scores, scores.ids, where=named_as)
    meta = dict(scores.metadata)
    influence = -scores.scores if meta.get("negated") else scores.scores.copy()
    lengths = scores.length.astype(np.int64)
    control = length_control(influence, lengths)
    table = read_labels(labels) if isinstance(labels, (str, os.PathLike)) else labels
    label_of = label_array(scores.ids, table, label_regex, headers)
    summary: dict[str, Any] = {
        "scores": str(path) if path else None,
        "num_sequences": len(scores),
        "setup": {
            k: meta.get(k)
            for k in (
                "scorer",
                "curvature",
                "damping",
                "adapter",
                "subset_size",
                "fit_on",
                "mask_draws",
                "mask_reduce",
                "num_scored_parameters",
                "fisher_zero_entries",
                "negated",
            )
            if k in meta
        },
        "length": {
            "spearman": control.spearman_length,
            "r2_log_fit": control.r2_length,
            "spearman_after_length_control": control.spearman_length_after,
            "median": float(np.median(lengths)),
        },
        "loss": {"spearman": spearman(influence, scores.loss)},
        "stability": meta.get("stability"),
        "coresets": {},
    }
    named: dict[str, Sequence[str]] = (
        dict(coresets)
        if isinstance(coresets, Mapping)
        else {str(p): read_id_file(p) for p in coresets}
    )
    where = {rid: i for i, rid in enumerate(scores.ids)}
    chosen: dict[str, np.ndarray] = {}
    for name, ids in named.items():
        missing = [i for i in ids if i not in where]
        if missing:
            raise InputError(
                f"coreset {name!r}: {len(missing)} id(s) are not in the scores, e.g. {missing[:3]!r}; "
                "was it selected from this score file?"
            )
        idx = np.array(sorted(where[i] for i in ids), dtype=np.int64)
        chosen[name] = idx
        summary["coresets"][name] = {
            "coreset": composition(idx, label_of, lengths),
            "random": random_baseline(
                len(scores), idx.size, label_of, lengths, draws=random_draws, seed=seed
            ),
        }
    summary["labels"] = (
        None
        if label_of is None
        else {
            "distinct": len(set(label_of.tolist())),
            "source": "table" if table else label_regex,
        }
    )
    ft = _finetune_record(path, finetune)
    summary["finetune"] = (
        {k: ft.get(k) for k in ("enabled", "steps", "subset_size")}
        | {"warmup_steps": (ft.get("config") or {}).get("warmup_steps")}
        if ft
        else None
    )
    warnings = _warnings(meta, summary, ft)
    summary["warnings"] = warnings
    return Diagnosis(
        summary=summary,
        warnings=warnings,
        influence=influence,
        lengths=lengths,
        loss=scores.loss,
        control=control,
        coresets=chosen,
    )


def _fmt(x: Any, digits: int = 3) -> str:
    if isinstance(x, float):
        return f"{x:.{digits}g}" if math.isfinite(x) else "n/a"
    return str(x)


def _markdown(d: Diagnosis) -> str:
    s = d.summary
    lines = ["# biocoreset diagnosis", ""]
    if s["scores"]:
        lines += [f"Scores: `{s['scores']}` ({s['num_sequences']:,} sequences).", ""]
    else:
        lines += [f"{s['num_sequences']:,} sequences.", ""]
    if d.warnings:
        lines += ["## Warnings", ""] + [f"- {w}" for w in d.warnings] + [""]
    ln = s["length"]
    lines += [
        "## Score and length",
        "",
        f"Spearman ρ(score, length) = {_fmt(ln['spearman'])}; a length fit explains "
        f"R² = {_fmt(ln['r2_log_fit'])} of the log score; after length control ρ = "
        f"{_fmt(ln['spearman_after_length_control'])}.",
        "",
        "![score against length](length.png)",
        "",
        "## Score and loss",
        "",
        f"Spearman ρ(score, loss) = {_fmt(s['loss']['spearman'])}.",
        "",
        "![score against loss](loss.png)",
        "",
        "## Stability across mask draws",
        "",
    ]
    st = s.get("stability")
    if st:
        lines += [
            "| | split-half ρ | projected to K (estimate of two runs' ρ; ran up to 0.1 high) "
            "| one draw | draws for ρ ≥ "
            f"{st['target']} |",
            "|---|---|---|---|---|",
            f"| scores (K = {st['draws']}) | {_fmt(st['split_half'])} | {_fmt(st['projected'])} | "
            f"{_fmt(st['single_draw'])} | {_fmt(st['draws_for_target'])} |",
        ]
        if "split_half_length_regressed" in st:
            lines.append(
                f"| length regressed out | {_fmt(st['split_half_length_regressed'])} | "
                f"{_fmt(st['projected_length_regressed'])} | "
                f"{_fmt(st['single_draw_length_regressed'])} | "
                f"{_fmt(st['draws_for_target_length_regressed'])} |"
            )
        lines += ["", "![stability](stability.png)", ""]
    else:
        lines += ["Not measured: score with `--mask-draws K` (K ≥ 2) to measure it.", ""]
    if s["coresets"]:
        labelled = any("coverage" in r["coreset"] for r in s["coresets"].values())
        head = "| coreset | size | median length (random) |"
        rule = "|---|---|---|"
        if labelled:
            head += " labels covered (random) | entropy (random) | largest share (random) |"
            rule += "---|---|---|"
        lines += ["## Coresets against random sets of the same size", "", head, rule]
        for name, row in s["coresets"].items():
            c, r = row["coreset"], row["random"]

            def both(key: str, c: dict = c, r: dict = r) -> str:
                return f"{_fmt(c[key])} ({_fmt(r[key]['mean'])} ± {_fmt(r[key]['sd'], 2)})"

            line = f"| `{name}` | {c['size']:,} | {both('median_length')} |"
            if labelled:
                line += f" {both('covered')} of {c['labels']} | {both('entropy')} | {both('largest_share')} |"
            lines.append(line)
        lines += ["", "![coresets](coresets.png)", ""]
    return "\n".join(lines)

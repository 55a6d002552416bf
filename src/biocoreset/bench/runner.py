"""Run tasks over checkpoints and seeds; write tables laid out like the paper's Tables 1–3.

:func:`run_bench` returns a :class:`BenchTable`: one row per (checkpoint, task, seed, metric).
:meth:`BenchTable.to_markdown` groups tasks by ``group`` (one table each: RNA function, RNA structure
and interaction, protein), rows are checkpoints (``Methods``, ``Data Size``), columns are
``<task title> <metric label>``, cells are ``mean ± sd`` over seeds (sample standard deviation,
``ddof=1``; no ``±`` with one seed). Percent metrics are multiplied by 100. The best value of each
column is **bold** and the second best underlined, as in the paper.

Example:
    >>> table = BenchTable([])
    >>> table.to_markdown()
    ''
"""

from __future__ import annotations

import csv
import io
import math
import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from biocoreset.bench.backbone import Backbone
from biocoreset.bench.protocol import BenchmarkTask, MetricSpec
from biocoreset.errors import ConfigError
from biocoreset.runtime.progress import progress_enabled
from biocoreset.store.atomic import atomic_path

__all__ = ["BenchRow", "BenchTable", "build_tasks", "run_bench"]

GROUP_TITLES = {
    "rna-function": "RNA function and engineering prediction (cf. paper Table 1)",
    "rna-structure": "RNA structure and interaction prediction (cf. paper Table 2)",
    "protein": "Protein tasks (cf. paper Table 3)",
}


@attrs.frozen(kw_only=True)
class BenchRow:
    """One measured value.

    Attributes:
        checkpoint: Backbone name.
        data_size: Its pretraining data size label.
        task: Task name.
        title: Task title.
        group: Task group.
        metric: Metric key.
        seed: Seed of the run.
        value: The value (raw, not percent).
        seconds: Wall time of the whole (checkpoint, task, seed) run.
    """

    checkpoint: str
    data_size: str
    task: str
    title: str
    group: str
    metric: str
    seed: int
    value: float
    seconds: float = 0.0


class BenchTable:
    """Results of :func:`run_bench` with Markdown and CSV writers.

    Args:
        rows: The measured values.
        specs: ``{task name: metric specs}`` giving labels, percent and direction.
    """

    def __init__(
        self, rows: Iterable[BenchRow], specs: Mapping[str, Sequence[MetricSpec]] | None = None
    ) -> None:
        self.rows = list(rows)
        self.specs = dict(specs or {})

    def __len__(self) -> int:
        return len(self.rows)

    def summary(self) -> list[dict[str, Any]]:
        """``mean``, ``sd`` and ``n`` per (checkpoint, task, metric), in first-seen order."""
        groups: dict[tuple[str, str, str], list[BenchRow]] = {}
        for r in self.rows:
            groups.setdefault((r.checkpoint, r.task, r.metric), []).append(r)
        out = []
        for (ck, task, metric), rows in groups.items():
            vals = np.asarray([r.value for r in rows], dtype=np.float64)
            finite = vals[~np.isnan(vals)]
            mean = float(finite.mean()) if finite.size else float("nan")
            sd = float(finite.std(ddof=1)) if finite.size > 1 else float("nan")
            out.append(
                {
                    "checkpoint": ck,
                    "data_size": rows[0].data_size,
                    "task": task,
                    "title": rows[0].title,
                    "group": rows[0].group,
                    "metric": metric,
                    "mean": mean,
                    "sd": sd,
                    "n": int(finite.size),
                    "seeds": " ".join(str(r.seed) for r in rows),
                }
            )
        return out

    def to_csv(self) -> str:
        """Every raw value as CSV (``checkpoint, data_size, task, group, metric, seed, value, seconds``)."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(
            ["checkpoint", "data_size", "task", "group", "metric", "seed", "value", "seconds"]
        )
        for r in self.rows:
            w.writerow(
                [
                    r.checkpoint,
                    r.data_size,
                    r.task,
                    r.group,
                    r.metric,
                    r.seed,
                    repr(r.value),
                    f"{r.seconds:.2f}",
                ]
            )
        return buf.getvalue()

    def summary_csv(self) -> str:
        """The :meth:`summary` as CSV."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        cols = ["checkpoint", "data_size", "task", "group", "metric", "mean", "sd", "n", "seeds"]
        w.writerow(cols)
        for s in self.summary():
            w.writerow([repr(s[c]) if isinstance(s[c], float) else s[c] for c in cols])
        return buf.getvalue()

    def _spec(self, task: str, metric: str) -> MetricSpec:
        for spec in self.specs.get(task, ()):
            if spec.key == metric:
                return spec
        return MetricSpec(metric, metric, percent=False)

    def to_markdown(self, *, decimals: int = 2) -> str:
        """Markdown tables, one per task group (see the module docstring)."""
        summary = self.summary()
        if not summary:
            return ""
        checkpoints: list[tuple[str, str]] = []
        for s in summary:
            if (s["checkpoint"], s["data_size"]) not in checkpoints:
                checkpoints.append((s["checkpoint"], s["data_size"]))
        cells = {(s["checkpoint"], s["task"], s["metric"]): s for s in summary}
        groups: dict[str, list[tuple[str, str, str]]] = {}
        for s in summary:
            col = (s["task"], s["title"], s["metric"])
            cols = groups.setdefault(s["group"], [])
            if col not in cols:
                cols.append(col)
        parts = []
        for group, cols in groups.items():
            header = ["Methods", "Data Size"] + [
                f"{title} {self._spec(task, m).label}" for task, title, m in cols
            ]
            lines = [
                f"### {GROUP_TITLES.get(group, group)}",
                "",
                "| " + " | ".join(header) + " |",
                "|" + "---|" * len(header),
            ]
            for ck, size in checkpoints:
                row = [ck, size]
                for col in cols:
                    task, _, metric = col
                    row.append(
                        self._cell(
                            cells.get((ck, task, metric)), self._spec(task, metric), decimals
                        )
                    )
                lines.append("| " + " | ".join(row) + " |")
            parts.append("\n".join(lines))
        seeds = sorted({r.seed for r in self.rows})
        note = (
            f"Mean ± sample sd over seeds {', '.join(map(str, seeds))}. **Bold**: best; "
            "<u>underline</u>: second best. ↓: lower is better."
        )
        return "\n\n".join(parts) + "\n\n" + note + "\n"

    def _cell(self, s: Mapping[str, Any] | None, spec: MetricSpec, decimals: int) -> str:
        if s is None or math.isnan(s["mean"]):
            return "–"
        scale = 100.0 if spec.percent else 1.0
        text = f"{s['mean'] * scale:.{decimals if spec.percent else decimals + 2}f}"
        if not math.isnan(s["sd"]):
            text += f" ± {s['sd'] * scale:.{decimals if spec.percent else decimals + 2}f}"
        rank = self._direction_rank(s, spec)
        if rank == 0:
            return f"**{text}**"
        if rank == 1:
            return f"<u>{text}</u>"
        return text

    def _direction_rank(self, s: Mapping[str, Any], spec: MetricSpec) -> int | None:
        means = sorted(
            {
                x["mean"]
                for x in self.summary_cache()
                if x["task"] == s["task"]
                and x["metric"] == s["metric"]
                and not math.isnan(x["mean"])
            },
            reverse=spec.higher_is_better,
        )
        if len(means) < 2:
            return None
        return means.index(s["mean"]) if s["mean"] in means[:2] else None

    def summary_cache(self) -> list[dict[str, Any]]:
        """:meth:`summary`, computed once per table state."""
        key = len(self.rows)
        cached = getattr(self, "_summary_cache", None)
        if cached is None or cached[0] != key:
            self._summary_cache = (key, self.summary())
        return self._summary_cache[1]

    def write(self, folder: str | os.PathLike[str], *, force: bool = False) -> dict[str, Path]:
        """Write ``results.md``, ``results.csv`` (raw) and ``summary.csv`` into ``folder``."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        paths = {
            "markdown": out / "results.md",
            "csv": out / "results.csv",
            "summary": out / "summary.csv",
        }
        for key, text in (
            ("markdown", self.to_markdown()),
            ("csv", self.to_csv()),
            ("summary", self.summary_csv()),
        ):
            with atomic_path(paths[key], force=force) as tmp:
                tmp.write_text(text, encoding="utf-8")
        return paths


def build_tasks(tasks: Iterable[Any]) -> list[BenchmarkTask]:
    """The benchmark tasks of a list of tasks and task tables (as in a bench config's ``tasks``).

    Args:
        tasks: :class:`~biocoreset.bench.protocol.BenchmarkTask` objects, or tables with a
            ``name`` key (a registered task), an optional ``title`` and the task's options.

    Returns:
        The tasks, built through the registry where a table was given.

    Raises:
        ConfigError: A table without ``name``, an unknown task, or an object that is not a task.
    """
    from biocoreset.plugins import get_registry

    out: list[BenchmarkTask] = []
    for t in tasks:
        if isinstance(t, Mapping):
            spec = dict(t)
            name = spec.pop("name", None)
            title = spec.pop("title", None)
            if not name:
                raise ConfigError(f"a task given as a table needs a 'name' key: {t!r}.")
            t = get_registry().get("task", name).factory(**spec)
            if title is not None:
                t.title = str(title)
        if not isinstance(t, BenchmarkTask):
            raise ConfigError(
                f"{t!r} is not a BenchmarkTask (needs name, title, group, metrics, run(), test_sequences())."
            )
        out.append(t)
    return out


def _task_keys(tasks: Sequence[BenchmarkTask]) -> list[str]:
    """Row keys: the task name, or ``name#k`` when the same task runs on several data sets."""
    names = [t.name for t in tasks]
    seen: dict[str, int] = {}
    keys = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        keys.append(n if names.count(n) == 1 else f"{n}#{seen[n]}")
    return keys


def _as_backbones(checkpoints: Any, device: str | None) -> list[Backbone]:
    if isinstance(checkpoints, Mapping):
        checkpoints = [
            Backbone.from_path(str(k), v) if not isinstance(v, Backbone) else v
            for k, v in checkpoints.items()
        ]
    out = []
    for c in checkpoints:
        if not isinstance(c, Backbone):
            raise ConfigError(
                f"checkpoints must be Backbone objects or a {{name: path}} mapping, got {c!r}."
            )
        if device is not None:
            c.device = device
        out.append(c)
    names = [c.name for c in out]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ConfigError(f"checkpoint names must be unique; repeated: {sorted(dup)}.")
    return out


def run_bench(
    tasks: Iterable[Any],
    checkpoints: Any,
    *,
    seeds: Sequence[int] = (0, 1, 2),
    output_dir: str | os.PathLike[str] | None = None,
    force: bool = False,
    device: str | None = None,
    progress: bool | str | None = None,
) -> BenchTable:
    """Run every task on every checkpoint with every seed.

    Args:
        tasks: :class:`~biocoreset.bench.protocol.BenchmarkTask` objects, or ``{"name": ..., **options}``
            tables built through the task registry.
        checkpoints: :class:`~biocoreset.bench.backbone.Backbone` objects or ``{row name: path}``.
        seeds: Seeds (paper: 0, 1, 2).
        output_dir: If given, write ``results.md``, ``results.csv`` and ``summary.csv`` there.
        force: Overwrite existing result files.
        device: Override every backbone's device.
        progress: Print one line per finished run to stderr (``None``: unless the process-wide
            progress mode is ``none``; see :mod:`biocoreset.runtime.progress`).

    Returns:
        The :class:`BenchTable`.
    """
    task_list = build_tasks(tasks)
    backbones = _as_backbones(checkpoints, device)
    if not task_list or not backbones:
        raise ConfigError("run_bench needs at least one task and one checkpoint.")
    if not seeds:
        raise ConfigError("run_bench needs at least one seed (the paper uses 0, 1, 2).")
    if output_dir is not None and not force:
        for name in ("results.md", "results.csv", "summary.csv"):
            if (Path(output_dir) / name).exists():
                from biocoreset.errors import OutputExistsError

                raise OutputExistsError(
                    f"{str(Path(output_dir) / name)!r} exists; pass force=True (--force)."
                )
    show = progress_enabled(progress)
    rows: list[BenchRow] = []
    total, done = len(task_list) * len(backbones) * len(seeds), 0
    keys = _task_keys(task_list)
    for bb in backbones:
        for key, task in zip(keys, task_list, strict=True):
            for seed in seeds:
                t0 = time.time()
                values = task.run(bb, seed=int(seed))
                seconds = time.time() - t0
                expected = {m.key for m in task.metrics}
                missing = expected - set(values)
                if missing:
                    raise ConfigError(
                        f"task {task.name!r} returned no value for metric(s) {sorted(missing)}."
                    )
                for spec in task.metrics:
                    rows.append(
                        BenchRow(
                            checkpoint=bb.name,
                            data_size=bb.data_size,
                            task=key,
                            title=task.title,
                            group=task.group,
                            metric=spec.key,
                            seed=int(seed),
                            value=float(values[spec.key]),
                            seconds=seconds,
                        )
                    )
                done += 1
                if show:
                    shown = ", ".join(f"{k}={values[k]:.4g}" for k in (m.key for m in task.metrics))
                    print(
                        f"[{done}/{total}] {bb.name} {key} seed {seed}: {shown} ({seconds:.1f} s)",
                        file=sys.stderr,
                    )
        bb.release()
    table = BenchTable(rows, {k: tuple(t.metrics) for k, t in zip(keys, task_list, strict=True)})
    if output_dir is not None:
        table.write(output_dir, force=True)
    return table

"""The ``biocoreset run`` file: one TOML file for every step (see ``docs/pipeline.md``).

Its tables are attrs classes — :class:`DataConfig`, :class:`ModelConfig`, the API's
:class:`~biocoreset.config.FinetuneConfig` and :class:`~biocoreset.config.ScoreConfig`, and
:class:`RunSelectConfig` — and the accepted keys and types (:data:`SCHEMA`) are derived from their
fields (:mod:`biocoreset.config.toml`), so the file format follows the configs. ``subset``,
``subset_seed``, ``invalid`` and ``replacement`` are set once, in ``[data]``, for fine-tuning and
scoring. A preset (``preset = "paper-compat"``) gives the starting values the tables override;
selector options are the preset's for that selector plus a per-method table
(``[select.options.cci]``), checked by the selector when the run starts.

Example:
    >>> SCHEMA["score"]["batch_size"].text, SCHEMA["select"]["options"].text
    ('an integer', 'a table of tables')
    >>> run_config_from_dict({"output": "r", "data": {"path": "c.fa"}, "select": {"beta": 0.1}})
    Traceback (most recent call last):
    ...
    biocoreset.errors.ConfigError: 'select.beta' is no longer a key: selector options go in a table per method: [select.options.cci] beta = ...
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from biocoreset.config import FinetuneConfig, ScoreConfig, SubsetSpec
from biocoreset.config.core import (
    invalid_field,
    replacement_field,
    subset_field,
    subset_seed_field,
)
from biocoreset.config.fields import integer_ge, to_str_or_none
from biocoreset.config.presets import get_preset
from biocoreset.config.toml import build, check_table, read_toml, schema_of
from biocoreset.errors import ConfigError

__all__ = [
    "MOVED",
    "SCHEMA",
    "DataConfig",
    "ModelConfig",
    "RunConfig",
    "RunSelectConfig",
    "load_run_config",
    "run_config_from_dict",
]


@attrs.frozen(kw_only=True)
class DataConfig:
    """The ``[data]`` table of a run: the corpus and how to read and validate it.

    Attributes:
        path: Sequence file (FASTA, FASTQ, CSV, TSV, OAS unit; plain or gzip; or Parquet).
        format: ``"auto"``, ``"fasta"``, ``"fastq"``, ``"csv"``, ``"tsv"``, ``"oas"`` or
            ``"parquet"``.
        id_column: Id column of a table (``None``: ``id``; OAS: ``sequence_id`` where present,
            else row ids); ``"@row"`` ids rows ``<file stem>:<row number>``.
        sequence_column: Sequence column of a table (``None``: ``sequence``; OAS:
            ``sequence_alignment_aa``).
        invalid: Invalid-letter policy for every step.
        replacement: Replacement letter for ``invalid="replace"``.
        subset: ``D_sub`` (fine-tuning and the Fisher): size, fraction, or ``None`` (1%, >= 256).
        subset_seed: Seed of the ``D_sub`` draw.
    """

    path: str
    format: str = "auto"
    id_column: str | None = attrs.field(default=None, converter=to_str_or_none)
    sequence_column: str | None = attrs.field(default=None, converter=to_str_or_none)
    invalid: str = invalid_field()
    replacement: str | None = replacement_field()
    subset: SubsetSpec = subset_field()  # noqa: RUF009 - a new attrs field, not a default
    subset_seed: int | None = subset_seed_field()


@attrs.frozen(kw_only=True)
class ModelConfig:
    """The ``[model]`` table: which adapter and weights.

    Attributes:
        adapter: Adapter name (``"hf"``, ``"rna-fm"``, ``"esmc"``, plugins).
        path: Model path (``hf``: a local transformers folder; others: a checkpoint file).
        weights: Optional state dict (``.pt``) loaded over the model (e.g. a fine-tuned model).
        device: ``"auto"`` (``cuda:<local rank>`` when available, else CPU), ``"cpu"``, ``"cuda"``...
        options: Adapter options (``long_policy``, ``loss_mode``...), over the preset's.
    """

    adapter: str = "hf"
    path: str | None = None
    weights: str | None = None
    device: str = "auto"
    options: dict[str, Any] = attrs.field(factory=dict)


def _check_options(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    for method, table in value.items():
        if not isinstance(table, Mapping):
            raise ConfigError(
                f"select.options.{method} must be a table of that selector's options "
                f"([select.options.{method}]), got {table!r}."
            )
        if method not in instance.methods:
            raise ConfigError(
                f"[select.options.{method}] is given but {method!r} is not in select.methods "
                f"({', '.join(instance.methods)}); add it there or remove the table."
            )


def _check_debias(instance: Any, attribute: Any, value: str | None) -> None:
    from biocoreset.selection import DEBIAS_METHODS
    from biocoreset.selectors.debias import check_debias

    check_debias(value)
    other = [m for m in instance.methods if m not in DEBIAS_METHODS]
    if value is not None and other:
        raise ConfigError(
            f"[select] debias = {value!r} applies to {', '.join(DEBIAS_METHODS)}, not to "
            f"{', '.join(other)}; drop debias or those methods."
        )


@attrs.frozen(kw_only=True)
class RunSelectConfig:
    """The ``[select]`` table: one or more selections from the same scores.

    Attributes:
        methods: Selector names; each writes ``select-<method>/`` in the run folder.
        budget: Count or fraction.
        seed: Seed of random choices.
        options: Per selector, options over the preset's (``[select.options.cci]``
            ``beta = 0.05``); the selector checks them.
        debias: ``"length"``: select on the length-conditional score (``topk`` and ``cci`` only;
            see :func:`biocoreset.select`); default: the paper's selection.
    """

    methods: tuple[str, ...] = attrs.field(default=("cci",), converter=tuple)
    budget: int | float = 0.1
    seed: int = attrs.field(default=0, validator=integer_ge())
    options: dict[str, dict[str, Any]] = attrs.field(factory=dict, validator=_check_options)
    debias: str | None = attrs.field(
        default=None, converter=to_str_or_none, validator=_check_debias
    )

    def options_for(self, method: str) -> dict[str, Any]:
        """This table's options for ``method`` (a copy; empty when none are given)."""
        return dict(self.options.get(method, {}))


@attrs.frozen(kw_only=True)
class RunConfig:
    """Everything ``biocoreset run`` does, from one TOML file (see :func:`load_run_config`).

    Attributes:
        output: Run folder.
        preset: Preset the tables override (``"default"`` or ``"paper-compat"``).
        data: The corpus.
        model: The model.
        finetune: Fine-tuning (``enabled = false``: "w/o ft").
        score: Scoring.
        select: Selection(s).
    """

    output: str
    preset: str = "default"
    data: DataConfig
    model: ModelConfig
    finetune: FinetuneConfig
    score: ScoreConfig
    select: RunSelectConfig


_SHARED = ("subset", "subset_seed", "invalid", "replacement")  # set once, in [data]

SCHEMA: dict[str, Any] = {
    "output": schema_of(RunConfig)["output"],
    "preset": schema_of(RunConfig)["preset"],
    "data": schema_of(DataConfig),
    "model": schema_of(ModelConfig),
    "finetune": schema_of(FinetuneConfig, exclude=(*_SHARED, "progress")),
    "score": schema_of(ScoreConfig, exclude=(*_SHARED, "progress")),
    "select": schema_of(RunSelectConfig),
}
"""Keys ``biocoreset run`` accepts, per table, with the type each must have (derived from the
fields of the table classes)."""

MOVED: dict[str, str] = {
    "score.damping_relative": "the damping is one key: damping = '0.1*mean' (relative) or "
    "damping = 1e-3 (absolute).",
    "score.loss_mode": "the loss is the adapter's: put loss_mode in [model] options "
    '(options = { loss_mode = "paper-compat" }).',
    **{
        f"{table}.{key}": f"set it once, in [data] ({key} = ...)."
        for table in ("score", "finetune")
        for key in _SHARED
    },
    **{
        f"select.{key}": "selector options go in a table per method: [select.options.cci] "
        f"{key} = ..."
        for key in ("beta", "strata")
    },
}
"""Keys of earlier versions, with where they went (named in the error)."""


def run_config_from_dict(
    table: Mapping[str, Any], *, base_dir: str | os.PathLike[str] = ".", source: str = ""
) -> RunConfig:
    """Build a :class:`RunConfig` from a parsed TOML table (strictly checked).

    Relative paths in ``output``, ``data.path``, ``model.path`` and ``model.weights`` are taken
    relative to ``base_dir`` (the config file's folder) and made absolute.

    Raises:
        ConfigError: Unknown key, wrong type, missing required key, or invalid value (named).
    """
    check_table(table, SCHEMA, source=source, moved=MOVED)
    at = f" in {source}" if source else ""
    if "output" not in table:
        raise ConfigError(f"missing key 'output'{at}: the run folder to write.")
    data = dict(table.get("data", {}))
    if "path" not in data:
        raise ConfigError(f"missing key 'data.path'{at}: the sequence file to score.")
    base = Path(base_dir)

    def rel(p: str | None) -> str | None:
        return None if p is None else str((base / p).resolve()) if not os.path.isabs(p) else p

    preset = get_preset(table.get("preset", "default"))
    data["path"] = rel(data["path"])
    data_cfg = build(DataConfig, None, data, "data")
    model = dict(table.get("model", {}))
    model["path"] = rel(model.get("path"))
    model["weights"] = rel(model.get("weights"))
    model["options"] = {**preset.adapter_options, **model.get("options", {})}
    model_cfg = build(ModelConfig, None, model, "model")
    shared: dict[str, Any] = {"invalid": data_cfg.invalid, "replacement": data_cfg.replacement}
    if data_cfg.subset is not None:
        shared["subset"] = data_cfg.subset
    if data_cfg.subset_seed is not None:
        shared["subset_seed"] = data_cfg.subset_seed
    ft = {**shared, **table.get("finetune", {})}
    ft_cfg = build(FinetuneConfig, preset.finetune, ft, "finetune")
    sc = {**shared, **table.get("score", {})}
    if "parameters" in sc:
        sc["parameters"] = tuple(sc["parameters"])
    sc_cfg = build(ScoreConfig, preset.score, sc, "score")
    sel = dict(table.get("select", {}))
    sel.setdefault("seed", preset.select.seed)
    sel.setdefault("methods", [preset.select.method])
    sel_cfg = build(RunSelectConfig, None, sel, "select")
    return RunConfig(
        output=rel(table["output"]),  # type: ignore[arg-type]
        preset=preset.name,
        data=data_cfg,
        model=model_cfg,
        finetune=ft_cfg,
        score=sc_cfg,
        select=sel_cfg,
    )


def load_run_config(path: str | os.PathLike[str]) -> RunConfig:
    """Read a ``biocoreset run`` TOML file strictly: unknown keys and wrong types are errors naming
    the key. Uses :mod:`tomllib` (Python 3.11+) or ``tomli`` (3.10).

    Example:
        >>> import os, tempfile
        >>> folder = tempfile.mkdtemp()
        >>> path = os.path.join(folder, "run.toml")
        >>> _ = Path(path).write_text('output = "out"\\n[data]\\npath = "c.fa"\\n[score]\\ndampng = 1.0\\n')
        >>> load_run_config(path)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        biocoreset.errors.ConfigError: unknown key 'score.dampng' in ... Did you mean 'damping'? ...
    """
    p = Path(path)
    return run_config_from_dict(read_toml(p), base_dir=p.parent, source=str(p))

"""Frozen configuration objects (``attrs.frozen(kw_only=True)``; use :func:`attrs.evolve` for variants),
and the strict TOML loader of ``biocoreset run``.

Example:
    >>> import attrs
    >>> cfg = attrs.evolve(ScoreConfig(), damping=1e-3)
    >>> cfg.damping, cfg.curvature
    (0.001, 'diagonal')
"""

from __future__ import annotations

import numbers
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from biocoreset.data.masking import MaskingConfig
from biocoreset.data.validation import VALIDATION_POLICIES
from biocoreset.errors import ConfigError, did_you_mean
from biocoreset.validators import as_masking as _masking
from biocoreset.validators import float_at_least as _nonneg_float
from biocoreset.validators import int_at_least, optional
from biocoreset.validators import int_at_least as _nonneg_int
from biocoreset.validators import one_of as _one_of
from biocoreset.validators import optional_float as _opt_float

__all__ = [
    "DataConfig",
    "FinetuneConfig",
    "MaskingConfig",
    "ModelConfig",
    "RunConfig",
    "RunSelectConfig",
    "ScoreConfig",
    "SelectConfig",
    "SubsetSpec",
    "load_run_config",
]

SubsetSpec = int | float | Sequence[str] | None
_Validator = Callable[[Any, Any, Any], None]

FIT_ON = ("subset", "all")
LOSS_MODES = ("masked", "paper-compat")
SCHEDULES = ("linear", "constant")


# The validators are shared with the other configuration classes (biocoreset.validators).


def _opt_int(name: str, minimum: int = 0) -> _Validator:
    return optional(int_at_least(name, minimum))


def _check_subset(instance: object, attribute: attrs.Attribute, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool):
        raise ConfigError(f"subset must be a size, a fraction or a list of ids, got {value!r}.")
    if isinstance(value, numbers.Integral):
        if value < 1:
            raise ConfigError(f"subset size must be >= 1, got {value!r}.")
        return
    if isinstance(value, numbers.Real):
        if not 0.0 < float(value) <= 1.0:
            raise ConfigError(
                f"subset fraction must be in (0, 1], got {value!r}; pass an int for a size."
            )
        return
    if isinstance(value, str):
        raise ConfigError("subset must be a list of ids, not a single string; wrap it in a list.")


def _patterns(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def _opt_str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _check_shard_size(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is None:
        return
    _nonneg_int("shard_size", 1)(instance, attribute, value)
    if value % instance.batch_size:
        raise ConfigError(
            f"shard_size ({value}) must be a multiple of batch_size ({instance.batch_size}) so shards "
            f"hold whole batches; e.g. {instance.batch_size * max(1, round(value / instance.batch_size))}."
        )


@attrs.frozen(kw_only=True)
class ScoreConfig:
    """Options of :func:`biocoreset.score`.

    Attributes:
        curvature: Curvature name (``"diagonal"``, ``"identity"``, ``"kfac"``, ``"ekfac"``, plugins).
        scorer: Scorer name (``"self-influence"``, ``"loss"``, ``"grad-norm"``, plugins).
        subset: ``D_sub``: a size (int), a fraction of the corpus (float) or explicit ids. Default
            (``None``): 1% of the corpus, at least 256 sequences (all if fewer).
        damping: Absolute λ; when ``None``, ``damping_relative`` × mean curvature.
        damping_relative: Relative λ (default 0.1).
        batch_size: Sequences per batch.
        seed: Seed of ``D_sub`` sampling and masking.
        parameters: Glob patterns of scored parameter names or groups (``None``: all trainable).
        engine: Per-sample gradient engine: ``"auto"``, ``"hooks"`` or ``"loop"``.
        masking: Masking configuration.
        curvature_options: Extra options for the curvature factory.
        progress: Show progress bars (``None``: when stderr is a terminal).
        subset_seed: Seed of the ``D_sub`` draw (``None``: ``seed``). Give fine-tuning and scoring
            the same ``subset`` and ``subset_seed`` to use one ``D_sub`` for both.
        fit_on: Rows the curvature is fitted on: ``"subset"`` (``D_sub``, the paper's method) or
            ``"all"`` (every scored sequence, as the released bio-coreset code does).
        negate: Store ``-I(z)`` instead of ``I(z)`` (the released code's convention).
        invalid: Policy for letters outside the adapter's alphabet: ``"error"``, ``"replace"`` or
            ``"skip"`` (see :mod:`biocoreset.data.validation`).
        replacement: Replacement letter for ``invalid="replace"`` (default ``N``/``X`` when the
            alphabet has it).
        loss_mode: ``"masked"`` or ``"paper-compat"``; passed to the adapter when ``score`` wraps a
            bare model, and checked against a given adapter's ``loss_mode``.
        shard_size: Rows per score shard when writing to a file (a multiple of ``batch_size``;
            ``None``: 256 batches).
    """

    curvature: str = "diagonal"
    scorer: str = "self-influence"
    subset: SubsetSpec = attrs.field(default=None, validator=_check_subset)
    damping: float | None = attrs.field(default=None, converter=_opt_float)
    damping_relative: float | None = attrs.field(default=None, converter=_opt_float)
    batch_size: int = attrs.field(default=16, validator=_nonneg_int("batch_size", 1))
    seed: int = attrs.field(default=0, validator=_nonneg_int("seed"))
    parameters: tuple[str, ...] | None = attrs.field(default=None, converter=_patterns)
    engine: str = "auto"
    masking: MaskingConfig = attrs.field(factory=MaskingConfig, converter=_masking)
    curvature_options: dict[str, Any] = attrs.field(factory=dict)
    progress: bool | None = None
    subset_seed: int | None = attrs.field(default=None, validator=_opt_int("subset_seed"))
    fit_on: str = attrs.field(default="subset", validator=_one_of("fit_on", FIT_ON))
    negate: bool = attrs.field(default=False, converter=bool)
    invalid: str = attrs.field(default="error", validator=_one_of("invalid", VALIDATION_POLICIES))
    replacement: str | None = attrs.field(default=None, converter=_opt_str)
    loss_mode: str = attrs.field(default="masked", validator=_one_of("loss_mode", LOSS_MODES))
    shard_size: int | None = attrs.field(default=None, validator=_check_shard_size)

    @property
    def rows_per_shard(self) -> int:
        """``shard_size``, or 256 batches when unset."""
        return self.shard_size if self.shard_size is not None else 256 * self.batch_size


@attrs.frozen(kw_only=True)
class FinetuneConfig:
    """Post-hoc fine-tuning on ``D_sub`` (paper A.5, Assumption 1); defaults are the paper's.

    Attributes:
        enabled: ``False`` is the paper's "w/o ft" variant (the model is scored as given).
        subset: ``D_sub`` as in :class:`ScoreConfig` (size, fraction or ids; ``None``: 1%, >= 256).
        subset_seed: Seed of the ``D_sub`` draw (``None``: ``seed``).
        epochs: Passes over ``D_sub`` (paper: 1).
        lr: AdamW learning rate (paper: 1e-5).
        weight_decay: AdamW weight decay (paper: 0.01).
        warmup_steps: Linear warm-up steps (paper: 50).
        schedule: After warm-up: ``"linear"`` decay to 0 at the last step (the usual "linear
            schedule with warm-up") or ``"constant"``.
        batch_size: Sequences per optimizer step (paper: 16), over all ranks together.
        seed: Seed of the shuffling and the masking (paper: 0).
        masking: Masking of the MLM objective (paper: 15%, BERT 80/10/10).
        max_steps: Stop after this many optimizer steps (``None``: all epochs).
        max_grad_norm: Clip the global gradient norm (``None``: no clipping, as in the paper).
        train_mode: Run the model in training mode (dropout on) while fine-tuning.
        diagnostic_samples: ``D_sub`` sequences used for the before/after diagnostic (loss and
            per-sample gradient norm); ``None``: all of ``D_sub``; 0: no diagnostic.
        invalid: Invalid-letter policy (as in :class:`ScoreConfig`).
        replacement: Replacement letter for ``invalid="replace"``.
        progress: Show progress bars (``None``: when stderr is a terminal).
    """

    enabled: bool = attrs.field(default=True, converter=bool)
    subset: SubsetSpec = attrs.field(default=None, validator=_check_subset)
    subset_seed: int | None = attrs.field(default=None, validator=_opt_int("subset_seed"))
    epochs: int = attrs.field(default=1, validator=_nonneg_int("epochs", 1))
    lr: float = attrs.field(default=1e-5, converter=float, validator=_nonneg_float("lr"))
    weight_decay: float = attrs.field(
        default=0.01, converter=float, validator=_nonneg_float("weight_decay")
    )
    warmup_steps: int = attrs.field(default=50, validator=_nonneg_int("warmup_steps"))
    schedule: str = attrs.field(default="linear", validator=_one_of("schedule", SCHEDULES))
    batch_size: int = attrs.field(default=16, validator=_nonneg_int("batch_size", 1))
    seed: int = attrs.field(default=0, validator=_nonneg_int("seed"))
    masking: MaskingConfig = attrs.field(factory=MaskingConfig, converter=_masking)
    max_steps: int | None = attrs.field(default=None, validator=_opt_int("max_steps", 1))
    max_grad_norm: float | None = attrs.field(
        default=None, converter=_opt_float, validator=_nonneg_float("max_grad_norm")
    )
    train_mode: bool = attrs.field(default=True, converter=bool)
    diagnostic_samples: int | None = attrs.field(
        default=512, validator=_opt_int("diagnostic_samples")
    )
    invalid: str = attrs.field(default="error", validator=_one_of("invalid", VALIDATION_POLICIES))
    replacement: str | None = attrs.field(default=None, converter=_opt_str)
    progress: bool | None = None


@attrs.frozen(kw_only=True)
class SelectConfig:
    """Options of :func:`biocoreset.select`.

    Attributes:
        method: Selector name (``"cci"``, ``"topk"``, ``"random"``, plugins).
        budget: Count (int) or fraction of the scored sequences (float in (0, 1]).
        seed: Seed of random choices.
        options: Selector options (e.g. ``beta``, ``strata`` for CCI).
    """

    method: str = "cci"
    budget: int | float = 0.1
    seed: int = attrs.field(default=0, validator=_nonneg_int("seed"))
    options: dict[str, Any] = attrs.field(factory=dict)


# -- biocoreset run: one TOML file for every step ----------------------------------------------


@attrs.frozen(kw_only=True)
class DataConfig:
    """The ``[data]`` table of a run: the corpus and how to read and validate it.

    Attributes:
        path: Sequence file (FASTA, FASTQ, CSV, TSV; plain or gzip).
        format: ``"auto"``, ``"fasta"``, ``"fastq"``, ``"csv"`` or ``"tsv"``.
        id_column: Id column of a table.
        sequence_column: Sequence column of a table.
        invalid: Invalid-letter policy for every step.
        replacement: Replacement letter for ``invalid="replace"``.
        subset: ``D_sub`` (fine-tuning and the Fisher): size, fraction, or ``None`` (1%, >= 256).
        subset_seed: Seed of the ``D_sub`` draw.
    """

    path: str
    format: str = "auto"
    id_column: str = "id"
    sequence_column: str = "sequence"
    invalid: str = attrs.field(
        default="error", validator=_one_of("data.invalid", VALIDATION_POLICIES)
    )
    replacement: str | None = attrs.field(default=None, converter=_opt_str)
    subset: SubsetSpec = attrs.field(default=None, validator=_check_subset)
    subset_seed: int | None = attrs.field(default=None, validator=_opt_int("data.subset_seed"))


@attrs.frozen(kw_only=True)
class ModelConfig:
    """The ``[model]`` table: which adapter and weights.

    Attributes:
        adapter: Adapter name (``"hf"``, ``"rna-fm"``, ``"esmc"``, plugins).
        path: Model path (``hf``: a local transformers folder; others: a checkpoint file).
        weights: Optional state dict (``.pt``) loaded over the model (e.g. a fine-tuned model).
        device: ``"auto"`` (``cuda:<local rank>`` when available, else CPU), ``"cpu"``, ``"cuda"``...
        options: Adapter options (``long_policy``, ``loss_mode``...).
    """

    adapter: str = "hf"
    path: str | None = None
    weights: str | None = None
    device: str = "auto"
    options: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class RunSelectConfig:
    """The ``[select]`` table: one or more selections from the same scores.

    Attributes:
        methods: Selector names; each writes ``select-<method>/`` in the run folder.
        budget: Count or fraction.
        seed: Seed of random choices.
        beta: CCI hard cutoff rate (``None``: the preset's).
        strata: CCI number of strata (``None``: the preset's).
        options: Further selector options.
    """

    methods: tuple[str, ...] = attrs.field(default=("cci",), converter=tuple)
    budget: int | float = 0.1
    seed: int = attrs.field(default=0, validator=_nonneg_int("select.seed"))
    beta: float | None = attrs.field(default=None, converter=_opt_float)
    strata: int | None = attrs.field(default=None, validator=_opt_int("select.strata", 1))
    options: dict[str, Any] = attrs.field(factory=dict)


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


# -- strict TOML -------------------------------------------------------------------------------

_INT, _FLOAT, _STR, _BOOL = "an integer", "a number", "a string", "true or false"
_LIST_STR, _TABLE, _SUBSET = (
    "a list of strings",
    "a table",
    "an integer, a fraction or a list of ids",
)

_MASKING_KEYS = {"probability": _FLOAT, "replacement": "a list of three numbers"}

SCHEMA: dict[str, Any] = {
    "output": _STR,
    "preset": _STR,
    "data": {
        "path": _STR,
        "format": _STR,
        "id_column": _STR,
        "sequence_column": _STR,
        "invalid": _STR,
        "replacement": _STR,
        "subset": _SUBSET,
        "subset_seed": _INT,
    },
    "model": {"adapter": _STR, "path": _STR, "weights": _STR, "device": _STR, "options": _TABLE},
    "finetune": {
        "enabled": _BOOL,
        "epochs": _INT,
        "lr": _FLOAT,
        "weight_decay": _FLOAT,
        "warmup_steps": _INT,
        "schedule": _STR,
        "batch_size": _INT,
        "seed": _INT,
        "max_steps": _INT,
        "max_grad_norm": _FLOAT,
        "train_mode": _BOOL,
        "diagnostic_samples": _INT,
        "masking": _MASKING_KEYS,
    },
    "score": {
        "curvature": _STR,
        "scorer": _STR,
        "damping": _FLOAT,
        "damping_relative": _FLOAT,
        "batch_size": _INT,
        "seed": _INT,
        "parameters": _LIST_STR,
        "engine": _STR,
        "fit_on": _STR,
        "negate": _BOOL,
        "shard_size": _INT,
        "curvature_options": _TABLE,
        "masking": _MASKING_KEYS,
    },
    "select": {
        "methods": _LIST_STR,
        "budget": "a count or a fraction",
        "seed": _INT,
        "beta": _FLOAT,
        "strata": _INT,
        "options": _TABLE,
    },
}
"""Keys ``biocoreset run`` accepts, per table, with the type each must have."""


def _type_ok(expected: str, value: Any) -> bool:
    if expected == _INT:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected == _FLOAT:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected == _STR:
        return isinstance(value, str)
    if expected == _BOOL:
        return isinstance(value, bool)
    if expected == _LIST_STR:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if expected == _TABLE:
        return isinstance(value, dict)
    if expected == _SUBSET:
        return (isinstance(value, (int, float)) and not isinstance(value, bool)) or (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        )
    if expected == "a count or a fraction":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected == "a list of three numbers":
        return (
            isinstance(value, list)
            and len(value) == 3
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        )
    raise AssertionError(expected)  # pragma: no cover


def _type_name(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def check_table(
    table: Mapping[str, Any], schema: Mapping[str, Any], where: str = "", source: str = ""
) -> None:
    """Reject unknown keys and wrong types, naming the key (``score.batch_size``).

    Raises:
        ConfigError: The first problem found.

    >>> check_table({"score": {"batch_size": "16"}}, SCHEMA)
    Traceback (most recent call last):
    ...
    biocoreset.errors.ConfigError: score.batch_size must be an integer, got '16' (a string).
    """
    at = f" in {source}" if source else ""
    for key, value in table.items():
        name = f"{where}{key}"
        if key not in schema:
            raise ConfigError(
                f"unknown key {name!r}{at}.{did_you_mean(key, schema)} Valid keys"
                f"{' of [' + where.rstrip('.') + ']' if where else ''}: {', '.join(sorted(schema))}."
            )
        expected = schema[key]
        if isinstance(expected, dict):
            if not isinstance(value, dict):
                raise ConfigError(
                    f"{name} must be a table ([{name}]), got {value!r} ({_type_name(value)}){at}."
                )
            check_table(value, expected, f"{name}.", source)
        elif not _type_ok(expected, value):
            raise ConfigError(
                f"{name} must be {expected}, got {value!r} ({_type_name(value)}){at}."
            )


def _read_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{str(path)!r} is not valid TOML: {exc}") from exc


def _build(cls: type, base: Any, values: Mapping[str, Any], where: str) -> Any:
    try:
        return attrs.evolve(base, **values) if base is not None else cls(**values)
    except ConfigError as exc:
        raise ConfigError(f"[{where}] {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[{where}] {exc}") from None


def run_config_from_dict(
    table: Mapping[str, Any], *, base_dir: str | os.PathLike[str] = ".", source: str = ""
) -> RunConfig:
    """Build a :class:`RunConfig` from a parsed TOML table (strictly checked).

    Relative paths in ``output``, ``data.path``, ``model.path`` and ``model.weights`` are taken
    relative to ``base_dir`` (the config file's folder) and made absolute.

    Raises:
        ConfigError: Unknown key, wrong type, missing required key, or invalid value (named).
    """
    from biocoreset.presets import get_preset

    check_table(table, SCHEMA, source=source)
    for required in ("output",):
        if required not in table:
            raise ConfigError(
                f"missing key {required!r}{' in ' + source if source else ''}: the run folder to write."
            )
    data = dict(table.get("data", {}))
    if "path" not in data:
        raise ConfigError(
            f"missing key 'data.path'{' in ' + source if source else ''}: the sequence file to score."
        )
    base = Path(base_dir)

    def rel(p: str | None) -> str | None:
        return None if p is None else str((base / p).resolve()) if not os.path.isabs(p) else p

    preset = get_preset(table.get("preset", "default"))
    data["path"] = rel(data["path"])
    data_cfg = _build(DataConfig, None, data, "data")
    model = dict(table.get("model", {}))
    model["path"] = rel(model.get("path"))
    model["weights"] = rel(model.get("weights"))
    model["options"] = {**preset.adapter_options, **model.get("options", {})}
    model_cfg = _build(ModelConfig, None, model, "model")
    shared = {"invalid": data_cfg.invalid, "replacement": data_cfg.replacement}
    if data_cfg.subset is not None:
        shared["subset"] = data_cfg.subset
    if data_cfg.subset_seed is not None:
        shared["subset_seed"] = data_cfg.subset_seed
    ft = dict(table.get("finetune", {}))
    ft_cfg = _build(FinetuneConfig, preset.finetune, {**shared, **ft}, "finetune")
    sc = dict(table.get("score", {}))
    if "parameters" in sc:
        sc["parameters"] = tuple(sc["parameters"])
    sc_cfg = _build(ScoreConfig, preset.score, {**shared, **sc}, "score")
    if "loss_mode" in model_cfg.options:
        sc_cfg = attrs.evolve(sc_cfg, loss_mode=model_cfg.options["loss_mode"])
    sel = dict(table.get("select", {}))
    sel.setdefault("seed", preset.select.seed)
    sel.setdefault("methods", [preset.select.method])
    sel_cfg = _build(RunSelectConfig, None, sel, "select")
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
    return run_config_from_dict(_read_toml(p), base_dir=p.parent, source=str(p))

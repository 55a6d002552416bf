"""Frozen configuration objects of the Python API (``attrs.frozen(kw_only=True)``; use
:func:`attrs.evolve` for variants). The ``biocoreset run`` file is read by :mod:`biocoreset.run.file`,
whose tables are derived from these classes.

A field with ``metadata={"help": ...}`` is also a command-line flag: ``biocoreset score`` and
``biocoreset finetune`` derive their flags from those fields (name, type, choices from the validator,
the default appended to the help; see :func:`biocoreset.cli.common.add_config_flags`).

Example:
    >>> import attrs
    >>> cfg = attrs.evolve(ScoreConfig(), damping=1e-3)
    >>> cfg.damping, cfg.curvature, ScoreConfig().damping
    (0.001, 'diagonal', '0.1*mean')
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Sequence
from typing import Any

import attrs

from biocoreset.config.fields import (
    all_of,
    integer_ge,
    member_of,
    none_or,
    number_ge,
    subset_spec,
    to_float_or_none,
    to_masking,
    to_patterns,
    to_str_or_none,
)
from biocoreset.data.masking import MaskingConfig, resolve_schedule
from biocoreset.data.validation import VALIDATION_POLICIES
from biocoreset.errors import ConfigError

__all__ = [
    "DEFAULT_DAMPING",
    "ENGINES",
    "MASK_REDUCE",
    "FinetuneConfig",
    "MaskingConfig",
    "ScoreConfig",
    "SelectConfig",
    "SubsetSpec",
    "damping_options",
    "invalid_field",
    "parse_damping",
    "replacement_field",
    "subset_field",
    "subset_seed_field",
]

SubsetSpec = int | float | Sequence[str] | None

FIT_ON = ("subset", "all")
AUTOCAST = ("bf16", "fp16")
SCHEDULES = ("linear", "constant")
ENGINES = ("auto", "loop", "hooks")
"""The per-sample gradient engines a run can ask for (``ScoreConfig.engine``): the names
:func:`biocoreset.grads.make_engine` takes (:data:`biocoreset.grads.ENGINES`, derived from the
engine classes; a test keeps the two equal, as ``config`` must not import torch)."""
MASK_REDUCE = ("mean-score", "mean-gradient")
"""How ``mask_draws = K`` draws make one score (see :class:`ScoreConfig`)."""
MEAN_GRADIENT_COVER = (
    "mask_reduce='mean-gradient' needs independent mask draws, but the masking schedule is "
    "'cover': its estimate U is unbiased only when the draws are independent (under 'cover' the "
    "draws of a round mask disjoint positions, so g_k and g_l are correlated and their products "
    "carry that covariance). Use MaskingConfig(schedule='independent') (or 'auto') with "
    "mask_reduce='mean-gradient', or keep schedule='cover' with mask_reduce='mean-score'."
)
"""The one-line refusal of ``mask_reduce="mean-gradient"`` with ``schedule="cover"``."""

DEFAULT_DAMPING = "0.1*mean"
"""The default damping: λ = 0.1 × the mean curvature entry (mean Fisher entry, mean eigenvalue)."""

_RELATIVE = re.compile(r"^\s*([0-9.eE+-]+)\s*\*\s*mean\s*$")
_DAMPING_FORMS = (
    "a number >= 0 (absolute λ, e.g. 1e-3) or a string '<r>*mean' (λ = r × the mean curvature "
    "entry, e.g. '0.1*mean')"
)


def parse_damping(value: Any) -> float | str:
    """The one form of the damping option: an absolute λ (a number) or ``"<r>*mean"`` (λ = r × the
    mean curvature entry, resolved after the fit and recorded as an absolute number).

    A string holding a plain number is an absolute λ (as given on the command line); ``None`` is
    the default, :data:`DEFAULT_DAMPING`.

    Raises:
        ConfigError: Anything else (the message shows both forms).

    >>> parse_damping(1e-3), parse_damping("1e-3"), parse_damping(" 0.5 * mean"), parse_damping(None)
    (0.001, 0.001, '0.5*mean', '0.1*mean')
    """
    if value is None:
        return DEFAULT_DAMPING
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        lam = float(value)
        if not (math.isfinite(lam) and lam >= 0):
            raise ConfigError(f"damping must be {_DAMPING_FORMS}; got {value!r}.")
        return lam
    if isinstance(value, str):
        match = _RELATIVE.match(value)
        try:
            number = float(match.group(1) if match else value)
        except ValueError:
            number = float("nan")
        if math.isfinite(number) and number >= 0:
            return f"{number!r}*mean" if match else number
    raise ConfigError(f"damping must be {_DAMPING_FORMS}; got {value!r}.")


def damping_options(damping: float | str) -> dict[str, float | None]:
    """The curvature factory's keywords for a parsed damping (``damping`` absolute, or
    ``damping_relative``).

    >>> damping_options("0.1*mean"), damping_options(1e-8)
    ({'damping': None, 'damping_relative': 0.1}, {'damping': 1e-08, 'damping_relative': None})
    """
    parsed = parse_damping(damping)
    if isinstance(parsed, str):
        return {"damping": None, "damping_relative": float(parsed.split("*")[0])}
    return {"damping": parsed, "damping_relative": None}


def _check_mask_reduce(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value == "mean-gradient" and instance.mask_draws < 2:
        raise ConfigError(
            f"mask_reduce='mean-gradient' needs mask_draws >= 2 (got {instance.mask_draws}): its "
            "unbiased estimate compares distinct mask draws. Give mask_draws=K >= 2 (e.g. 4), or "
            "use mask_reduce='mean-score' (the default: the mean of the per-draw scores)."
        )
    if value == "mean-gradient" and (
        resolve_schedule(instance.masking.schedule, instance.mask_draws) == "cover"
    ):
        raise ConfigError(MEAN_GRADIENT_COVER)


def _check_keep_draws(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value and instance.mask_reduce != "mean-score":
        raise ConfigError(
            f"keep_draws=True needs mask_reduce='mean-score' (got {instance.mask_reduce!r}): only "
            "the mean of the per-draw scores has a score per draw. Drop keep_draws, or use "
            "mask_reduce='mean-score'."
        )


def _check_shard_size(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is None:
        return
    integer_ge(1)(instance, attribute, value)
    if value % instance.batch_size:
        raise ConfigError(
            f"shard_size ({value}) must be a multiple of batch_size ({instance.batch_size}) so shards "
            f"hold whole batches; e.g. {instance.batch_size * max(1, round(value / instance.batch_size))}."
        )


def subset_field() -> Any:
    """The ``subset`` field (``D_sub``) of every config that draws one."""
    return attrs.field(
        default=None,
        validator=subset_spec,
        metadata={"help": "D_sub size (int) or fraction (float); default 1% (>= 256)"},
    )


def subset_seed_field() -> Any:
    """The ``subset_seed`` field (the seed of the ``D_sub`` draw)."""
    return attrs.field(
        default=None,
        validator=none_or(integer_ge()),
        metadata={"help": "seed of the D_sub draw (default: --seed)"},
    )


def invalid_field() -> Any:
    """The ``invalid`` field: the policy for letters outside the adapter's alphabet."""
    return attrs.field(
        default="error",
        validator=member_of(VALIDATION_POLICIES),
        metadata={
            "help": "letters outside the model's alphabet: stop (error), replace, or skip the record"
        },
    )


def replacement_field() -> Any:
    """The ``replacement`` field: the letter ``invalid="replace"`` puts in."""
    return attrs.field(
        default=None,
        converter=to_str_or_none,
        metadata={"help": "replacement letter for --invalid replace (default N or X)"},
    )


@attrs.frozen(kw_only=True)
class ScoreConfig:
    """Options of :func:`biocoreset.score`.

    Attributes:
        curvature: Curvature name (``"diagonal"``, ``"identity"``, ``"kfac"``, ``"ekfac"``, plugins).
        scorer: Scorer name (``"self-influence"``, ``"loss"``, ``"grad-norm"``, plugins).
        subset: ``D_sub``: a size (int), a fraction of the corpus (float) or explicit ids. Default
            (``None``): 1% of the corpus, at least 256 sequences (all if fewer).
        damping: λ: a number is absolute (``1e-3``); ``"<r>*mean"`` is r × the mean curvature
            entry (default ``"0.1*mean"``). The metadata records the absolute λ either way.
        batch_size: Most sequences per batch.
        seed: Seed of ``D_sub`` sampling and masking.
        parameters: The scored parameters (``None``: all trainable): group names (``"lm head"``,
            ``"layer 3 ffn"``...), ``"last:N"`` (the last ``N`` layers' attention and FFN
            groups) or globs on parameter names, combined, e.g. ``("last:1", "lm head")``
            (``docs/adapters.md``, parameter scope).
        engine: Per-sample gradient engine: ``"auto"``, ``"hooks"`` or ``"loop"``.
        autocast: Mixed precision of the forward pass (hook engine only): ``"bf16"`` (what a GPU
            wants), ``"fp16"``, or ``None`` (the model's dtype). Per-sample quantities stay
            float32; scores move by bf16 round-off (about 1e-2 relative).
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
        shard_size: Rows per score shard (a multiple of ``batch_size``). ``None``: 256 batches
            for one process; under ``torchrun`` sized from the number of rows and of ranks — about
            8 shards per rank, at least one batch, at most 256 batches. Recorded in the metadata;
            a resumed run keeps the size it started with.
        max_tokens: Most padded residues per batch (rows × the longest), bounding ``batch_size``
            for long sequences (``None``: no limit).
        length_window: Records are grouped by length within windows of ``length_window`` batches
            (sorted, then cut into batches; results stay in input order). 1: consecutive batches
            in input order. Scores do not depend on it beyond float rounding.
        mask_draws: Masks per sequence ``K``: the score and the loss are the means over ``K``
            masks, draw ``k`` seeded by ``(seed, id, k)``, and the ``D_sub`` curvature is the
            mean over the draws of each draw's empirical Fisher. 1 (default) is the paper's
            single random mask, bit for bit (the mask; scores agree across CPUs to float64
            rounding). With ``K >= 2`` the run records split-half
            stability (``metadata["stability"]``); how the draws' positions relate is
            ``masking.schedule`` (``"auto"``: ``"independent"``). Costs ``K`` times one draw.
        mask_reduce: How the ``K`` draws make one score. ``"mean-score"`` (default): the mean of
            the per-draw scores, ``mean_k ‖g_k‖²_W``. ``"mean-gradient"`` (needs ``K >= 2``,
            independent draws — ``masking.schedule="cover"`` is refused, :data:`MEAN_GRADIENT_COVER`
            — and the ``self-influence`` scorer): the unbiased estimate of ``‖E_m g‖²_W``, the score of the
            expected loss over masks, ``U = (K²‖ḡ‖²_W − Σ_k ‖g_k‖²_W) / (K(K−1))``; it drops the
            mask-noise term ``tr(W Σ_m)`` of the mean score and can be ``<= 0`` (see
            ``docs/trust.md``). The curvature is the same mean per-draw Fisher either way.
        keep_draws: Also keep every draw's own score: columns ``score_draw_0 ..
            score_draw_{K-1}`` of the score file beside the mean (``ScoreResult.draws``;
            ``ScoreResult.draw(k)`` selects on one). Draw ``k`` is the score under mask ``k``
            with the run's curvature (the mean Fisher over the ``K`` masks of ``D_sub``). Needs
            ``mask_reduce="mean-score"``. Costs nothing but the columns.

    The loss (``loss_mode``) is the adapter's: pass ``adapter_options={"loss_mode": ...}``.
    """

    curvature: str = attrs.field(
        default="diagonal", metadata={"help": "diagonal, identity, kfac, ekfac or a plugin's"}
    )
    scorer: str = attrs.field(
        default="self-influence", metadata={"help": "self-influence, loss, grad-norm or a plugin's"}
    )
    subset: SubsetSpec = subset_field()  # noqa: RUF009 - a new attrs field, not a default
    damping: float | str = attrs.field(
        default=DEFAULT_DAMPING,
        converter=parse_damping,
        metadata={
            "help": "damping λ: an absolute number (e.g. 1e-3) or R*mean, R × the mean curvature entry"
        },
    )
    batch_size: int = attrs.field(
        default=16, validator=integer_ge(1), metadata={"help": "sequences per batch"}
    )
    seed: int = attrs.field(
        default=0, validator=integer_ge(), metadata={"help": "seed of D_sub and masking"}
    )
    parameters: tuple[str, ...] | None = attrs.field(
        default=None,
        converter=to_patterns,
        metadata={
            "help": "which parameters are scored (default: every one the loss uses). Each SCOPE "
            "is a group ('lm head', 'embeddings', 'final norm', 'layer 3 attention', 'layer 3 "
            "ffn'), last:N (the attention and FFN groups of the last N layers) or a glob on "
            "parameter names ('*layer.11.*'); several add up. Example: --parameters last:1 'lm "
            "head' (the backward then stops at the last layer). A scope that matches nothing is "
            "refused with the model's groups. See docs/adapters.md (parameter scope) and "
            "docs/trust.md (for the compute you have)"
        },
    )
    engine: str = attrs.field(
        default="auto",
        validator=member_of(ENGINES),
        metadata={"help": "per-sample gradient engine"},
    )
    autocast: str | None = attrs.field(
        default=None,
        converter=to_str_or_none,
        validator=none_or(member_of(AUTOCAST)),
        metadata={
            "help": "mixed-precision forward pass (on a GPU: bf16); per-sample sums stay float32"
        },
    )
    masking: MaskingConfig = attrs.field(factory=MaskingConfig, converter=to_masking)
    curvature_options: dict[str, Any] = attrs.field(factory=dict)
    progress: bool | None = None
    subset_seed: int | None = subset_seed_field()
    fit_on: str = attrs.field(
        default="subset",
        validator=member_of(FIT_ON),
        metadata={"help": "fit the curvature on D_sub (subset) or all rows"},
    )
    negate: bool = attrs.field(
        default=False,
        converter=bool,
        metadata={"help": "store -I(z) (the released code's convention)"},
    )
    invalid: str = invalid_field()
    replacement: str | None = replacement_field()
    shard_size: int | None = attrs.field(
        default=None,
        validator=_check_shard_size,
        metadata={"help": "rows per shard (a multiple of the batch size)"},
    )
    max_tokens: int | None = attrs.field(
        default=None,
        validator=none_or(integer_ge(1)),
        metadata={"help": "most padded residues per batch (default: no limit)"},
    )
    length_window: int = attrs.field(default=64, validator=integer_ge(1))
    mask_draws: int = attrs.field(
        default=1,
        validator=integer_ge(1),
        metadata={
            "help": "masks per sequence K: score and loss are means over K masks (1: the paper's single "
            "mask); K >= 2 also reports split-half stability"
        },
    )
    mask_reduce: str = attrs.field(
        default="mean-score",
        validator=all_of(member_of(MASK_REDUCE), _check_mask_reduce),
        metadata={
            "help": "how the K draws make one score: the mean of the per-draw scores (mean-score) or the "
            "unbiased score of the mean gradient (mean-gradient: needs --mask-draws >= 2; can be "
            "<= 0)"
        },
    )
    keep_draws: bool = attrs.field(
        default=False,
        converter=bool,
        validator=_check_keep_draws,
        metadata={
            "help": "also keep every mask draw's own score (columns score_draw_0..K-1 beside the mean)"
        },
    )


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
        group_by_length: Form batches of similar length (within windows of 64 batches of the
            seeded order), in a shuffled batch order, so little compute goes to padding
            (``False``: consecutive records of the seeded order, as the released code's trainer).
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
    subset: SubsetSpec = subset_field()  # noqa: RUF009 - a new attrs field, not a default
    subset_seed: int | None = subset_seed_field()
    epochs: int = attrs.field(
        default=1, validator=integer_ge(1), metadata={"help": "passes over D_sub"}
    )
    lr: float = attrs.field(
        default=1e-5,
        converter=float,
        validator=number_ge(),
        metadata={"help": "AdamW learning rate"},
    )
    weight_decay: float = attrs.field(
        default=0.01,
        converter=float,
        validator=number_ge(),
        metadata={"help": "AdamW weight decay"},
    )
    warmup_steps: int = attrs.field(
        default=50, validator=integer_ge(), metadata={"help": "linear warm-up steps"}
    )
    schedule: str = attrs.field(
        default="linear",
        validator=member_of(SCHEDULES),
        metadata={"help": "after warm-up: linear decay to 0, or constant"},
    )
    batch_size: int = attrs.field(
        default=16, validator=integer_ge(1), metadata={"help": "sequences per step over all ranks"}
    )
    seed: int = attrs.field(
        default=0, validator=integer_ge(), metadata={"help": "seed of shuffling and masking"}
    )
    group_by_length: bool = attrs.field(default=True, converter=bool)
    masking: MaskingConfig = attrs.field(factory=MaskingConfig, converter=to_masking)
    max_steps: int | None = attrs.field(
        default=None,
        validator=none_or(integer_ge(1)),
        metadata={"help": "stop after this many steps (default: all epochs)"},
    )
    max_grad_norm: float | None = attrs.field(
        default=None,
        converter=to_float_or_none,
        validator=none_or(number_ge()),
        metadata={"help": "clip the gradient norm (default: no clipping)"},
    )
    train_mode: bool = attrs.field(default=True, converter=bool)
    diagnostic_samples: int | None = attrs.field(
        default=512,
        validator=none_or(integer_ge()),
        metadata={"help": "D_sub sequences for the before/after diagnostic"},
    )
    invalid: str = invalid_field()
    replacement: str | None = replacement_field()
    progress: bool | None = None


@attrs.frozen(kw_only=True)
class SelectConfig:
    """Options of :func:`biocoreset.select`.

    Attributes:
        method: Selector name (``"cci"``, ``"topk"``, ``"random"``, plugins).
        budget: Count (int) or fraction of the scored sequences (float in (0, 1]).
        seed: Seed of random choices.
        options: Selector options (e.g. ``beta``, ``strata`` for CCI), checked by the selector.
    """

    method: str = "cci"
    budget: int | float = 0.1
    seed: int = attrs.field(default=0, validator=integer_ge())
    options: dict[str, Any] = attrs.field(factory=dict)

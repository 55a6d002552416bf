"""Options of pretraining from scratch (:class:`PretrainConfig`) and their TOML/JSON loader.

Example:
    >>> PretrainConfig(lr=2e-4).trajectory_dict()["lr"]
    0.0002
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import attrs

from biocoreset.config.fields import (
    integer_ge,
    member_of,
    none_or,
    number_ge,
    number_gt,
    to_float_or_none,
    to_masking,
)
from biocoreset.config.toml import read_toml as _read_toml
from biocoreset.data.masking import MaskingConfig
from biocoreset.errors import ConfigError
from biocoreset.train.schedules import SCHEDULES

__all__ = ["LOSS_REDUCTIONS", "PRECISIONS", "PretrainConfig", "load_pretrain_config"]

LOSS_REDUCTIONS = ("token", "sequence")
"""Values of :attr:`PretrainConfig.loss_reduction`."""

PRECISIONS = ("fp32", "bf16")
"""Values of :attr:`PretrainConfig.precision`."""


@attrs.frozen(kw_only=True)
class PretrainConfig:
    """Options of :func:`pretrain` (defaults: the paper's recipe, §A.3/A.4).

    Attributes:
        lr: Peak learning rate of AdamW.
        weight_decay: AdamW decoupled weight decay.
        betas: AdamW betas.
        eps: AdamW epsilon.
        no_decay: Glob patterns of parameter names excluded from weight decay (default: none, as
            ``torch.optim.AdamW`` applies it to every parameter).
        schedule: ``"inverse-sqrt"`` (paper), ``"constant"``, ``"linear"`` or ``"cosine"`` (see
            :mod:`biocoreset.train.schedules`).
        warmup_steps: Linear warm-up length in optimizer steps.
        epochs: Passes over the coreset (ignored when ``max_steps`` or ``reference_size`` is set).
        batch_size: Sequences per optimizer step, over all ranks together.
        max_steps: Equal-compute budget: train exactly this many optimizer steps whatever the
            coreset size (cycling through fresh epochs as needed).
        reference_size: Equal-compute budget given as a corpus size ``N``: the run takes
            ``epochs × ceil(N / batch_size)`` steps, i.e. what ``epochs`` epochs over ``N`` sequences
            would take. Exclusive with ``max_steps``.
        drop_last: Drop each epoch's final partial batch.
        group_by_length: Form each epoch's batches from records of similar length (sorted within
            windows of 64 batches of the epoch's seeded order), then shuffle the batches, so
            little compute goes to padding and training is still not ordered by length.
            ``False``: consecutive records of the seeded order.
        seed: Seed of the initialisation, data order, masking and dropout.
        vary_masking: Draw new masks every epoch (masking seed derived from ``(seed, epoch)``);
            ``False`` reuses the masks of ``seed`` every epoch.
        masking: Masking configuration used when the adapter is built by :func:`pretrain`'s callers
            (the adapter's own masking is used for collation; recorded for provenance).
        loss_reduction: ``"token"``: mean cross-entropy over all masked tokens of the batch (the
            BERT/fairseq recipe); ``"sequence"``: mean of the per-sequence losses.
        max_grad_norm: Clip the global gradient norm to this value (``None``: no clipping).
        precision: ``"fp32"``, or ``"bf16"`` autocast (model weights and optimizer stay float32).
        reinit: Re-initialise the architecture before training (``False`` continues from the
            adapter's current weights).
        checkpoint_every: Save a checkpoint every this many optimizer steps (and at the end).
        keep_checkpoints: How many of the newest checkpoints to keep.
        log_every: Record the loss in the history every this many steps.
        device: ``"auto"`` (CUDA when available, else CPU), or a torch device string.
        ddp_find_unused_parameters: Passed to DistributedDataParallel (models with parameters the
            MLM loss never uses, such as ESM's contact head, need ``True``).
        progress: Progress reporting: ``None`` (the process-wide mode, see
            :mod:`biocoreset.runtime.progress`), ``False``, or a mode name; the loss is shown with it.
    """

    lr: float = attrs.field(default=1e-4, converter=float, validator=number_gt())
    weight_decay: float = attrs.field(default=0.01, converter=float, validator=number_ge())
    betas: tuple[float, float] = attrs.field(
        default=(0.9, 0.999), converter=lambda v: tuple(float(x) for x in v)
    )
    eps: float = attrs.field(default=1e-8, converter=float, validator=number_gt())
    no_decay: tuple[str, ...] = attrs.field(
        default=(), converter=lambda v: tuple(str(x) for x in v)
    )
    schedule: str = attrs.field(default="inverse-sqrt", validator=member_of(tuple(SCHEDULES)))
    warmup_steps: int = attrs.field(default=2000, validator=integer_ge(0))
    epochs: int = attrs.field(default=10, validator=integer_ge(1))
    batch_size: int = attrs.field(default=16, validator=integer_ge(1))
    max_steps: int | None = attrs.field(default=None, validator=none_or(integer_ge(1)))
    reference_size: int | None = attrs.field(default=None, validator=none_or(integer_ge(1)))
    drop_last: bool = False
    group_by_length: bool = True
    seed: int = attrs.field(default=0, validator=integer_ge(0))
    vary_masking: bool = True
    masking: MaskingConfig = attrs.field(factory=MaskingConfig, converter=to_masking)
    loss_reduction: str = attrs.field(default="token", validator=member_of(LOSS_REDUCTIONS))
    max_grad_norm: float | None = attrs.field(
        default=None,
        converter=to_float_or_none,
        validator=none_or(number_gt()),
    )
    precision: str = attrs.field(default="fp32", validator=member_of(PRECISIONS))
    reinit: bool = True
    checkpoint_every: int = attrs.field(default=1000, validator=integer_ge(1))
    keep_checkpoints: int = attrs.field(default=2, validator=integer_ge(1))
    log_every: int = attrs.field(default=1, validator=integer_ge(1))
    device: str = "auto"
    ddp_find_unused_parameters: bool = True
    progress: bool | str | None = None

    def __attrs_post_init__(self) -> None:
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError(f"betas must be two numbers in [0, 1), got {self.betas!r}.")
        if self.max_steps is not None and self.reference_size is not None:
            raise ConfigError(
                "max_steps and reference_size both set; give one equal-compute budget "
                f"(max_steps={self.max_steps}, reference_size={self.reference_size})."
            )

    # Fields that change the trajectory; a resume refuses a checkpoint written with other values.
    _RUN_ONLY = ("checkpoint_every", "keep_checkpoints", "progress", "device", "log_every")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict of every field."""
        d = attrs.asdict(self, recurse=True)
        d["betas"] = list(self.betas)
        d["no_decay"] = list(self.no_decay)
        d["masking"] = {
            "probability": self.masking.probability,
            "replacement": list(self.masking.replacement),
        }
        return d

    def trajectory_dict(self) -> dict[str, Any]:
        """The fields that determine the trained weights (checked on resume)."""
        d = self.to_dict()
        for k in self._RUN_ONLY:
            d.pop(k)
        return d


def load_pretrain_config(path: str | os.PathLike[str], **overrides: Any) -> PretrainConfig:
    """Read a :class:`PretrainConfig` from a TOML or JSON file (unknown keys are errors).

    A TOML file may hold the fields at top level or in a ``[pretrain]`` table.

    Raises:
        ConfigError: Unreadable file or an unknown key (the message lists the valid ones).
    """
    p = Path(path)
    if p.suffix.lower() != ".json":
        data = _read_toml(p)
    else:
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {str(p)!r} does not exist.") from None
        except ValueError as exc:
            raise ConfigError(f"{str(p)!r} is not valid JSON: {exc}") from exc
    if isinstance(data.get("pretrain"), dict):
        data = data["pretrain"]
    valid = {f.name for f in attrs.fields(PretrainConfig)}
    unknown = sorted(set(data) - valid)
    if unknown:
        raise ConfigError(
            f"{str(p)!r}: unknown pretrain option(s) {unknown}; valid: {', '.join(sorted(valid))}."
        )
    data.update({k: v for k, v in overrides.items() if v is not None})
    return PretrainConfig(**data)

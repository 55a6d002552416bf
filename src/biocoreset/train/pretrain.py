"""Masked-LM pretraining from scratch on a coreset (paper §A.3/A.4).

The adapter's architecture is re-initialised (seeded) and trained on the coreset records with the
paper's recipe by default: AdamW (lr 1e-4, weight decay 0.01), linear warm-up over 2,000 steps then
inverse-square-root decay, 10 epochs, batch 16, seed 0 (:class:`PretrainConfig`).

Determinism and exact resume. Everything a step does is a function of ``(config, step)``: the epoch's
order is a permutation seeded by ``(seed, epoch)``, masking uses the adapter's deterministic collate
with a seed derived from ``(seed, epoch)`` (so a sequence is masked differently each epoch but
reproducibly), and the torch generator (dropout) is re-seeded from ``(seed, step, rank)`` before each
step. A checkpoint (model, optimizer, scheduler, RNG states, step, loss history) is written atomically
every ``checkpoint_every`` steps; rerunning the same command resumes from the newest one and reaches
the same weights as an uninterrupted run (bit-for-bit on CPU).

Data parallel. When :mod:`torch.distributed` is initialised (e.g. under ``torchrun``) the model is
wrapped in :class:`~torch.nn.parallel.DistributedDataParallel`; ``batch_size`` is the *global*
batch, split over ranks, and the loss is normalised by global counts, so the update equals the
single-process one.

Example:
    >>> import tempfile, torch
    >>> from biocoreset.adapters.hf import HFAdapter
    >>> from biocoreset.testing import tiny_esm, random_rna
    >>> model, tok = tiny_esm(dtype=torch.float32)
    >>> cfg = PretrainConfig(epochs=1, batch_size=4, warmup_steps=2, progress=False)
    >>> out = pretrain(HFAdapter(model, tok), random_rna(8), tempfile.mkdtemp(), config=cfg)
    >>> out.steps
    2
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import fnmatch
import hashlib
import json
import math
import numbers
import os
import random
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch

from biocoreset.data.masking import MaskingConfig
from biocoreset.errors import ConfigError, InputError, OutputExistsError
from biocoreset.protocols import ModelAdapter
from biocoreset.train.schedules import SCHEDULES, make_lr_scheduler

__all__ = [
    "CHECKPOINT_DIR",
    "MODEL_MANIFEST",
    "PretrainConfig",
    "PretrainResult",
    "StepInfo",
    "add_pretrain_parser",
    "epoch_mask_seed",
    "load_coreset",
    "load_pretrain_config",
    "plan_steps",
    "pretrain",
    "read_id_list",
    "reinitialise",
]

CHECKPOINT_DIR = "checkpoints"
MODEL_MANIFEST = "biocoreset-model.json"
"""File in ``<output>/final`` recording how to rebuild the trained model (format, adapter, options)."""

_LOSS_REDUCTIONS = ("token", "sequence")
_PRECISIONS = ("fp32", "bf16")


# -- configuration ---------------------------------------------------------------------------------


def _int_ge(minimum: int, *, optional: bool = False) -> Callable[[Any, attrs.Attribute, Any], None]:
    def check(instance: object, attribute: attrs.Attribute, value: Any) -> None:
        if optional and value is None:
            return
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
            raise ConfigError(f"{attribute.name} must be an integer >= {minimum}, got {value!r}.")

    return check


def _float_ge(
    minimum: float, *, optional: bool = False, strict: bool = False
) -> Callable[..., None]:
    def check(instance: object, attribute: attrs.Attribute, value: Any) -> None:
        if optional and value is None:
            return
        bad = (
            value is None
            or not math.isfinite(value)
            or (value <= minimum if strict else value < minimum)
        )
        if bad:
            op = ">" if strict else ">="
            raise ConfigError(
                f"{attribute.name} must be a finite number {op} {minimum}, got {value!r}."
            )

    return check


def _choice(choices: Iterable[str]) -> Callable[..., None]:
    options = tuple(choices)

    def check(instance: object, attribute: attrs.Attribute, value: Any) -> None:
        if value not in options:
            raise ConfigError(
                f"{attribute.name} must be one of {', '.join(options)}; got {value!r}."
            )

    return check


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _masking(value: Any) -> MaskingConfig:
    if isinstance(value, MaskingConfig):
        return value
    if isinstance(value, dict):
        return MaskingConfig(**value)
    raise ConfigError(f"masking must be a MaskingConfig or a table of its fields, got {value!r}.")


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
        schedule: ``"inverse-sqrt"`` (paper), ``"constant"`` or ``"linear"`` (see
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
        progress: Show a progress bar (``None``: when stderr is a terminal).
    """

    lr: float = attrs.field(default=1e-4, converter=float, validator=_float_ge(0.0, strict=True))
    weight_decay: float = attrs.field(default=0.01, converter=float, validator=_float_ge(0.0))
    betas: tuple[float, float] = attrs.field(
        default=(0.9, 0.999), converter=lambda v: tuple(float(x) for x in v)
    )
    eps: float = attrs.field(default=1e-8, converter=float, validator=_float_ge(0.0, strict=True))
    no_decay: tuple[str, ...] = attrs.field(
        default=(), converter=lambda v: tuple(str(x) for x in v)
    )
    schedule: str = attrs.field(default="inverse-sqrt", validator=_choice(SCHEDULES))
    warmup_steps: int = attrs.field(default=2000, validator=_int_ge(0))
    epochs: int = attrs.field(default=10, validator=_int_ge(1))
    batch_size: int = attrs.field(default=16, validator=_int_ge(1))
    max_steps: int | None = attrs.field(default=None, validator=_int_ge(1, optional=True))
    reference_size: int | None = attrs.field(default=None, validator=_int_ge(1, optional=True))
    drop_last: bool = False
    seed: int = attrs.field(default=0, validator=_int_ge(0))
    vary_masking: bool = True
    masking: MaskingConfig = attrs.field(factory=MaskingConfig, converter=_masking)
    loss_reduction: str = attrs.field(default="token", validator=_choice(_LOSS_REDUCTIONS))
    max_grad_norm: float | None = attrs.field(
        default=None, converter=_opt_float, validator=_float_ge(0.0, optional=True, strict=True)
    )
    precision: str = attrs.field(default="fp32", validator=_choice(_PRECISIONS))
    reinit: bool = True
    checkpoint_every: int = attrs.field(default=1000, validator=_int_ge(1))
    keep_checkpoints: int = attrs.field(default=2, validator=_int_ge(1))
    log_every: int = attrs.field(default=1, validator=_int_ge(1))
    device: str = "auto"
    ddp_find_unused_parameters: bool = True
    progress: bool | None = None

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
    text = p.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if p.suffix.lower() == ".json" else _toml_loads(text)
    except ValueError as exc:
        raise ConfigError(
            f"{str(p)!r} is not valid {'JSON' if p.suffix == '.json' else 'TOML'}: {exc}"
        ) from exc
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


def _toml_loads(text: str) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    return tomllib.loads(text)


# -- data ------------------------------------------------------------------------------------------


def read_id_list(path: str | os.PathLike[str]) -> list[str]:
    """Read a coreset id list: one id per line (the first word); blank lines and ``#`` comments skipped.

    Raises:
        InputError: Missing file, a duplicated id (naming both lines) or no id at all.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"id list {str(p)!r} does not exist.")
    ids: list[str] = []
    seen: dict[str, int] = {}
    with open(p, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            rid = text.split()[0]
            if rid in seen:
                raise InputError(
                    f"{str(p)!r}: id {rid!r} appears twice (lines {seen[rid]} and {lineno}); a coreset "
                    "lists each sequence once."
                )
            seen[rid] = lineno
            ids.append(rid)
    if not ids:
        raise InputError(f"id list {str(p)!r} holds no id.")
    return ids


def load_coreset(
    corpus: Any, ids: Sequence[str] | str | os.PathLike[str] | None = None
) -> list[tuple[str, str]]:
    """The coreset's ``(id, sequence)`` records, in corpus order.

    The corpus is streamed once; only the selected records are kept in memory.

    Args:
        corpus: A FASTA path (plain or gzip) or an iterable of ``(id, sequence)`` pairs.
        ids: The coreset: an id-list file (see :func:`read_id_list`), a sequence of ids, or ``None``
            for the whole corpus.

    Raises:
        InputError: An id missing from the corpus, a selected id occurring twice in the corpus, or an
            empty coreset.
    """
    from biocoreset.data.sources import as_source

    source = as_source(corpus)
    if isinstance(ids, (str, os.PathLike)):
        ids = read_id_list(ids)
    wanted = None if ids is None else set(ids)
    if ids is not None and wanted is not None and len(wanted) != len(ids):
        from collections import Counter

        dup = next(i for i, c in Counter(ids).items() if c > 1)
        raise InputError(f"coreset id {dup!r} is listed more than once.")
    records: list[tuple[str, str]] = []
    where: dict[str, int] = {}
    for i, (rid, seq) in enumerate(source):
        if wanted is not None and rid not in wanted:
            continue
        if rid in where:
            raise InputError(
                f"sequence id {rid!r} occurs twice in {source.describe()} (records {where[rid] + 1} and "
                f"{i + 1}); ids must be unique."
            )
        where[rid] = i
        records.append((rid, seq))
    if wanted is not None:
        missing = [rid for rid in ids if rid not in where]  # type: ignore[union-attr]
        if missing:
            raise InputError(
                f"{len(missing)} coreset id(s) are not in {source.describe()}, e.g. {missing[:3]!r}. "
                "Check that the id list was selected from this corpus."
            )
    if not records:
        raise InputError(f"the coreset is empty ({source.describe()}).")
    return records


def _fingerprint(records: Sequence[tuple[str, str]]) -> str:
    h = hashlib.sha256()
    for rid, seq in records:
        h.update(rid.encode("utf-8"))
        h.update(b"\t")
        h.update(seq.encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def plan_steps(n: int, config: PretrainConfig) -> tuple[int, int]:
    """``(steps_per_epoch, total_steps)`` for ``n`` coreset sequences.

    >>> plan_steps(100, PretrainConfig(batch_size=16, epochs=10))
    (7, 70)
    >>> plan_steps(100, PretrainConfig(batch_size=16, max_steps=5))
    (7, 5)
    >>> plan_steps(100, PretrainConfig(batch_size=16, epochs=2, reference_size=1000))
    (7, 126)
    """
    bs = config.batch_size
    if config.drop_last:
        if n < bs:
            raise ConfigError(f"drop_last with batch_size {bs} leaves no batch from {n} sequences.")
        per_epoch = n // bs
    else:
        per_epoch = math.ceil(n / bs)
    if config.max_steps is not None:
        total = config.max_steps
    elif config.reference_size is not None:
        total = config.epochs * math.ceil(config.reference_size / bs)
    else:
        total = config.epochs * per_epoch
    return per_epoch, total


def _seed_words(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(1)[0])


def epoch_mask_seed(seed: int, epoch: int, *, vary: bool = True) -> int:
    """Masking seed of ``epoch``: derived from ``(seed, epoch)`` (or ``seed`` itself when not ``vary``).

    >>> epoch_mask_seed(0, 0) != epoch_mask_seed(0, 1)
    True
    >>> epoch_mask_seed(3, 7, vary=False)
    3
    """
    return _seed_words(seed, epoch, 0x4D41534B) if vary else int(seed)


def _epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([int(seed), int(epoch), 0x0DE5]).permutation(n)


def _batch_indices(
    step: int, n: int, per_epoch: int, config: PretrainConfig
) -> tuple[int, list[int]]:
    epoch, pos = divmod(step, per_epoch)
    order = _epoch_order(n, config.seed, epoch)
    bs = config.batch_size
    return epoch, order[pos * bs : (pos + 1) * bs].tolist()


# -- model -----------------------------------------------------------------------------------------


def reinitialise(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Re-initialise ``model``'s weights in place, reproducibly from ``seed``; return it.

    A Hugging Face ``PreTrainedModel`` is rebuilt from its config (its own initialisation recipe) and
    the fresh weights are copied in; any other module has ``reset_parameters()`` called on every
    submodule that defines it. The global torch RNG is left untouched.

    Raises:
        ConfigError: The model has parameters no ``reset_parameters()`` reaches.
    """
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        config = getattr(model, "config", None)
        if config is not None and hasattr(model, "post_init"):
            fresh = type(model)(copy.deepcopy(config)).to(dtype)
            missing, unexpected = model.load_state_dict(fresh.state_dict(), strict=False)
            if unexpected or [k for k in missing if not k.endswith(("position_ids", "inv_freq"))]:
                raise ConfigError(
                    f"could not re-initialise {type(model).__name__} from its config: missing "
                    f"{missing[:3]}, unexpected {unexpected[:3]}."
                )
            return model
        reached: set[int] = set()
        for module in model.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
                reached.update(id(p) for p in module.parameters(recurse=False))
        left = [n for n, p in model.named_parameters() if id(p) not in reached]
        if left:
            raise ConfigError(
                f"cannot re-initialise {type(model).__name__}: parameters {left[:3]} belong to modules "
                "without reset_parameters(). Re-initialise the model yourself and pass reinit=False."
            )
    return model


class _LossModule(torch.nn.Module):
    """Wraps an adapter so DistributedDataParallel sees one module whose forward is the per-sample loss."""

    def __init__(self, adapter: ModelAdapter) -> None:
        super().__init__()
        self.model = adapter.model
        self._adapter = adapter

    def forward(self, batch: Any) -> torch.Tensor:
        return self._adapter.per_sample_loss(batch)


def _param_groups(model: torch.nn.Module, config: PretrainConfig) -> list[dict[str, Any]]:
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        skip = any(fnmatch.fnmatchcase(name, pat) for pat in config.no_decay)
        (no_decay if skip else decay).append(p)
    groups = [{"params": decay, "weight_decay": config.weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


# -- distributed -----------------------------------------------------------------------------------


@attrs.frozen
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def _dist_info() -> _Dist:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return _Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return _Dist()


def _all_reduce(x: torch.Tensor, dist_info: _Dist) -> torch.Tensor:
    if dist_info.active:
        import torch.distributed as dist

        dist.all_reduce(x)
    return x


def _barrier(dist_info: _Dist) -> None:
    if dist_info.active:
        import torch.distributed as dist

        dist.barrier()


def _resolve_device(spec: str, dist_info: _Dist) -> torch.device:
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", dist_info.local_rank % torch.cuda.device_count())
        return torch.device("cpu")
    try:
        return torch.device(spec)
    except RuntimeError as exc:
        raise ConfigError(
            f"device {spec!r} is not a torch device ('auto', 'cpu', 'cuda:0', ...)."
        ) from exc


# -- checkpoints -----------------------------------------------------------------------------------


def _checkpoint_path(folder: Path, step: int) -> Path:
    return folder / f"step-{step:09d}.pt"


def _list_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    if not folder.is_dir():
        return []
    out = []
    for p in folder.glob("step-*.pt"):
        try:
            out.append((int(p.stem.split("-", 1)[1]), p))
        except ValueError:
            continue
    return sorted(out)


def _rng_state(device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def _load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(
            f"checkpoint {str(path)!r} cannot be read ({exc}); delete it to resume from the previous one."
        ) from exc


# -- results ---------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class StepInfo:
    """What the ``callback`` of :func:`pretrain` receives after each optimizer step.

    Attributes:
        step: Optimizer steps done so far (1 after the first).
        total_steps: Steps the run will take.
        epoch: Epoch of the step (0-based).
        loss: Global batch loss of the step.
        lr: Learning rate used by the step.
        checkpoint: Path of the checkpoint written after this step, if any.
    """

    step: int
    total_steps: int
    epoch: int
    loss: float
    lr: float
    checkpoint: Path | None = None


@attrs.frozen(kw_only=True)
class PretrainResult:
    """Outcome of :func:`pretrain`.

    Attributes:
        output_dir: The run folder.
        final_dir: Folder with the trained model (``<output>/final``).
        steps: Optimizer steps taken in total (including those before a resume).
        epochs: Epochs started (a final partial epoch counts).
        num_sequences: Coreset size.
        history: ``(step, epoch, loss, lr)`` per logged step.
        resumed_from: Step of the checkpoint the run resumed from (``None``: fresh start).
        seconds: Wall time of this call.
    """

    output_dir: Path
    final_dir: Path
    steps: int
    epochs: int
    num_sequences: int
    history: tuple[tuple[int, int, float, float], ...]
    resumed_from: int | None
    seconds: float

    @property
    def final_loss(self) -> float:
        """Loss of the last logged step."""
        return self.history[-1][2] if self.history else float("nan")


def _write_history(history: Sequence[Sequence[Any]], out: Path) -> None:
    tmp = out / ".loss.csv.tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["step", "epoch", "loss", "lr"])
        for step, epoch, loss, lr in history:
            w.writerow([step, epoch, f"{loss:.6g}", f"{lr:.6g}"])
    os.replace(tmp, out / "loss.csv")


def plot_loss_curve(
    history: Sequence[Sequence[Any]], path: str | os.PathLike[str], *, title: str = ""
) -> Path:
    """Write the loss curve (raw and smoothed, learning rate on a second axis) as a PNG.

    Args:
        history: ``(step, epoch, loss, lr)`` rows.
        path: PNG to write.
        title: Plot title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = np.asarray([[r[0], r[1], r[2], r[3]] for r in history], dtype=np.float64).reshape(-1, 4)
    fig, ax = plt.subplots(figsize=(8, 4.5), constrained_layout=True)
    if len(rows):
        steps, epochs, loss, lr = rows.T
        ax.plot(steps, loss, color="#9ecae1", lw=0.8, label="loss")
        if len(loss) > 5:
            alpha = 2.0 / (min(100, max(5, len(loss) // 20)) + 1)
            smooth = np.empty_like(loss)
            acc = loss[0]
            for i, v in enumerate(loss):
                acc = alpha * v + (1 - alpha) * acc
                smooth[i] = acc
            ax.plot(steps, smooth, color="#08519c", lw=1.6, label="loss (EMA)")
        for b in np.flatnonzero(np.diff(epochs)) + 1:
            ax.axvline(steps[b], color="#cccccc", lw=0.6, zorder=0)
        ax2 = ax.twinx()
        ax2.plot(steps, lr, color="#e6550d", lw=1.0, ls="--", label="learning rate")
        ax2.set_ylabel("learning rate")
        ax2.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
        lines = ax.get_legend_handles_labels()
        lines2 = ax2.get_legend_handles_labels()
        ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=8, loc="upper right")
    ax.set_xlabel("optimizer step (grey lines: epoch boundaries)")
    ax.set_ylabel("masked-LM loss")
    ax.set_title(title or "pretraining loss")
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _save_final(adapter: ModelAdapter, final: Path, adapter_spec: dict[str, Any] | None) -> None:
    if final.exists():
        shutil.rmtree(final)
    final.mkdir(parents=True)
    model = adapter.model
    if hasattr(model, "save_pretrained"):
        from biocoreset.bench.backbone import quiet_transformers

        with quiet_transformers():
            model.save_pretrained(final)  # type: ignore[operator]
        tok = getattr(adapter, "tokenizer", None)
        if tok is not None and hasattr(tok, "save_pretrained"):
            tok.save_pretrained(final)
        fmt, weights = "hf", None
    else:
        torch.save(model.state_dict(), final / "model.pt")
        fmt, weights = "state-dict", "model.pt"
    spec = dict(adapter_spec or {})
    manifest = {
        "format": fmt,
        "weights": weights,
        "adapter": spec.get("adapter", getattr(adapter, "name", None)),
        "adapter_options": spec.get("adapter_options"),
        "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
    }
    (final / MODEL_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


# -- the loop --------------------------------------------------------------------------------------


def _prepare_output(out: Path, *, resume: bool, force: bool, dist_info: _Dist) -> None:
    ckpts = _list_checkpoints(out / CHECKPOINT_DIR)
    done = (out / "pretrain.json").exists()
    if dist_info.main:
        if force and out.exists():
            shutil.rmtree(out)
        elif done and not resume:
            raise OutputExistsError(
                f"{str(out)!r} holds a finished run; pass force=True (--force) to redo it."
            )
        elif ckpts and not resume:
            raise OutputExistsError(
                f"{str(out)!r} holds checkpoints of an unfinished run; resume it (resume=True) or pass "
                "force=True (--force) to start over."
            )
        (out / CHECKPOINT_DIR).mkdir(parents=True, exist_ok=True)
    _barrier(dist_info)


def _autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def _tqdm(total: int, initial: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=initial,
        disable=not enabled,
        unit="step",
        desc="pretrain",
        dynamic_ncols=True,
    )


def pretrain(
    adapter: ModelAdapter,
    corpus: Any,
    output_dir: str | os.PathLike[str],
    *,
    coreset: Sequence[str] | str | os.PathLike[str] | None = None,
    config: PretrainConfig | None = None,
    resume: bool = True,
    force: bool = False,
    callback: Callable[[StepInfo], None] | None = None,
    adapter_spec: dict[str, Any] | None = None,
    **options: Any,
) -> PretrainResult:
    """Pretrain ``adapter``'s architecture from scratch on a coreset.

    Args:
        adapter: A :class:`~biocoreset.protocols.ModelAdapter`; its model is re-initialised (unless
            ``config.reinit`` is false), moved to the device and trained in place.
        corpus: The corpus: a FASTA path or an iterable of ``(id, sequence)`` pairs.
        output_dir: Run folder: ``checkpoints/``, ``final/`` (the trained model and
            ``biocoreset-model.json``), ``loss.csv``, ``loss.png``, ``pretrain.json``.
        coreset: Id-list file or ids selecting the coreset from ``corpus`` (``None``: all of it).
        config: A :class:`PretrainConfig`; keyword ``options`` override its fields.
        resume: Continue from the newest checkpoint in ``output_dir`` if there is one.
        force: Delete ``output_dir`` first.
        callback: Called with a :class:`StepInfo` after every optimizer step (on every rank).
        adapter_spec: ``{"adapter": name, "adapter_options": {...}}`` recorded in the model manifest so
            the benchmark runner can rebuild the model.

    Returns:
        A :class:`PretrainResult`.

    Raises:
        ConfigError: Invalid options, or a resume with a different configuration or coreset.
        InputError: Coreset ids missing from the corpus, duplicates, empty coreset.
        OutputExistsError: ``output_dir`` holds a run and neither ``resume`` nor ``force`` allows reuse.
    """
    t0 = time.time()
    cfg = config or PretrainConfig()
    if options:
        valid = {f.name for f in attrs.fields(PretrainConfig)}
        unknown = sorted(set(options) - valid)
        if unknown:
            raise ConfigError(
                f"unknown pretrain option(s) {unknown}; valid: {', '.join(sorted(valid))}."
            )
        cfg = attrs.evolve(cfg, **options)
    if not isinstance(adapter, ModelAdapter):
        raise ConfigError(
            f"pretrain() needs a ModelAdapter (e.g. HFAdapter(model, tokenizer)), got {type(adapter).__name__}."
        )
    dist_info = _dist_info()
    out = Path(output_dir)
    records = load_coreset(corpus, coreset)
    n = len(records)
    per_epoch, total = plan_steps(n, cfg)
    fingerprint = _fingerprint(records)
    _prepare_output(out, resume=resume, force=force, dist_info=dist_info)
    ckpt_dir = out / CHECKPOINT_DIR

    device = _resolve_device(cfg.device, dist_info)
    model = adapter.model
    if cfg.reinit:
        reinitialise(model, cfg.seed)
    model.to(device)
    model.train()
    optimizer = torch.optim.AdamW(
        _param_groups(model, cfg), lr=cfg.lr, betas=cfg.betas, eps=cfg.eps
    )
    scheduler = make_lr_scheduler(
        optimizer, cfg.schedule, warmup_steps=cfg.warmup_steps, total_steps=total
    )
    module: torch.nn.Module = _LossModule(adapter)
    if dist_info.active:
        from torch.nn.parallel import DistributedDataParallel

        module = DistributedDataParallel(
            module,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=cfg.ddp_find_unused_parameters,
        )

    start, history, resumed_from = 0, [], None
    existing = _list_checkpoints(ckpt_dir)
    if resume and existing:
        step0, path = existing[-1]
        state = _load_checkpoint(path)
        _check_resume(state, cfg, n, fingerprint, path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"], device)
        start, history, resumed_from = (
            int(state["step"]),
            [tuple(h) for h in state["history"]],
            step0,
        )
        if total < start:
            raise ConfigError(
                f"checkpoint {str(path)!r} is at step {start}, beyond this run's {total} steps."
            )

    show = dist_info.main and (sys.stderr.isatty() if cfg.progress is None else bool(cfg.progress))
    bar = _tqdm(total, start, show)
    try:
        for step in range(start, total):
            epoch, idx = _batch_indices(step, n, per_epoch, cfg)
            lr = optimizer.param_groups[0]["lr"]
            loss_value = _train_step(
                module, adapter, records, idx, epoch, step, cfg, dist_info, device
            )
            if cfg.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            done = step + 1
            if done % cfg.log_every == 0 or done == total:
                history.append((done, epoch, loss_value, lr))
            saved = None
            if done % cfg.checkpoint_every == 0 or done == total:
                saved = _checkpoint(
                    ckpt_dir,
                    done,
                    model,
                    optimizer,
                    scheduler,
                    history,
                    cfg,
                    n,
                    fingerprint,
                    device,
                    dist_info,
                )
                if dist_info.main:
                    _write_history(history, out)
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}", epoch=epoch, refresh=False)
            if callback is not None:
                callback(
                    StepInfo(
                        step=done,
                        total_steps=total,
                        epoch=epoch,
                        loss=loss_value,
                        lr=lr,
                        checkpoint=saved,
                    )
                )
    finally:
        bar.close()

    model.eval()
    final = out / "final"
    if dist_info.main:
        _save_final(adapter, final, adapter_spec)
        _write_history(history, out)
        plot_loss_curve(history, out / "loss.png", title=f"pretraining on {n} sequences")
        from biocoreset import __version__

        meta = {
            "config": cfg.to_dict(),
            "num_sequences": n,
            "coreset_sha256": fingerprint,
            "steps": total,
            "steps_per_epoch": per_epoch,
            "epochs": math.ceil(total / per_epoch),
            "world_size": dist_info.world,
            "resumed_from": resumed_from,
            "final_loss": history[-1][2] if history else None,
            "adapter": getattr(adapter, "name", None),
            "seconds": round(time.time() - t0, 3),
            "biocoreset_version": __version__,
        }
        (out / "pretrain.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    _barrier(dist_info)
    return PretrainResult(
        output_dir=out,
        final_dir=final,
        steps=total,
        epochs=math.ceil(total / per_epoch),
        num_sequences=n,
        history=tuple(history),
        resumed_from=resumed_from,
        seconds=time.time() - t0,
    )


def _train_step(
    module: torch.nn.Module,
    adapter: ModelAdapter,
    records: Sequence[tuple[str, str]],
    idx: list[int],
    epoch: int,
    step: int,
    cfg: PretrainConfig,
    dist_info: _Dist,
    device: torch.device,
) -> float:
    """Forward and backward of one global batch; returns the global batch loss."""
    torch.manual_seed(_seed_words(cfg.seed, step, dist_info.rank, 0xD50))
    local = idx[dist_info.rank :: dist_info.world]
    real = bool(local)
    if not real:  # this rank has no sequence in a short final batch: run one with zero weight
        local = idx[:1]
    batch = adapter.collate(
        [records[i] for i in local], seed=epoch_mask_seed(cfg.seed, epoch, vary=cfg.vary_masking)
    )
    if cfg.loss_reduction == "token":
        counts = (batch.labels != -100).sum(1).to(torch.float64)
    else:
        counts = torch.ones(len(local), dtype=torch.float64)
    if not real:
        counts = torch.zeros_like(counts)
    total = _all_reduce(counts.sum().to(device), dist_info).item()
    with _autocast(cfg.precision, device):
        losses = module(batch)
    weights = (counts / total).to(device=losses.device, dtype=losses.dtype)
    loss = (losses * weights).sum()
    # DDP averages gradients over ranks; scale so the result is the global weighted mean.
    (loss * dist_info.world).backward()
    report = _all_reduce(loss.detach().to(torch.float64).clone(), dist_info)
    return float(report.item())


def _check_resume(
    state: dict[str, Any], cfg: PretrainConfig, n: int, fingerprint: str, path: Path
) -> None:
    saved = state.get("config", {})
    now = cfg.trajectory_dict()
    diff = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
    if diff:
        shown = ", ".join(f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in diff[:5])
        raise ConfigError(
            f"cannot resume from {str(path)!r}: the configuration changed ({shown}). Use the original "
            "options, a new output folder, or force=True (--force) to start over."
        )
    if state.get("num_sequences") != n or state.get("coreset_sha256") != fingerprint:
        raise ConfigError(
            f"cannot resume from {str(path)!r}: it was trained on a different coreset "
            f"({state.get('num_sequences')} sequences then, {n} now). Use a new output folder or force=True."
        )


def _checkpoint(
    folder: Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    history: list[Any],
    cfg: PretrainConfig,
    n: int,
    fingerprint: str,
    device: torch.device,
    dist_info: _Dist,
) -> Path:
    path = _checkpoint_path(folder, step)
    if dist_info.main:
        payload = {
            "step": step,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": _rng_state(device),
            "history": [list(h) for h in history],
            "config": cfg.trajectory_dict(),
            "num_sequences": n,
            "coreset_sha256": fingerprint,
            "world_size": dist_info.world,
        }
        _save_checkpoint(path, payload)
        for _, old in _list_checkpoints(folder)[: -cfg.keep_checkpoints]:
            old.unlink(missing_ok=True)
    _barrier(dist_info)
    return path


# -- command line ----------------------------------------------------------------------------------


def add_pretrain_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``pretrain`` subcommand on an :mod:`argparse` subparsers object.

    The handler is stored as ``func(args) -> int``.
    """
    p = subparsers.add_parser(
        "pretrain",
        help="masked-LM pretraining from scratch on a coreset",
        description="Pretrain the adapter's architecture from scratch on a coreset (paper recipe by "
        "default). Rerun the same command to resume after a crash; run it under torchrun for DDP.",
    )
    p.add_argument("corpus", help="corpus FASTA (plain or .gz)")
    p.add_argument(
        "-o", "--output", required=True, help="run folder (checkpoints, final model, loss curve)"
    )
    p.add_argument(
        "--coreset",
        help="id list (one id per line, e.g. from `biocoreset select`); default: whole corpus",
    )
    p.add_argument(
        "--adapter",
        default="hf",
        help="adapter whose architecture is trained (see `biocoreset plugins`)",
    )
    p.add_argument(
        "--model",
        help="for --adapter hf: a transformers model folder (config + tokenizer); "
        "otherwise passed to the adapter as checkpoint",
    )
    p.add_argument(
        "--adapter-options", help='JSON object of adapter options, e.g. \'{"size": "tiny"}\''
    )
    p.add_argument("--config", help="TOML/JSON file of pretrain options (flags below override it)")
    p.add_argument("--lr", type=float)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--warmup-steps", type=int)
    p.add_argument("--schedule", choices=sorted(SCHEDULES))
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, help="global batch size (over all ranks)")
    p.add_argument("--max-steps", type=int, help="equal compute: exactly this many optimizer steps")
    p.add_argument(
        "--reference-size",
        type=int,
        help="equal compute: the steps `epochs` epochs over this many sequences would take",
    )
    p.add_argument("--seed", type=int)
    p.add_argument("--checkpoint-every", type=int)
    p.add_argument("--precision", choices=_PRECISIONS)
    p.add_argument("--device", help="'auto', 'cpu', 'cuda:0', ...")
    p.add_argument("--no-reinit", action="store_true", help="continue from the adapter's weights")
    p.add_argument("--no-resume", action="store_true", help="refuse to continue an unfinished run")
    p.add_argument("--force", action="store_true", help="delete the output folder first")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=_cmd_pretrain)
    return p


def _cmd_pretrain(args: argparse.Namespace) -> int:
    from biocoreset.bench.backbone import build_adapter
    from biocoreset.train.distributed import init_distributed

    init_distributed()  # joins the process group when launched by torchrun (WORLD_SIZE > 1)

    overrides = {
        "lr": args.lr,
        "weight_decay": args.weight_decay,
        "warmup_steps": args.warmup_steps,
        "schedule": args.schedule,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "max_steps": args.max_steps,
        "reference_size": args.reference_size,
        "seed": args.seed,
        "checkpoint_every": args.checkpoint_every,
        "precision": args.precision,
        "device": args.device,
    }
    if args.no_reinit:
        overrides["reinit"] = False
    overrides["progress"] = False if args.no_progress else None
    if args.config:
        cfg = load_pretrain_config(args.config, **overrides)
    else:
        cfg = PretrainConfig(**{k: v for k, v in overrides.items() if v is not None})
    options = json.loads(args.adapter_options) if args.adapter_options else {}
    adapter = build_adapter(
        args.adapter, args.model, options, masking=cfg.masking, weights=not cfg.reinit
    )
    result = pretrain(
        adapter,
        args.corpus,
        args.output,
        coreset=args.coreset,
        config=cfg,
        resume=not args.no_resume,
        force=args.force,
        adapter_spec={"adapter": args.adapter, "adapter_options": options, "model": args.model},
    )
    if _dist_info().main:
        print(
            f"pretrained {result.steps} steps ({result.epochs} epochs) on {result.num_sequences} sequences, "
            f"final loss {result.final_loss:.4f} -> {result.final_dir}"
        )
    return 0

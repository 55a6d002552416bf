"""The shared training engine of the built-in tasks: a head on a frozen or fine-tuned backbone.

A :class:`SupervisedTask` subclass declares its representation ``kind``, its ``objective``, its data
format and its paper defaults (:class:`TrainConfig`); this module does the rest:

* data: :func:`~biocoreset.bench.loaders.load_split` once per task (optionally subsampled);
* representation: frozen features cached by the :class:`~biocoreset.bench.backbone.Backbone`, or a
  forward pass through a fresh, trainable copy of the backbone (``finetune=True``);
* training: AdamW over the head (and backbone when fine-tuning), ``epochs`` passes in an order
  seeded by the run seed, the head initialised under ``torch.manual_seed(seed)``;
* prediction on the test split and the task's metrics.

Objectives: ``multiclass`` (cross-entropy), ``binary`` (sigmoid + BCE), ``multilabel`` (per-label
BCE), ``regression`` (MSE on standardised targets; predictions mapped back), ``residue-class``
(per-residue cross-entropy over valid residues), ``pair-binary`` (BCE over the ``L × L`` map) and
``pair-regression`` (MSE over known pairs, standardised).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, ClassVar

import attrs
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from biocoreset.bench.backbone import Backbone, pooled, residue_features
from biocoreset.bench.data import Example, Split, subsample
from biocoreset.bench.heads import HEADS, PairwiseHead, SequencePairHead, make_head
from biocoreset.bench.loaders import load_split
from biocoreset.bench.protocol import MetricSpec
from biocoreset.config.fields import (
    integer_ge,
    member_of,
    none_or,
    number_ge,
    number_gt,
)
from biocoreset.errors import ConfigError, InputError

__all__ = ["OBJECTIVES", "SupervisedTask", "TrainConfig"]

OBJECTIVES = (
    "multiclass",
    "binary",
    "multilabel",
    "regression",
    "residue-class",
    "pair-binary",
    "pair-regression",
)
KINDS = ("sequence", "sequence-pair", "residue", "pair-map")


def _dropout(instance: object, attribute: attrs.Attribute, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ConfigError(f"dropout must be in [0, 1), got {value!r}.")


@attrs.frozen(kw_only=True)
class TrainConfig:
    """How a task head is trained (paper Appendix B values are each task's defaults).

    Attributes:
        epochs: Passes over the training split.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        batch_size: Examples per step.
        finetune: Train the backbone too (``False``: frozen backbone, head only).
        head: ``"linear"`` or ``"mlp"`` (sequence and per-residue tasks).
        head_hidden: Hidden size of MLP heads (``None``: a default from the feature size).
        dropout: Dropout inside the head.
    """

    epochs: int = attrs.field(validator=integer_ge(1))
    lr: float = attrs.field(converter=float, validator=number_gt())
    weight_decay: float = attrs.field(default=0.01, converter=float, validator=number_ge())
    batch_size: int = attrs.field(default=32, validator=integer_ge(1))
    finetune: bool = False
    head: str = attrs.field(default="linear", validator=member_of(HEADS))
    head_hidden: int | None = attrs.field(default=None, validator=none_or(integer_ge(1)))
    dropout: float = attrs.field(default=0.0, converter=float, validator=_dropout)


class SupervisedTask:
    """Base class of the built-in tasks (see the module docstring).

    Args:
        train: Training data: path(s) in ``format`` or a list of
            :class:`~biocoreset.bench.data.Example`.
        test: Test data; ``None`` splits ``train`` (or reads the test split of a multi-split format).
        valid: Validation data (loaded, not used for reporting).
        format: Data format name (see :data:`biocoreset.bench.loaders.FORMATS`); default per task.
        data_options: Options of the format's reader (e.g. ``{"region": "site"}``).
        test_fraction: Held-out fraction when ``test`` is ``None`` for a single-split format.
        split_seed: Seed of that split and of subsampling.
        max_train: Use at most this many training examples (seeded sample; ``None``: all).
        max_test: Use at most this many test examples.
        **options: :class:`TrainConfig` fields and the task's own options (``task_options``).

    Raises:
        ConfigError: An unknown option (the message lists the valid ones).
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    group: ClassVar[str] = ""
    metrics: ClassVar[tuple[MetricSpec, ...]] = ()
    kind: ClassVar[str] = "sequence"
    objective: ClassVar[str] = "multiclass"
    data_kind: ClassVar[str | tuple[str, ...]] = "sequence"
    default_format: ClassVar[str] = "labelled"
    default_data_options: ClassVar[dict[str, Any]] = {}
    defaults: ClassVar[TrainConfig]
    task_options: ClassVar[dict[str, Any]] = {}

    @classmethod
    def __biocoreset_options__(cls) -> tuple[Any, ...]:
        """The options beyond ``__init__``'s own, for the plugin registry's option check:
        :class:`TrainConfig` fields (the task's defaults) and the task's ``task_options``."""
        return (getattr(cls, "defaults", TrainConfig), dict(cls.task_options))

    def __init__(
        self,
        *,
        train: Any,
        test: Any = None,
        valid: Any = None,
        format: str | None = None,
        data_options: dict[str, Any] | None = None,
        test_fraction: float = 0.2,
        split_seed: int = 0,
        max_train: int | None = None,
        max_test: int | None = None,
        **options: Any,
    ) -> None:
        train_fields = {f.name for f in attrs.fields(TrainConfig)}
        own = dict(type(self).task_options)
        unknown = sorted(set(options) - train_fields - set(own))
        if unknown:
            valid_names = sorted(
                train_fields
                | set(own)
                | {
                    "train",
                    "test",
                    "valid",
                    "format",
                    "data_options",
                    "test_fraction",
                    "split_seed",
                    "max_train",
                    "max_test",
                }
            )
            raise ConfigError(
                f"task {self.name!r}: unknown option(s) {unknown}; valid: {', '.join(valid_names)}."
            )
        self.config = attrs.evolve(
            self.defaults, **{k: v for k, v in options.items() if k in train_fields}
        )
        self.options = {**own, **{k: v for k, v in options.items() if k in own}}
        self.format = format or self.default_format
        self.data_options = dict(self.default_data_options if format is None else {})
        self.data_options.update(data_options or {})
        self._source = {"train": train, "test": test, "valid": valid}
        self.test_fraction = test_fraction
        self.split_seed = split_seed
        self.max_train, self.max_test = max_train, max_test
        self._split: Split | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, format={self.format!r}, config={self.config!r})"

    # -- data ---------------------------------------------------------------------------------------

    def data(self) -> Split:
        """The task's split (loaded once, subsampled to ``max_train`` / ``max_test``)."""
        if self._split is None:
            split = load_split(
                self.format,
                train=self._source["train"],
                test=self._source["test"],
                valid=self._source["valid"],
                test_fraction=self.test_fraction,
                split_seed=self.split_seed,
                options=self.data_options,
                kind=self.data_kind,
            )
            self._split = Split(
                train=subsample(split.train, self.max_train, self.split_seed),
                test=subsample(split.test, self.max_test, self.split_seed + 1),
                valid=split.valid,
            )
        return self._split

    def test_sequences(self) -> list[str]:
        """Every sequence (and pair partner) of the test split."""
        out = []
        for e in self.data().test:
            out.append(e.sequence)
            if e.sequence_b:
                out.append(e.sequence_b)
        return out

    # -- the run ------------------------------------------------------------------------------------

    def run(self, backbone: Backbone, *, seed: int) -> dict[str, float]:
        """Train the head (and backbone when fine-tuning) with ``seed``; return the test metrics."""
        split = self.data()
        train, test = list(split.train), list(split.test)
        self._prepare(train, test)
        device = backbone.torch_device
        cfg = self.config
        devices = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            adapter = backbone.fresh() if cfg.finetune else None
            runner = _Represent(self, backbone, adapter, {"train": train, "test": test})
            hidden, dtype = (
                runner.probe()
            )  # may load a model, which may touch the RNG: seed after it
            torch.manual_seed(seed)
            head = self._make_head(hidden).to(device=device, dtype=dtype)
            params = list(head.parameters())
            if adapter is not None:
                params += [p for p in adapter.model.parameters() if p.requires_grad]
            optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
            order = np.random.default_rng([int(seed), 0xB7])
            head.train()
            for _ in range(cfg.epochs):
                perm = order.permutation(len(train))
                for s in range(0, len(train), cfg.batch_size):
                    idx = perm[s : s + cfg.batch_size].tolist()
                    rep = runner.get("train", idx, grad=adapter is not None)
                    out = self._apply_head(head, rep)
                    loss = self._loss(out, rep, [train[i] for i in idx])
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
            head.eval()
            if adapter is not None:
                adapter.model.eval()
            preds: list[Any] = []
            with torch.no_grad():
                for s in range(0, len(test), cfg.batch_size):
                    idx = list(range(s, min(len(test), s + cfg.batch_size)))
                    rep = runner.get("test", idx, grad=False)
                    preds.extend(
                        self._predict(self._apply_head(head, rep), rep, [test[i] for i in idx])
                    )
        del adapter
        return self.score(preds, test)

    # -- objectives ---------------------------------------------------------------------------------

    def _prepare(self, train: Sequence[Example], test: Sequence[Example] = ()) -> None:
        obj = self.objective
        if obj == "multiclass":
            labels = [e.label for e in train]
            self._classes = sorted(set(labels), key=lambda x: (str(type(x)), x))
            if len(self._classes) < 2:
                raise InputError(
                    f"task {self.name!r}: the training split has one class ({self._classes})."
                )
            self._index = {c: i for i, c in enumerate(self._classes)}
            unseen = sorted({str(e.label) for e in test if e.label not in self._index})
            if unseen:
                raise InputError(
                    f"task {self.name!r}: test label(s) {unseen} do not occur in the training split "
                    f"(classes: {self._classes}); check the label spelling or the split."
                )
        elif obj == "residue-class":
            letters = sorted({c for e in train for c in e.label})
            self._classes = letters
            self._index = {c: i for i, c in enumerate(letters)}
        elif obj == "multilabel":
            self._n_labels = len(train[0].label)
        elif obj in ("regression", "pair-regression"):
            if obj == "regression":
                y = np.asarray([float(e.label) for e in train])
            else:
                y = np.concatenate(
                    [np.asarray(e.label)[np.triu_indices(len(e.sequence), 1)] for e in train]
                )
                y = y[~np.isnan(y)]
            standardize = bool(self.options.get("standardize", True))
            self._mean = float(y.mean()) if standardize else 0.0
            sd = float(y.std()) if standardize else 1.0
            self._std = sd if sd > 0 else 1.0

    def _out_features(self) -> int:
        if self.objective in ("multiclass", "residue-class"):
            return len(self._classes)
        if self.objective == "multilabel":
            return self._n_labels
        return 1

    def _make_head(self, hidden: int) -> nn.Module:
        cfg = self.config
        if self.kind == "pair-map":
            return PairwiseHead(hidden, 1, dim=int(self.options.get("pair_dim", 32)))
        if self.kind == "sequence-pair":
            return SequencePairHead(
                hidden,
                1,
                features=str(self.options.get("pair_features", "concat")),
                hidden=cfg.head_hidden,
                dropout=cfg.dropout,
            )
        opts: dict[str, Any] = {"dropout": cfg.dropout}
        if cfg.head == "mlp":
            opts["hidden"] = cfg.head_hidden
        return make_head(cfg.head, hidden, self._out_features(), **opts)

    def _apply_head(self, head: nn.Module, rep: Any) -> torch.Tensor:
        if self.kind == "sequence-pair":
            return head(rep[0], rep[1])
        if self.kind in ("residue", "pair-map"):
            return head(rep[0])
        return head(rep)

    def _class_targets(self, examples: Sequence[Example], device: torch.device) -> torch.Tensor:
        try:
            return torch.tensor([self._index[e.label] for e in examples], device=device)
        except KeyError as exc:
            raise InputError(
                f"task {self.name!r}: label {exc.args[0]!r} does not occur in the training split "
                f"(classes: {self._classes})."
            ) from None

    def _residue_targets(self, examples: Sequence[Example], mask: torch.Tensor) -> torch.Tensor:
        B, L = mask.shape
        y = torch.full((B, L), -100, dtype=torch.long)
        for b, e in enumerate(examples):
            n = int(mask[b].sum())
            y[b, :n] = torch.from_numpy(self._residue_codes(e)[:n])
        return y.to(mask.device)

    def _residue_codes(self, e: Example) -> np.ndarray:
        """Class index per residue of ``e`` (-100 where masked or the letter is unknown), cached."""
        cache: dict[int, np.ndarray] = self.__dict__.setdefault("_codes", {})
        key = id(e)
        if key not in cache:
            codes = np.asarray([self._index.get(c, -100) for c in e.label], dtype=np.int64)
            if e.mask is not None:
                codes[~np.asarray(e.mask, bool)] = -100
            cache[key] = codes
        return cache[key]

    def _pair_targets(
        self, examples: Sequence[Example], mask: torch.Tensor, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        B, L = mask.shape
        y = torch.zeros((B, L, L), dtype=dtype)
        valid = torch.zeros((B, L, L), dtype=torch.bool)
        for b, e in enumerate(examples):
            n = int(mask[b].sum())
            if self.objective == "pair-binary":
                for i, j in np.asarray(e.label).reshape(-1, 2).tolist():
                    if i < n and j < n:
                        y[b, i, j] = y[b, j, i] = 1.0
                valid[b, :n, :n] = True
            else:
                d = torch.as_tensor(np.asarray(e.label, dtype=np.float64)[:n, :n], dtype=dtype)
                known = ~torch.isnan(d)
                y[b, :n, :n] = torch.where(known, (d - self._mean) / self._std, torch.zeros_like(d))
                valid[b, :n, :n] = known
            valid[b].fill_diagonal_(False)
        return y.to(mask.device), valid.to(mask.device)

    def _loss(self, out: torch.Tensor, rep: Any, examples: Sequence[Example]) -> torch.Tensor:
        obj, device = self.objective, out.device
        if obj == "multiclass":
            return F.cross_entropy(out, self._class_targets(examples, device))
        if obj == "binary":
            y = torch.tensor([float(e.label) for e in examples], device=device, dtype=out.dtype)
            return F.binary_cross_entropy_with_logits(out.squeeze(-1), y)
        if obj == "multilabel":
            y = torch.tensor([list(e.label) for e in examples], device=device, dtype=out.dtype)
            return F.binary_cross_entropy_with_logits(out, y)
        if obj == "regression":
            y = torch.tensor(
                [(float(e.label) - self._mean) / self._std for e in examples],
                device=device,
                dtype=out.dtype,
            )
            return F.mse_loss(out.squeeze(-1), y)
        if obj == "residue-class":
            y = self._residue_targets(examples, rep[1])
            if not bool((y != -100).any()):
                return out.sum() * 0.0
            return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1), ignore_index=-100)
        y, valid = self._pair_targets(examples, rep[1], out.dtype)
        logits = out.squeeze(-1)[valid]
        if logits.numel() == 0:
            return out.sum() * 0.0
        if obj == "pair-binary":
            pw = self.options.get("pos_weight")
            weight = None if pw is None else torch.tensor(float(pw), dtype=out.dtype, device=device)
            return F.binary_cross_entropy_with_logits(logits, y[valid], pos_weight=weight)
        return F.mse_loss(logits, y[valid])

    def _predict(self, out: torch.Tensor, rep: Any, examples: Sequence[Example]) -> list[Any]:
        obj = self.objective
        o = out.detach().to(torch.float64).cpu()
        if obj == "multiclass":
            return [self._classes[int(k)] for k in o.argmax(-1)]
        if obj == "binary":
            return torch.sigmoid(o.squeeze(-1)).tolist()
        if obj == "multilabel":
            return list(torch.sigmoid(o).numpy())
        if obj == "regression":
            return (o.squeeze(-1) * self._std + self._mean).tolist()
        lengths = rep[1].sum(1).tolist()
        if obj == "residue-class":
            return [o[b, :n].argmax(-1).numpy() for b, n in enumerate(lengths)]
        if obj == "pair-binary":
            return [torch.sigmoid(o[b, :n, :n, 0]).numpy() for b, n in enumerate(lengths)]
        return [(o[b, :n, :n, 0] * self._std + self._mean).numpy() for b, n in enumerate(lengths)]

    def score(self, predictions: list[Any], examples: Sequence[Example]) -> dict[str, float]:
        """Metrics of ``predictions`` (one per test example) — defined by each task."""
        raise NotImplementedError


class _Represent:
    """Representations of the examples of a run, frozen (cached) or through a trainable adapter."""

    def __init__(
        self,
        task: SupervisedTask,
        backbone: Backbone,
        adapter: Any,
        splits: dict[str, list[Example]],
    ):
        self.task, self.backbone, self.adapter, self.splits = task, backbone, adapter, splits
        self.level = "pooled" if task.kind in ("sequence", "sequence-pair") else "residue"
        self.device = backbone.torch_device

    def _frozen(self, split: str, part: str) -> list[torch.Tensor]:
        exs = self.splits[split]
        seqs = [e.sequence if part == "a" else (e.sequence_b or "") for e in exs]
        # keyed by content: tasks that share a training file (or a test file) share its features
        digest = hashlib.sha256("\n".join(seqs).encode()).hexdigest()
        key = ("frozen", len(seqs), digest)
        return self.backbone.features(key, seqs, self.level, [e.id for e in exs])

    def probe(self) -> tuple[int, torch.dtype]:
        """Feature size and dtype of the representation."""
        if self.adapter is None:
            f = self._frozen("train", "a")[0]
            return int(f.shape[-1]), f.dtype
        with torch.no_grad():
            e = self.splits["train"][0]
            feats, _ = residue_features(self.adapter, [e.sequence[:8]], self.device, [e.id])
        return int(feats.shape[-1]), feats.dtype

    def _part(self, split: str, idx: list[int], part: str, grad: bool) -> Any:
        if self.adapter is None:
            feats = self._frozen(split, part)
            chosen = [feats[i] for i in idx]
            if self.level == "pooled":
                return torch.stack(chosen)
            L = max(int(c.shape[0]) for c in chosen)
            out = chosen[0].new_zeros((len(chosen), L, chosen[0].shape[-1]))
            mask = torch.zeros((len(chosen), L), dtype=torch.bool, device=out.device)
            for b, c in enumerate(chosen):
                out[b, : c.shape[0]] = c
                mask[b, : c.shape[0]] = True
            return out, mask
        exs = [self.splits[split][i] for i in idx]
        seqs = [e.sequence if part == "a" else (e.sequence_b or "") for e in exs]
        with torch.set_grad_enabled(grad):
            hidden, valid = residue_features(self.adapter, seqs, self.device, [e.id for e in exs])
            return pooled(hidden, valid) if self.level == "pooled" else (hidden, valid)

    def get(self, split: str, idx: list[int], *, grad: bool) -> Any:
        """The representation of ``split`` rows ``idx``."""
        if self.task.kind == "sequence-pair":
            return self._part(split, idx, "a", grad), self._part(split, idx, "b", grad)
        return self._part(split, idx, "a", grad)

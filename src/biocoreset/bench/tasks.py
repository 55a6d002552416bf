"""Built-in downstream tasks (paper Appendix B), registered through ``biocoreset_register_tasks``.

Each task's defaults follow the paper; every value can be overridden by keyword (see
:class:`~biocoreset.bench.supervised.TrainConfig` and each task's ``task_options``).

===============================  ===========  =====================  ======================  ===========
name                             title        head / backbone        recipe                  metrics
===============================  ===========  =====================  ======================  ===========
``rna-type``                     TypeCls      linear, fine-tuned     30 ep, bs 32, lr 1e-4   ACC, F1
``crispr-on-target``             CRI-On       linear, fine-tuned     30 ep, bs 32, lr 1e-4   SC, MSE
``rna-modification``             Modif        linear, fine-tuned     30 ep, bs 32, lr 5e-5   AUC
``rna-secondary-structure``      SS           pairwise, frozen       10 ep, bs 32, lr 1e-5   P, R, F1, MCC
``rna-contact-map``              Contact      pairwise, frozen       10 ep, bs 32, lr 1e-5   top-L..L/10
``rna-distance-map``             Distance     pairwise, frozen       10 ep, bs 32, lr 1e-5   R², SC, MAE, MSE
``rbp-binding``                  RBP          linear, frozen         10 ep, bs 32, lr 1e-5   ACC, AUPR, AUC
``protein-localization``         Bin          2-layer MLP, frozen    50 ep, bs 32, lr 1e-5   ACC
``protein-secondary-structure``  SS           2-layer MLP per res.   50 ep, bs 32, lr 1e-5   ACC (Q3)
``ppi-affinity``                 Aff          2-layer MLP on pair    50 ep, bs 32, lr 1e-5   MAE, RMSE
===============================  ===========  =====================  ======================  ===========

Deviation from the paper's text: for secondary structure it describes a head on the *mean-pooled*
representation, which cannot predict a base-pair map; we use a pairwise head on residue features
(:class:`~biocoreset.bench.heads.PairwiseHead`), trained with the same recipe.

Example:
    >>> from biocoreset.bench.data import Example
    >>> ex = [Example(id=str(i), sequence="ACGU" * 3, label=float(i)) for i in range(8)]
    >>> CRISPROnTargetTask(train=ex, test=ex, epochs=1).config.lr
    0.0001
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from biocoreset.bench import metrics as M
from biocoreset.bench.data import Example
from biocoreset.bench.protocol import MetricSpec
from biocoreset.bench.supervised import SupervisedTask, TrainConfig

__all__ = [
    "BUILTIN_TASKS",
    "CRISPROnTargetTask",
    "PPIAffinityTask",
    "ProteinLocalizationTask",
    "ProteinSecondaryStructureTask",
    "RBPBindingTask",
    "RNAContactMapTask",
    "RNADistanceMapTask",
    "RNAModificationTask",
    "RNASecondaryStructureTask",
    "RNATypeTask",
]


def _recipe(
    *, epochs: int, lr: float, finetune: bool, head: str = "linear", dropout: float = 0.0
) -> TrainConfig:
    """A paper recipe: AdamW, weight decay 0.01, batch 32."""
    return TrainConfig(
        epochs=epochs,
        lr=lr,
        weight_decay=0.01,
        batch_size=32,
        finetune=finetune,
        head=head,
        dropout=dropout,
    )


class RNATypeTask(SupervisedTask):
    """RNA type classification (nRC): accuracy and macro-F1."""

    name, title, group = "rna-type", "TypeCls", "rna-function"
    metrics = (MetricSpec("acc", "ACC(%)"), MetricSpec("f1", "F1(%)"))
    kind, objective, data_kind, default_format = "sequence", "multiclass", "sequence", "nrc"
    defaults = _recipe(epochs=30, lr=1e-4, finetune=True)

    def score(self, predictions: list[Any], examples: Sequence[Example]) -> dict[str, float]:
        y = [e.label for e in examples]
        return {"acc": M.accuracy(y, predictions), "f1": M.macro_f1(y, predictions)}


class CRISPROnTargetTask(SupervisedTask):
    """CRISPR on-target efficiency regression (DeepCRISPR): Spearman and MSE."""

    name, title, group = "crispr-on-target", "CRI-On", "rna-function"
    metrics = (
        MetricSpec("spearman", "SC(%)"),
        MetricSpec("mse", "MSE ↓", percent=False, higher_is_better=False),
    )
    kind, objective, data_kind, default_format = "sequence", "regression", "sequence", "deepcrispr"
    defaults = _recipe(epochs=30, lr=1e-4, finetune=True)
    task_options: ClassVar[dict[str, Any]] = {"standardize": True}

    def score(self, predictions: list[Any], examples: Sequence[Example]) -> dict[str, float]:
        y = [float(e.label) for e in examples]
        return {"spearman": M.spearman(y, predictions), "mse": M.mse(y, predictions)}


class RNAModificationTask(SupervisedTask):
    """RNA modification sites: AUC (binary, e.g. m6A) or mean AUC over labels (multi-label)."""

    name, title, group = "rna-modification", "Modif", "rna-function"
    metrics = (MetricSpec("auc", "AUC(%)"),)
    kind, objective, data_kind, default_format = "sequence", "binary", "sequence", "m6a"
    defaults = _recipe(epochs=30, lr=5e-5, finetune=True)

    def _prepare(self, train: Sequence[Example], test: Sequence[Example] = ()) -> None:
        multilabel = isinstance(train[0].label, (tuple, list, np.ndarray))
        self.objective = "multilabel" if multilabel else "binary"  # type: ignore[misc]
        super()._prepare(train, test)

    def score(self, predictions: list[Any], examples: Sequence[Example]) -> dict[str, float]:
        if self.objective == "multilabel":
            return {
                "auc": M.mean_auc(np.asarray([e.label for e in examples]), np.asarray(predictions))
            }
        return {"auc": M.roc_auc([e.label for e in examples], predictions)}


def _pair_map(e: Example, n: int) -> np.ndarray:
    m = np.zeros((n, n), dtype=bool)
    for i, j in np.asarray(e.label).reshape(-1, 2).tolist():
        if i < n and j < n:
            m[i, j] = m[j, i] = True
    return m


class RNASecondaryStructureTask(SupervisedTask):
    """Secondary structure as a base-pair map (bpRNA, ArchiveII): precision, recall, F1, MCC.

    Task options: ``threshold`` (pair probability, 0.5), ``pair_dim`` (32), ``pos_weight`` (BCE
    weight of the rare paired class; ``None``: 1).
    """

    name, title, group = "rna-secondary-structure", "SS", "rna-structure"
    metrics = (
        MetricSpec("precision", "Pre(%)"),
        MetricSpec("recall", "Rec(%)"),
        MetricSpec("f1", "F1(%)"),
        MetricSpec("mcc", "MCC(%)"),
    )
    kind, objective, data_kind, default_format = "pair-map", "pair-binary", "structure", "structure"
    defaults = _recipe(epochs=10, lr=1e-5, finetune=False)
    task_options: ClassVar[dict[str, Any]] = {"threshold": 0.5, "pair_dim": 32, "pos_weight": None}

    def score(self, predictions: list[Any], examples: Sequence[Example]) -> dict[str, float]:
        t = float(self.options["threshold"])
        truth = [_pair_map(e, p.shape[0]) for e, p in zip(examples, predictions, strict=True)]
        return M.basepair_scores(truth, [p >= t for p in predictions])


class RNAContactMapTask(SupervisedTask):
    """Contact map: long-range top-L, L/2, L/5, L/10 precision.

    Task options: ``min_separation`` (24), ``pair_dim`` (32), ``pos_weight`` (``None``).
    """

    name, title, group = "rna-contact-map", "Contact", "rna-structure"
    metrics = (
        MetricSpec("top_l", "L:1.0L(%)"),
        MetricSpec("top_l2", "L:0.5L(%)"),
        MetricSpec("top_l5", "L:0.2L(%)"),
        MetricSpec("top_l10", "L:0.1L(%)"),
    )
    kind, objective, default_format = "pair-map", "pair-binary", "contact-jsonl"
    data_kind = ("contact", "structure")
    defaults = _recipe(epochs=10, lr=1e-5, finetune=False)
    task_options: ClassVar[dict[str, Any]] = {
        "min_separation": 24,
        "pair_dim": 32,
        "pos_weight": None,
    }

    def score(self, predictions: list[Any], examples: Sequence[Example]) -> dict[str, float]:
        truth = [_pair_map(e, p.shape[0]) for e, p in zip(examples, predictions, strict=True)]
        return M.contact_precision(
            truth, predictions, min_separation=int(self.options["min_separation"])
        )


class RNADistanceMapTask(SupervisedTask):
    """Distance map regression: R², Spearman, MAE, MSE over all known pairs.

    Task options: ``standardize`` (train on z-scored distances, True), ``pair_dim`` (32).
    """

    name, title, group = "rna-distance-map", "Distance", "rna-structure"
    metrics = (
        MetricSpec("r2", "R²(%)"),
        MetricSpec("spearman", "SC(%)"),
        MetricSpec("mae", "MAE ↓", percent=False, higher_is_better=False),
        MetricSpec("mse", "MSE ↓", percent=False, higher_is_better=False),
    )
    kind, objective, data_kind, default_format = (
        "pair-map",
        "pair-regression",
        "distance",
        "distance-jsonl",
    )
    defaults = _recipe(epochs=10, lr=1e-5, finetune=False)
    task_options: ClassVar[dict[str, Any]] = {"standardize": True, "pair_dim": 32}

    def score(self, predictions: list[Any], examples: Sequence[Example]) -> dict[str, float]:
        truth = [
            np.asarray(e.label, dtype=np.float64)[: p.shape[0], : p.shape[0]]
            for e, p in zip(examples, predictions, strict=True)
        ]
        return M.distance_scores(truth, predictions)


class RBPBindingTask(SupervisedTask):
    """RBP–RNA interaction (GraphProt): accuracy, AUPR, AUC. Task option ``threshold`` (0.5)."""

    name, title, group = "rbp-binding", "RBP", "rna-structure"
    metrics = (
        MetricSpec("acc", "ACC(%)"),
        MetricSpec("aupr", "AUPR(%)"),
        MetricSpec("auc", "AUC(%)"),
    )
    kind, objective, data_kind, default_format = "sequence", "binary", "sequence", "graphprot"
    defaults = _recipe(epochs=10, lr=1e-5, finetune=False)
    task_options: ClassVar[dict[str, Any]] = {"threshold": 0.5}

    def score(self, predictions: list[Any], examples: Sequence[Example]) -> dict[str, float]:
        y = [int(e.label) for e in examples]
        p = np.asarray(predictions)
        t = float(self.options["threshold"])
        return {
            "acc": M.accuracy(y, (p >= t).astype(int)),
            "aupr": M.aupr(y, p),
            "auc": M.roc_auc(y, p),
        }


class ProteinLocalizationTask(SupervisedTask):
    """Binary localization (DeepLoc membrane-bound vs soluble; or TMbed): accuracy."""

    name, title, group = "protein-localization", "Bin", "protein"
    metrics = (MetricSpec("acc", "ACC(%)"),)
    kind, objective, data_kind, default_format = "sequence", "multiclass", "sequence", "deeploc"
    defaults = _recipe(epochs=50, lr=1e-5, finetune=False, head="mlp", dropout=0.1)

    def score(self, predictions: list[Any], examples: Sequence[Example]) -> dict[str, float]:
        return {"acc": M.accuracy([e.label for e in examples], predictions)}


class ProteinSecondaryStructureTask(SupervisedTask):
    """Per-residue 3-state secondary structure (NetSurfP-2.0 / CB513): Q3 accuracy over valid residues."""

    name, title, group = "protein-secondary-structure", "SS", "protein"
    metrics = (MetricSpec("q3", "ACC(%)"),)
    kind, objective, data_kind, default_format = "residue", "residue-class", "residue", "flip"
    defaults = _recipe(epochs=50, lr=1e-5, finetune=False, head="mlp", dropout=0.1)

    def score(self, predictions: list[Any], examples: Sequence[Example]) -> dict[str, float]:
        ys, ps = [], []
        for e, p in zip(examples, predictions, strict=True):
            codes = self._residue_codes(e)[: len(p)]
            keep = codes != -100
            ys.append(codes[keep])
            ps.append(np.asarray(p)[keep])
        return {"q3": M.accuracy(np.concatenate(ys), np.concatenate(ps))}


class PPIAffinityTask(SupervisedTask):
    """Protein–protein binding affinity regression on sequence pairs: MAE and RMSE.

    Task options: ``pair_features`` (``"concat"`` or order-invariant ``"symmetric"``), ``standardize``.
    """

    name, title, group = "ppi-affinity", "Aff", "protein"
    metrics = (
        MetricSpec("mae", "MAE ↓", percent=False, higher_is_better=False),
        MetricSpec("rmse", "RMSE ↓", percent=False, higher_is_better=False),
    )
    kind, objective, data_kind, default_format = "sequence-pair", "regression", "pair", "pairs"
    defaults = _recipe(epochs=50, lr=1e-5, finetune=False, head="mlp", dropout=0.1)
    task_options: ClassVar[dict[str, Any]] = {"pair_features": "concat", "standardize": True}

    def score(self, predictions: list[Any], examples: Sequence[Example]) -> dict[str, float]:
        y = [float(e.label) for e in examples]
        return {"mae": M.mae(y, predictions), "rmse": M.rmse(y, predictions)}


BUILTIN_TASKS: tuple[type[SupervisedTask], ...] = (
    RNATypeTask,
    CRISPROnTargetTask,
    RNAModificationTask,
    RNASecondaryStructureTask,
    RNAContactMapTask,
    RNADistanceMapTask,
    RBPBindingTask,
    ProteinLocalizationTask,
    ProteinSecondaryStructureTask,
    PPIAffinityTask,
)
"""Every built-in task class, in table order."""

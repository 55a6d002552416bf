"""Antibody downstream tasks (third replication round), registered as built-in task plugins.

============================  ========  =========================  ==========================
name                          title     head / backbone            metrics
============================  ========  =========================  ==========================
``antibody-v-family``         VFam      converged probe, frozen    ACC, F1
``antibody-chain``            Chain     converged probe, frozen    ACC, F1
``antibody-species``          Species   converged probe, frozen    ACC, F1
``antibody-j-gene``           JGene     converged probe, frozen    ACC, F1
``antibody-cdr3-length``      CDR3len   ridge probe, frozen        Spearman, MAE
``antibody-mlm-buckets``      MLM       none (masked LM head)      loss per bucket
============================  ========  =========================  ==========================

The probe (option ``probe="lbfgs"``, the default) is :func:`~biocoreset.bench.probe.fit_logistic`
(or :func:`~biocoreset.bench.probe.fit_ridge` for CDR3 length) on standardised mean-pooled frozen
features with penalty ``l2`` (default ``1e-3``): deterministic, so head seeds give identical rows
and the spread of a table comes from the pretraining seeds. ``probe="adamw"`` restores the harness's
SGD-trained linear head (20 epochs, batch 32, lr 1e-3), which on these features stops far from the
optimum (61% against 99% V-family accuracy on the same features).

The classification tasks read the TSV files of
:func:`~biocoreset.bench.antibody.heldout.write_task_data` (format ``labelled``): V family, chain
and species train on ``train.tsv`` and test on ``test-germline.tsv`` (real alleles of genes no
corpus contains) or ``test-simulated.tsv``. J gene and CDR3 length exist only for recombined
domains, so they train on ``train-simulated.tsv`` and test on ``test-simulated.tsv``: they need
more than the amino-acid composition of the framework, which an untrained network already keeps.
Labels are names: the J-gene task's classes are IMGT J names (15 in the third round), and a name
used in both species is one class (10 of those 15 merge a human and a mouse gene; V families
likewise). The simulated test set skews to heavy chains (see
:mod:`~biocoreset.bench.antibody.heldout` and ``docs/antibody-corpus.md``).
``antibody-mlm-buckets`` is the held-out masked-LM loss per V-gene-frequency bucket of ``mlm.tsv``,
and the same loss of a letter-frequency predictor (frequencies of the masked labels of ``train``)
on the same masks.

Example:
    >>> from biocoreset.bench.data import Example
    >>> ex = [Example(id=str(i), sequence="QVQLV", label="H" if i % 2 else "K") for i in range(4)]
    >>> AntibodyChainTask(train=ex, test=ex).options["probe"]
    'lbfgs'
"""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from biocoreset.bench import metrics as M
from biocoreset.bench.backbone import Backbone
from biocoreset.bench.data import Example
from biocoreset.bench.probe import fit_logistic, fit_ridge
from biocoreset.bench.protocol import MetricSpec
from biocoreset.bench.supervised import SupervisedTask, TrainConfig, _Represent
from biocoreset.errors import ConfigError, InputError, QualityWarning

__all__ = [
    "ANTIBODY_TASKS",
    "AntibodyCdr3LengthTask",
    "AntibodyChainTask",
    "AntibodyJGeneTask",
    "AntibodyMaskedLossTask",
    "AntibodySpeciesTask",
    "AntibodyVFamilyTask",
]

_RECIPE = TrainConfig(
    epochs=20, lr=1e-3, weight_decay=0.01, batch_size=32, finetune=False, head="linear"
)
_BUCKETS = ("common", "medium", "rare", "unseen")


PROBES = ("lbfgs", "adamw")


def _protein(label_field: str, **more: Any) -> dict[str, Any]:
    """Data options of a labelled-TSV task on protein sequences."""
    return {"label_field": label_field, "molecule": "protein", **more}


class _ProbeTask(SupervisedTask):
    """A frozen-feature task whose head is a converged probe unless ``probe="adamw"``."""

    group = "antibody"
    kind, data_kind, default_format = "sequence", "sequence", "labelled"
    defaults = _RECIPE
    task_options: ClassVar[dict[str, Any]] = {"probe": "lbfgs", "l2": 1e-3}

    @classmethod
    def __biocoreset_options__(cls) -> tuple[Any, ...]:
        """``SupervisedTask``'s own parameters (hidden by this ``__init__``'s ``**kw``), its
        :class:`TrainConfig` fields and ``task_options``."""
        return (SupervisedTask, *super().__biocoreset_options__())

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        if self.options["probe"] not in PROBES:
            raise ConfigError(
                f"task {self.name!r}: probe={self.options['probe']!r}; use one of {', '.join(PROBES)}."
            )
        try:
            l2 = float(self.options["l2"])
        except (TypeError, ValueError):
            l2 = float("nan")
        if not l2 > 0:
            raise ConfigError(
                f"task {self.name!r}: l2={self.options['l2']!r}; use a positive number."
            )

    def run(self, backbone: Backbone, *, seed: int) -> dict[str, float]:
        """Fit the probe on the frozen training features and score the test split. ``seed``
        matters only for ``probe="adamw"`` or ``finetune=True``, which train the harness's head
        (and, fine-tuning, the backbone) by AdamW instead."""
        if self.options["probe"] == "adamw" or self.config.finetune:
            return super().run(backbone, seed=seed)
        split = self.data()
        train, test = list(split.train), list(split.test)
        self._prepare(train, test)
        rep = _Represent(self, backbone, None, {"train": train, "test": test})
        x_train = rep.get("train", list(range(len(train))), grad=False)
        x_test = rep.get("test", list(range(len(test))), grad=False)
        l2 = float(self.options["l2"])
        if self.objective == "regression":
            probe = fit_ridge(x_train, [float(e.label) for e in train], l2=l2)
            preds: list[Any] = probe.predict(x_test).tolist()
        else:
            probe = fit_logistic(
                x_train,
                [self._index[e.label] for e in train],
                n_classes=len(self._classes),
                l2=l2,
            )
            preds = [self._classes[i] for i in probe.predict(x_test).tolist()]
        if not probe.converged:
            warnings.warn(
                f"task {self.name!r}: the probe did not converge on {backbone.name!r}'s features; "
                "its metrics may understate them.",
                QualityWarning,
                stacklevel=2,
            )
        return self.score(preds, test)


class _LabelTask(_ProbeTask):
    metrics = (MetricSpec("acc", "ACC(%)"), MetricSpec("f1", "F1(%)"))
    objective = "multiclass"

    def score(self, predictions: list[Any], examples: Sequence[Example]) -> dict[str, float]:
        y = [e.label for e in examples]
        return {"acc": M.accuracy(y, predictions), "f1": M.macro_f1(y, predictions)}


class AntibodyVFamilyTask(_LabelTask):
    """V-gene family of an antibody V domain (IGHV3, IGKV1...): accuracy and macro-F1."""

    name, title = "antibody-v-family", "VFam"
    default_data_options: ClassVar[dict[str, Any]] = _protein("v_family")


class AntibodyChainTask(_LabelTask):
    """Chain type (heavy, kappa, lambda) of an antibody V domain: accuracy and macro-F1."""

    name, title = "antibody-chain", "Chain"
    default_data_options: ClassVar[dict[str, Any]] = _protein("chain")


class AntibodySpeciesTask(_LabelTask):
    """Species (human, mouse) of an antibody V domain: accuracy and macro-F1."""

    name, title = "antibody-species", "Species"
    default_data_options: ClassVar[dict[str, Any]] = _protein("species")


class AntibodyJGeneTask(_LabelTask):
    """J name of a recombined antibody V domain (IGHJ4, IGKJ1...): accuracy and macro-F1.

    The label is the IMGT name alone, so human and mouse genes of one name are one class."""

    name, title = "antibody-j-gene", "JGene"
    default_data_options: ClassVar[dict[str, Any]] = _protein("j_gene")


class AntibodyCdr3LengthTask(_ProbeTask):
    """CDR3 length (IMGT, residues) of a recombined antibody V domain: Spearman ρ and MAE."""

    name, title = "antibody-cdr3-length", "CDR3len"
    metrics = (
        MetricSpec("spearman", "SC(%)"),
        MetricSpec("mae", "MAE ↓", percent=False, higher_is_better=False),
    )
    objective = "regression"
    default_data_options: ClassVar[dict[str, Any]] = _protein("cdr3_length", label_type="float")
    task_options: ClassVar[dict[str, Any]] = {"probe": "lbfgs", "l2": 1e-3, "standardize": True}

    def score(self, predictions: list[Any], examples: Sequence[Example]) -> dict[str, float]:
        y = [float(e.label) for e in examples]
        return {"spearman": M.spearman(y, predictions), "mae": M.mae(y, predictions)}


def _read_tsv(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    p = Path(path)
    if not p.is_file():
        raise InputError(
            f"{str(p)!r} not found: write it with write_task_data(folder, corpus, cfg)."
        )
    with p.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    if not rows or "sequence" not in rows[0]:
        raise InputError(f"{str(p)!r}: expected a TSV with 'id', 'sequence' and 'bucket' columns.")
    return rows


class AntibodyMaskedLossTask:
    """Held-out masked-LM loss per V-gene-frequency bucket, beside a letter-frequency predictor.

    ``run(backbone, seed)`` masks every test sequence with ``seed`` (the adapter's own masking) and
    returns the mean per-sequence loss of the backbone's masked-LM head over all sequences
    (``loss``), over the simulated domains only (``loss_simulated``: buckets common, medium and
    rare, without the real germline alleles of the ``unseen`` bucket) and per bucket
    (``loss_common`` ... ``loss_unseen``; ``nan`` for an empty bucket), and ``freq_loss``: the loss
    of predicting every masked label by its frequency among ``train``'s masked labels, on the same
    masks. Lower is better.

    With ``mask_seeds`` (e.g. ``(0, 1, 2, 3)``) every figure is the mean over those fixed masking
    seeds instead, whatever ``seed`` the harness passes: masks depend only on the seed and the
    sequence id, so every backbone with the same tokenizer sees the same masks and comparisons
    between models stay paired.

    Args:
        train: TSV whose sequences give the letter frequencies (``train.tsv``).
        test: TSV with a ``bucket`` column (``mlm.tsv``).
        batch_size: Sequences per forward pass.
        max_test: Use at most this many test rows (the first ones).
        mask_seeds: Fixed masking seeds to average over (``None``: the ``seed`` of ``run``).
    """

    name, title, group = "antibody-mlm-buckets", "MLM", "antibody"
    metrics = (
        MetricSpec("loss", "loss ↓", percent=False, higher_is_better=False),
        MetricSpec("loss_simulated", "simulated ↓", percent=False, higher_is_better=False),
        *(
            MetricSpec(f"loss_{b}", f"{b} ↓", percent=False, higher_is_better=False)
            for b in _BUCKETS
        ),
        MetricSpec("freq_loss", "letter freq ↓", percent=False, higher_is_better=False),
    )

    def __init__(
        self,
        *,
        train: str | os.PathLike[str],
        test: str | os.PathLike[str],
        batch_size: int = 64,
        max_test: int | None = None,
        mask_seeds: Sequence[int] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size={batch_size!r}: use a positive integer.")
        if mask_seeds is not None and (
            isinstance(mask_seeds, (str, bytes))
            or not list(mask_seeds)
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in mask_seeds)
        ):
            raise ConfigError(
                f"mask_seeds={mask_seeds!r}: give a non-empty list of integer seeds, e.g. "
                "[0, 1, 2, 3], or leave it out."
            )
        self.train_path, self.test_path = train, test
        self.batch_size, self.max_test = int(batch_size), max_test
        self.mask_seeds = None if mask_seeds is None else tuple(int(s) for s in mask_seeds)
        self._rows: list[dict[str, str]] | None = None

    def rows(self) -> list[dict[str, str]]:
        """The test rows (read once)."""
        if self._rows is None:
            rows = _read_tsv(self.test_path)
            self._rows = rows if self.max_test is None else rows[: int(self.max_test)]
        return self._rows

    def test_sequences(self) -> list[str]:
        """Every test sequence."""
        return [r["sequence"] for r in self.rows()]

    def _frequencies(self, adapter: Any) -> torch.Tensor:
        records = [(r["id"], r["sequence"]) for r in _read_tsv(self.train_path)]
        labels = []
        for i in range(0, len(records), 256):
            lab = adapter.collate(records[i : i + 256], seed=0).labels
            labels.append(lab[lab != -100].cpu())
        every = torch.cat(labels) if labels else torch.zeros(0, dtype=torch.long)
        if every.numel() == 0:
            raise InputError(f"{str(self.train_path)!r}: no masked labels to count frequencies.")
        counts = torch.bincount(every, minlength=max(int(every.max()) + 1, 1024)).double()
        return counts / counts.sum()

    def _losses(self, adapter: Any, logq: torch.Tensor, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Per-sequence masked loss of the model and of the frequency predictor under ``seed``."""
        records = [(r["id"], r["sequence"]) for r in self.rows()]
        model_loss, freq_loss = [], []
        with torch.no_grad():
            for i in range(0, len(records), self.batch_size):
                batch = adapter.collate(records[i : i + self.batch_size], seed=int(seed))
                model_loss.append(adapter.per_sample_loss(batch).double().cpu())
                lab = batch.labels.cpu()
                m = lab != -100
                idx = lab.clamp(min=0, max=logq.numel() - 1)
                nll = torch.where(m, -logq[idx], torch.zeros((), dtype=torch.double))
                freq_loss.append(nll.sum(1) / m.sum(1).clamp(min=1))
        return torch.cat(model_loss).numpy(), torch.cat(freq_loss).numpy()

    def run(self, backbone: Any, *, seed: int) -> dict[str, float]:
        """Masked loss of ``backbone`` (and of the frequency predictor) with masking seed ``seed``
        (or the mean over ``mask_seeds``)."""
        adapter = backbone.frozen()
        logq = torch.log(self._frequencies(adapter).clamp(min=1e-12))
        seeds = self.mask_seeds if self.mask_seeds is not None else (int(seed),)
        parts = [self._losses(adapter, logq, s) for s in seeds]
        loss = np.mean([p[0] for p in parts], axis=0)
        freq = np.mean([p[1] for p in parts], axis=0)
        buckets = np.asarray([r.get("bucket", "") for r in self.rows()])
        out = {"loss": float(loss.mean()), "freq_loss": float(freq.mean())}
        simulated = np.isin(buckets, ("common", "medium", "rare"))
        out["loss_simulated"] = float(loss[simulated].mean()) if simulated.any() else float("nan")
        for b in _BUCKETS:
            sel = buckets == b
            out[f"loss_{b}"] = float(loss[sel].mean()) if sel.any() else float("nan")
        return out


ANTIBODY_TASKS: tuple[type, ...] = (
    AntibodyVFamilyTask,
    AntibodyChainTask,
    AntibodySpeciesTask,
    AntibodyJGeneTask,
    AntibodyCdr3LengthTask,
    AntibodyMaskedLossTask,
)
"""Every antibody task class."""

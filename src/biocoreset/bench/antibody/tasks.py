"""Antibody downstream tasks (third replication round), registered as built-in task plugins.

========================  =======  =====================  ==================  ===============
name                      title    head / backbone        recipe              metrics
========================  =======  =====================  ==================  ===============
``antibody-v-family``     VFam     linear, frozen         20 ep, bs 32, 1e-3  ACC, F1
``antibody-chain``        Chain    linear, frozen         20 ep, bs 32, 1e-3  ACC, F1
``antibody-species``      Species  linear, frozen         20 ep, bs 32, 1e-3  ACC, F1
``antibody-mlm-buckets``  MLM      none (masked LM head)  --                  loss per bucket
========================  =======  =====================  ==================  ===============

The classification tasks read the TSV files of
:func:`~biocoreset.bench.antibody.heldout.write_task_data` (format ``labelled``, label column
``v_family`` / ``chain`` / ``species``): train on ``train.tsv``, test on ``test-germline.tsv`` (real
alleles of genes no corpus contains) or ``test-simulated.tsv``. ``antibody-mlm-buckets`` is the
held-out masked-LM loss per V-gene-frequency bucket of ``mlm.tsv``, and the same loss of a
letter-frequency predictor (frequencies of the masked labels of ``train``) on the same masks.

Example:
    >>> from biocoreset.bench.data import Example
    >>> ex = [Example(id=str(i), sequence="QVQLV", label="H" if i % 2 else "K") for i in range(4)]
    >>> AntibodyChainTask(train=ex, test=ex).config.epochs
    20
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from biocoreset.bench import metrics as M
from biocoreset.bench.data import Example
from biocoreset.bench.protocol import MetricSpec
from biocoreset.bench.supervised import SupervisedTask, TrainConfig
from biocoreset.errors import ConfigError, InputError

__all__ = [
    "ANTIBODY_TASKS",
    "AntibodyChainTask",
    "AntibodyMaskedLossTask",
    "AntibodySpeciesTask",
    "AntibodyVFamilyTask",
]

_RECIPE = TrainConfig(
    epochs=20, lr=1e-3, weight_decay=0.01, batch_size=32, finetune=False, head="linear"
)
_BUCKETS = ("common", "medium", "rare", "unseen")


class _LabelTask(SupervisedTask):
    group = "antibody"
    metrics = (MetricSpec("acc", "ACC(%)"), MetricSpec("f1", "F1(%)"))
    kind, objective, data_kind, default_format = "sequence", "multiclass", "sequence", "labelled"
    defaults = _RECIPE

    def score(self, predictions: list[Any], examples: Sequence[Example]) -> dict[str, float]:
        y = [e.label for e in examples]
        return {"acc": M.accuracy(y, predictions), "f1": M.macro_f1(y, predictions)}


class AntibodyVFamilyTask(_LabelTask):
    """V-gene family of an antibody V domain (IGHV3, IGKV1...): accuracy and macro-F1."""

    name, title = "antibody-v-family", "VFam"
    default_data_options: ClassVar[dict[str, Any]] = {
        "label_field": "v_family",
        "molecule": "protein",
    }


class AntibodyChainTask(_LabelTask):
    """Chain type (heavy, kappa, lambda) of an antibody V domain: accuracy and macro-F1."""

    name, title = "antibody-chain", "Chain"
    default_data_options: ClassVar[dict[str, Any]] = {"label_field": "chain", "molecule": "protein"}


class AntibodySpeciesTask(_LabelTask):
    """Species (human, mouse) of an antibody V domain: accuracy and macro-F1."""

    name, title = "antibody-species", "Species"
    default_data_options: ClassVar[dict[str, Any]] = {
        "label_field": "species",
        "molecule": "protein",
    }


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
    (``loss``) and per bucket (``loss_common`` ... ``loss_unseen``; ``nan`` for an empty bucket),
    and ``freq_loss``: the loss of predicting every masked label by its frequency among ``train``'s
    masked labels, on the same masks. Lower is better.

    Args:
        train: TSV whose sequences give the letter frequencies (``train.tsv``).
        test: TSV with a ``bucket`` column (``mlm.tsv``).
        batch_size: Sequences per forward pass.
        max_test: Use at most this many test rows (the first ones).
    """

    name, title, group = "antibody-mlm-buckets", "MLM", "antibody"
    metrics = (
        MetricSpec("loss", "loss ↓", percent=False, higher_is_better=False),
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
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size={batch_size!r}: use a positive integer.")
        self.train_path, self.test_path = train, test
        self.batch_size, self.max_test = int(batch_size), max_test
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

    def run(self, backbone: Any, *, seed: int) -> dict[str, float]:
        """Masked loss of ``backbone`` (and of the frequency predictor) with masking seed ``seed``."""
        adapter = backbone.frozen()
        freqs = self._frequencies(adapter)
        logq = torch.log(freqs.clamp(min=1e-12))
        rows = self.rows()
        records = [(r["id"], r["sequence"]) for r in rows]
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
        loss = torch.cat(model_loss).numpy()
        buckets = np.asarray([r.get("bucket", "") for r in rows])
        out = {"loss": float(loss.mean()), "freq_loss": float(torch.cat(freq_loss).mean())}
        for b in _BUCKETS:
            sel = buckets == b
            out[f"loss_{b}"] = float(loss[sel].mean()) if sel.any() else float("nan")
        return out


ANTIBODY_TASKS: tuple[type, ...] = (
    AntibodyVFamilyTask,
    AntibodyChainTask,
    AntibodySpeciesTask,
    AntibodyMaskedLossTask,
)
"""Every antibody task class."""

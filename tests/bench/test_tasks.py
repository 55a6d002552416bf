"""Built-in tasks: registration, protocol, learning on generated signals, determinism, options."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from biocoreset.adapters.hf import HFAdapter
from biocoreset.bench import Backbone, BenchmarkTask
from biocoreset.bench.data import Example
from biocoreset.bench.tasks import (
    BUILTIN_TASKS,
    CRISPROnTargetTask,
    PPIAffinityTask,
    ProteinLocalizationTask,
    ProteinSecondaryStructureTask,
    RBPBindingTask,
    RNAContactMapTask,
    RNADistanceMapTask,
    RNAModificationTask,
    RNASecondaryStructureTask,
    RNATypeTask,
)
from biocoreset.errors import ConfigError, InputError
from biocoreset.plugins import get_registry
from biocoreset.testing import tiny_esm

RNG = np.random.default_rng(0)


def _seq(n: int, p=(0.25, 0.25, 0.25, 0.25)) -> str:
    return "".join(RNG.choice(list("ACGU"), size=n, p=list(p)))


def _backbone(calls: list | None = None) -> Backbone:
    def load():
        if calls is not None:
            calls.append(1)
        model, tok = tiny_esm(dtype=torch.float32, seed=1)
        return HFAdapter(model, tok)

    return Backbone(name="tiny", load=load, data_size="0M", device="cpu")


CLS = [
    Example(
        id=f"c{i}",
        sequence=_seq(20, (0.55, 0.15, 0.15, 0.15) if i % 2 else (0.15, 0.15, 0.55, 0.15)),
        label="A-rich" if i % 2 else "G-rich",
    )
    for i in range(60)
]
BIN = [Example(id=e.id, sequence=e.sequence, label=int(e.label == "A-rich")) for e in CLS]


def _regression(n: int = 60) -> list[Example]:
    out = []
    for i in range(n):
        g = RNG.uniform(0.05, 0.7)
        s = _seq(20, ((1 - g) / 3, (1 - g) / 3, g, (1 - g) / 3))
        out.append(Example(id=f"r{i}", sequence=s, label=s.count("G") / len(s)))
    return out


REG = _regression()
RES = [
    Example(
        id=f"p{i}", sequence=(s := _seq(20)), label="".join("H" if c in "AG" else "C" for c in s)
    )
    for i in range(40)
]


def _gc_pairs(s: str) -> np.ndarray:
    return np.array(
        [(a, b) for a in range(len(s)) for b in range(a + 1, len(s)) if s[a] == "G" and s[b] == "C"]
    ).reshape(-1, 2)


SS = [Example(id=f"s{i}", sequence=(s := _seq(16)), label=_gc_pairs(s)) for i in range(40)]


def _dist(s: str) -> np.ndarray:
    x = np.arange(len(s), dtype=float)
    return np.abs(x[:, None] - x[None, :]) + np.array([c == "G" for c in s], float)[:, None]


DIST = [Example(id=f"d{i}", sequence=(s := _seq(30)), label=_dist(s)) for i in range(12)]
PPI = [
    Example(id=f"q{i}", sequence=e.sequence, sequence_b=e.sequence[::-1], label=float(e.label) * 10)
    for i, e in enumerate(REG[:30])
]


def test_every_builtin_is_registered_and_conforms():
    reg = get_registry()
    assert set(reg.names("task")) >= {cls.name for cls in BUILTIN_TASKS}
    assert len(BUILTIN_TASKS) == 10
    for cls in BUILTIN_TASKS:
        comp = reg.get("task", cls.name)
        assert comp.load() is cls and comp.source == "built-in" and comp.description
        assert (
            cls.metrics and cls.title and cls.group in ("rna-function", "rna-structure", "protein")
        )


def test_paper_defaults():
    assert RNATypeTask(train=CLS).config.finetune and RNATypeTask(train=CLS).config.epochs == 30
    assert RNAModificationTask(train=BIN).config.lr == 5e-5
    assert not RNASecondaryStructureTask(train=SS).config.finetune
    assert ProteinLocalizationTask(train=CLS).config.head == "mlp"
    assert ProteinLocalizationTask(train=CLS).config.epochs == 50
    assert RBPBindingTask(train=BIN).format == "graphprot"


@pytest.mark.parametrize(
    ("task", "check"),
    [
        (RNATypeTask(train=CLS, lr=1e-2, epochs=20, finetune=False), lambda m: m["acc"] >= 0.9),
        (RNATypeTask(train=CLS, lr=1e-3, epochs=5), lambda m: m["acc"] >= 0.75),  # fine-tuned
        (
            CRISPROnTargetTask(train=REG, lr=1e-2, epochs=30, finetune=False),
            lambda m: m["spearman"] > 0.8,
        ),
        (
            RNAModificationTask(train=BIN, lr=1e-2, epochs=20, finetune=False),
            lambda m: m["auc"] > 0.9,
        ),
        (
            RBPBindingTask(train=BIN, format="labelled", lr=1e-2, epochs=20),
            lambda m: m["auc"] > 0.9,
        ),
        (
            ProteinLocalizationTask(train=CLS, format="labelled", lr=1e-2, epochs=20),
            lambda m: m["acc"] >= 0.9,
        ),
        (
            ProteinSecondaryStructureTask(train=RES, format="residue-labels", lr=1e-2, epochs=20),
            lambda m: m["q3"] > 0.85,
        ),
        (RNASecondaryStructureTask(train=SS, lr=1e-2, epochs=30), lambda m: m["mcc"] > 0.3),
        (
            RNAContactMapTask(train=SS, format="structure", lr=1e-2, epochs=30, min_separation=2),
            lambda m: m["top_l5"] > 0.5,
        ),
        (RNADistanceMapTask(train=DIST, lr=1e-2, epochs=40), lambda m: m["r2"] > 0.0),
    ],
    ids=lambda x: getattr(x, "name", ""),
)
def test_tasks_learn_a_planted_signal(task, check):
    assert isinstance(task, BenchmarkTask)
    metrics = task.run(_backbone(), seed=0)
    assert set(metrics) == {m.key for m in task.metrics}
    assert all(np.isfinite(v) for v in metrics.values()), metrics
    assert check(metrics), metrics


def test_ppi_affinity_beats_the_mean_predictor():
    task = PPIAffinityTask(train=PPI, lr=1e-2, epochs=40)
    m = task.run(_backbone(), seed=0)
    split = task.data()
    mean = np.mean([e.label for e in split.train])
    baseline = np.mean([abs(e.label - mean) for e in split.test])
    assert m["mae"] < 0.6 * baseline, (m, baseline)
    assert m["rmse"] >= m["mae"]


def test_same_seed_same_result_other_seed_other_head():
    task = RNASecondaryStructureTask(train=SS, lr=1e-2, epochs=3)
    bb = _backbone()
    a, b, c = task.run(bb, seed=0), task.run(bb, seed=0), task.run(bb, seed=1)
    assert a == b and a != c


def test_frozen_features_are_computed_once_and_finetuning_uses_fresh_copies():
    calls: list = []
    bb = _backbone(calls)
    frozen = RNATypeTask(train=CLS, finetune=False, epochs=1)
    frozen.run(bb, seed=0)
    frozen.run(bb, seed=1)
    assert len(calls) == 1  # one frozen model, features cached across seeds
    before = {k: v.clone() for k, v in bb.frozen().model.state_dict().items()}
    tuned = RNATypeTask(train=CLS, epochs=1, lr=1e-2)
    tuned.run(bb, seed=0)
    tuned.run(bb, seed=1)
    assert len(calls) == 3  # a fresh backbone per fine-tuning run
    after = bb.frozen().model.state_dict()
    # exact: a frozen backbone is left unchanged
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_options_and_data_errors():
    with pytest.raises(
        ConfigError, match=r"task 'rna-type': unknown option\(s\) \['epoch'\]; valid: .*epochs"
    ):
        RNATypeTask(train=CLS, epoch=3)
    with pytest.raises(ConfigError, match="head must be one of linear, mlp"):
        RNATypeTask(train=CLS, head="cnn")
    with pytest.raises(ConfigError, match="this task needs sequence"):
        RNATypeTask(train=CLS, format="flip").data()
    test = [Example(id="t", sequence="ACGU", label="never-seen")]
    with pytest.raises(
        InputError, match=r"test label\(s\) \[.never-seen.\] do not occur in the training split"
    ):
        RNATypeTask(train=CLS, test=test, epochs=1, finetune=False).run(_backbone(), seed=0)
    small = RNATypeTask(train=CLS, max_train=10, max_test=5)
    assert (len(small.data().train), len(small.data().test)) == (10, 5)
    assert len(small.test_sequences()) == 5
    assert len(PPIAffinityTask(train=PPI).test_sequences()) == 2 * len(
        PPIAffinityTask(train=PPI).data().test
    )


def test_multilabel_modification_reports_mean_auc():
    ex = [Example(id=e.id, sequence=e.sequence, label=(e.label, 1 - e.label)) for e in BIN]
    task = RNAModificationTask(train=ex, lr=1e-2, epochs=20, finetune=False)
    m = task.run(_backbone(), seed=0)
    assert task.objective == "multilabel" and m["auc"] > 0.9

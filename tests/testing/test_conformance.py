"""The conformance kit: every built-in passes it, and a deliberately broken component of each kind
fails it (so the checks can fail)."""

from __future__ import annotations

from typing import ClassVar

import attrs
import numpy as np
import pytest
import torch

from biocoreset.curvature.diagonal import DiagonalFisher
from biocoreset.curvature.identity import IdentityCurvature
from biocoreset.curvature.kfac import EKFAC, KFAC
from biocoreset.plugins import get_registry
from biocoreset.plugins.manager import BUILTIN_PLUGINS
from biocoreset.scorers.self_influence import SelfInfluenceScorer
from biocoreset.selectors.topk import TopKSelector
from biocoreset.testing import (
    TinyAdapter,
    adapter_checks,
    check_adapter,
    check_curvature,
    check_protocols,
    check_scorer,
    check_selector,
    checks_for,
    parametrize_with_checks,
    selector_checks,
    tiny_adapter,
)
from biocoreset.testing.curvature import dense_diagonal, dense_kfac
from biocoreset.testing.reference import flatten_block

BUILTIN = {
    kind: [c for c in get_registry().components(kind) if c.plugin in BUILTIN_PLUGINS]
    for kind in ("curvature", "scorer", "selector")
}


# -- the built-ins pass ----------------------------------------------------------------------------


@parametrize_with_checks([c.load() for c in BUILTIN["curvature"] + BUILTIN["scorer"]])
def test_builtin_curvatures_and_scorers_pass(check):
    check()


def test_self_influence_passes_with_every_builtin_curvature():
    for curvature in (IdentityCurvature(), KFAC(), EKFAC(damping=1e-3)):
        check_scorer(SelfInfluenceScorer(), curvature=curvature)


@parametrize_with_checks(
    # the cluster selector needs a cluster file and ids: tests/selectors/test_cluster.py checks it
    [c.create() for c in BUILTIN["selector"] if c.name != "cluster"] + [tiny_adapter()]
)
def test_builtin_selectors_and_the_tiny_adapter_pass(check):
    check()


def test_tiny_adapter_passes_in_one_call():
    check_adapter(tiny_adapter(), engine="loop")


def test_named_checks_have_one_id_each():
    names = [c.name for c in adapter_checks(tiny_adapter())]
    assert names[0] == "TinyAdapter-protocol" and len(set(names)) == len(names) == 8 + 3
    assert [c.name.split("-", 1)[1] for c in checks_for(DiagonalFisher)][:2] == [
        "protocol",
        "metadata_json",
    ]
    with pytest.raises(TypeError, match="not an adapter, curvature, scorer or selector"):
        checks_for(object())


def test_hf_adapter_passes_on_tiny_bert():
    from biocoreset.adapters.hf import HFAdapter
    from biocoreset.testing import tiny_bert

    check_adapter(HFAdapter(*tiny_bert()))


@pytest.mark.slow
def test_rnafm_and_esmc_adapters_pass():
    from biocoreset.plugins import create

    check_adapter(create("adapter", "rna-fm", size="tiny", dtype="float64"))
    pytest.importorskip("esm.models.esmc")
    check_adapter(create("adapter", "esmc", model_name="tiny", dtype="float64"))


def test_check_protocols_reports_capabilities():
    from biocoreset.grads import make_engine

    kfac = ["CurvatureEstimator", "MultiPassCurvature", "SavableCurvature"]
    assert check_protocols(KFAC()) == check_protocols(EKFAC()) == kfac
    assert check_protocols(DiagonalFisher()) == ["CurvatureEstimator"]
    adapter = tiny_adapter()
    # validate has a neutral body on AdapterBase (the sequence unchanged): every adapter has it
    assert check_protocols(adapter) == ["ModelAdapter", "SupportsValidation", "SupportsEncode"]
    assert check_protocols(make_engine(adapter, adapter.scored_parameters())) == ["Engine"]
    assert check_protocols(make_engine(adapter, adapter.scored_parameters(), engine="loop")) == [
        "Engine"
    ]


# -- broken components fail ------------------------------------------------------------------------


class BatchMeanAdapter(TinyAdapter):
    """Broken: every sample's loss is the batch mean (not batch-separable)."""

    def per_sample_loss(self, batch):
        loss = super().per_sample_loss(batch)
        return loss.mean().expand_as(loss)


class OrderMaskingAdapter(TinyAdapter):
    """Broken: the masking seed depends on the record's position in the batch."""

    def collate(self, records, *, seed):
        rows = [
            super(OrderMaskingAdapter, self).collate([r], seed=seed + i)
            for i, r in enumerate(records)
        ]
        width = max(r.input_ids.shape[1] for r in rows)

        def pad(t, fill):
            return torch.nn.functional.pad(t, (0, width - t.shape[1]), value=fill)

        first = rows[0]
        return attrs.evolve(
            first,
            ids=tuple(r.ids[0] for r in rows),
            input_ids=torch.cat([pad(r.input_ids, self.pad_token_id) for r in rows]),
            attention_mask=torch.cat([pad(r.attention_mask, 0) for r in rows]),
            labels=torch.cat([pad(r.labels, -100) for r in rows]),
            lengths=torch.cat([r.lengths for r in rows]),
        )


def _broken_adapter(cls):
    good = tiny_adapter()
    return cls(good.model)


def test_check_adapter_fails_a_loss_that_is_not_batch_separable():
    with pytest.raises(AssertionError, match="not batch-separable"):
        check_adapter(_broken_adapter(BatchMeanAdapter))


def _failing(checks):
    failed = []
    for check in checks:
        try:
            check()
        except AssertionError:
            failed.append(check.name.split("-", 1)[1])
    return failed


def test_a_broken_component_fails_only_its_named_check():
    assert _failing(adapter_checks(_broken_adapter(BatchMeanAdapter))) == [
        "loss_batch_separable",
        "loss_free_of_batch_companions",  # the batch mean depends on the companions too
    ]
    assert _failing(selector_checks(BadSelector())) == ["budget_indices"]


def test_check_adapter_fails_masking_that_depends_on_the_batch():
    with pytest.raises(AssertionError, match="depends on the other records"):
        check_adapter(_broken_adapter(OrderMaskingAdapter))


def test_check_adapter_fails_wrong_engine_gradients(monkeypatch):
    from biocoreset.grads.engine import HookEngine

    real = HookEngine.run

    def scaled(self, batch, on_block=None):
        if on_block is None:
            return real(self, batch, None)

        def wrong(factors):
            grads = {n: 1.01 * g for n, g in factors.per_sample_grads().items()}
            factors.per_sample_grads = lambda: grads
            on_block(factors)

        return real(self, batch, wrong)

    monkeypatch.setattr(HookEngine, "run", scaled)
    with pytest.raises(AssertionError, match=r"per-sample gradient of .* differs from brute force"):
        check_adapter(tiny_adapter())


@attrs.define(kw_only=True, eq=False)
class ForgetsDamping(DiagonalFisher):
    """Broken: records λ but applies 1/F without it (F + 1e-9 to stay finite)."""

    name: ClassVar[str] = "forgets-damping"

    def quadratic_form(self, factors):
        return factors.weighted_squared_norms(
            {n: 1.0 / (self.fisher[n] + 1e-9) for n in factors.block.params}
        )


@attrs.define(kw_only=True, eq=False)
class SquaresTheGradient(DiagonalFisher):
    """Broken: not a quadratic form (fourth power of the gradient)."""

    name: ClassVar[str] = "squares"

    def quadratic_form(self, factors):
        return sum(g.flatten(1).pow(4).sum(1) for g in factors.per_sample_grads().values()).to(
            torch.float64
        )


@attrs.define(kw_only=True, eq=False)
class WrongKronecker(KFAC):
    """Broken: pairs ``A ⊗ S`` with the row-stacked gradient (it needs the column-stacked one)."""

    def quadratic_form(self, factors):
        kb = self.blocks.get(factors.block.name)
        if kb is None:
            return super().quadratic_form(factors)
        x, d = self._factors(factors, kb)
        g = torch.bmm(d.transpose(1, 2), x)  # [B, d_out, d_in]
        a, s = kb.factors()
        c = torch.kron(a, s) + self.damping * torch.eye(a.shape[0] * s.shape[0], dtype=a.dtype)
        v = g.reshape(g.shape[0], -1)  # row-stacked
        return (v * torch.linalg.solve(c, v.T).T).sum(1)


def test_check_curvature_fails_a_curvature_that_ignores_damping():
    with pytest.raises(AssertionError, match=r"differs from the explicit \(C \+ λI\)⁻¹"):
        check_curvature(ForgetsDamping(), dense=dense_diagonal)


def test_check_curvature_fails_what_is_not_a_quadratic_form():
    with pytest.raises(AssertionError, match="quadratic_form on the engine's factors differs"):
        check_curvature(SquaresTheGradient())


def test_check_curvature_fails_a_wrong_kronecker_form():
    check_curvature(KFAC(), dense=dense_kfac)
    with pytest.raises(AssertionError, match=r"block '(up|down|head)'.*explicit"):
        check_curvature(WrongKronecker(), dense=dense_kfac)


def test_check_curvature_needs_declared_options():
    def make(**kwargs):
        return DiagonalFisher()

    with pytest.raises(AssertionError, match="declare its options"):
        check_curvature(make)


@attrs.frozen(kw_only=True)
class BatchNormalisedScorer(SelfInfluenceScorer):
    """Broken: divides by the batch mean (a score depends on the other records)."""

    def score_batch(self, adapter, batch, engine, curvature):
        scores, losses = super().score_batch(adapter, batch, engine, curvature)
        return scores / scores.mean(), losses


@attrs.frozen(kw_only=True)
class OffByAFactorScorer(SelfInfluenceScorer):
    """Broken: twice the self-influence."""

    def score_batch(self, adapter, batch, engine, curvature):
        scores, losses = super().score_batch(adapter, batch, engine, curvature)
        return 2 * scores, losses


def test_check_scorer_fails_batch_dependent_scores():
    with pytest.raises(AssertionError, match="scores depend on"):
        check_scorer(BatchNormalisedScorer())


def test_check_scorer_fails_a_wrong_reference():
    def reference(bf, curvature):
        return check_scorer_reference(bf, curvature)

    with pytest.raises(AssertionError, match="differ from the brute-force reference"):
        check_scorer(OffByAFactorScorer(), reference=reference)
    with pytest.raises(AssertionError, match="differ from the brute-force reference"):
        check_scorer(OffByAFactorScorer())  # the reference it inherits (reference_scores)
    check_scorer(
        SelfInfluenceScorer(), reference=reference
    )  # the same reference passes the real one


def check_scorer_reference(bf, curvature):
    """Σ g² / (F + λ) with F, λ read from the fitted diagonal Fisher."""
    total = torch.zeros(len(bf.records), dtype=torch.float64)
    for block in bf.blocks:
        f = flatten_block(block, {n: curvature.fisher[n][None] for n in block.params})[0]
        total += (bf.grads[block.name].square() / (f + curvature.damping)).sum(1)
    return total


class BadSelector:
    """Broken: returns duplicates."""

    name = "bad"

    def select(self, scores, budget, *, seed=0):
        return np.zeros(budget, dtype=np.int64)


def test_check_selector_fails_duplicates():
    check_selector(TopKSelector())
    with pytest.raises(AssertionError, match="duplicates"):
        check_selector(BadSelector())

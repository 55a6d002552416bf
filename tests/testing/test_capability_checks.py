"""Conformance checks chosen by capability: each optional capability of an adapter adds its own
check, every check is a top-level function that runs alone, a deliberately broken adapter fails
the check of the capability it breaks, and a scorer supplies its own brute-force reference."""

from __future__ import annotations

from typing import ClassVar

import attrs
import pytest
import torch

from biocoreset.curvature.diagonal import DiagonalFisher
from biocoreset.scorers.base import BlockScorer
from biocoreset.scorers.grad_norm import GradNormScorer
from biocoreset.testing import TinyAdapter, adapter_checks, scorer_checks, tiny_adapter
from biocoreset.testing.adapter_conformance import (
    ADAPTER_CHECKS,
    AdapterCase,
    capability_checks,
    encode_agrees_with_collate,
    loss_free_of_batch_companions,
    probe_batch_runs_through_engine,
    truncation_honours_policy,
)
from biocoreset.testing.curvature import (
    CurvatureFit,
    quadratic_form_matches_brute_force,
    symmetric_psd,
)
from biocoreset.testing.kit import kit_records
from biocoreset.testing.scorer_conformance import ScorerRun, scores_match_reference


def _adapter(cls=TinyAdapter, **options):
    return cls(tiny_adapter().model, **options)


class ProbingAdapter(TinyAdapter):
    """Supplies its own probe batch: five collated records."""

    def probe_batch(self):
        return self.collate(kit_records(5, 0), seed=0)


class ShortProbeAdapter(TinyAdapter):
    """Broken: a probe batch of three rows (the engine's probe needs five)."""

    def probe_batch(self):
        return self.collate(kit_records(3, 0), seed=0)


class WidthLossAdapter(TinyAdapter):
    """Broken: scales each loss with the batch's padded width, yet is (derived as)
    composition-free."""

    def per_sample_loss(self, batch):
        return super().per_sample_loss(batch) * batch.input_ids.shape[1] / 10


class UncutAdapter(TinyAdapter):
    """Broken: never cuts a long record, whatever long_policy says."""

    def _truncate(self, record_id, ids, maskable):
        return ids, maskable


class BackwardsAdapter(TinyAdapter):
    """Broken: collate() reads each sequence backwards; encode() does not."""

    def collate(self, records, *, seed, draw=0, draws=1):
        flipped = [(rid, seq[::-1]) for rid, seq in records]
        return super().collate(flipped, seed=seed, draw=draw, draws=draws)


def _names(checks):
    return [c.__name__ for c in checks]


def test_capabilities_choose_the_checks():
    assert _names(capability_checks(_adapter())) == [
        "loss_free_of_batch_companions",
        "truncation_honours_policy",
        "encode_agrees_with_collate",
    ]
    assert _names(capability_checks(_adapter(ProbingAdapter)))[0] == (
        "probe_batch_runs_through_engine"
    )
    # the paper's loss over the padded batch is not composition-free: no companion check
    assert "loss_free_of_batch_companions" not in _names(
        capability_checks(_adapter(loss_mode="paper-compat"))
    )
    ids = [c.name for c in adapter_checks(_adapter(ProbingAdapter))]
    assert ids[: len(ADAPTER_CHECKS)] == [f"ProbingAdapter-{c.__name__}" for c in ADAPTER_CHECKS]
    assert ids[len(ADAPTER_CHECKS)] == "ProbingAdapter-probe_batch_runs_through_engine"


def test_each_capability_check_runs_alone_on_a_good_adapter():
    adapter = _adapter(ProbingAdapter)
    for check in capability_checks(adapter):
        check(adapter)
    truncation_honours_policy(_adapter(max_length=6))
    truncation_honours_policy(_adapter(max_length=6, truncation="first-tokens"))
    truncation_honours_policy(_adapter(max_length=6, long_policy="error"))
    encode_agrees_with_collate(_adapter(loss_mode="paper-compat"), AdapterCase(seed=3))


def test_a_broken_probe_batch_fails():
    with pytest.raises(AssertionError, match="probe_batch\\(\\) must return a Batch of 5 rows"):
        probe_batch_runs_through_engine(_adapter(ShortProbeAdapter))


def test_a_loss_that_depends_on_the_companions_fails():
    with pytest.raises(AssertionError, match="a long companion in the batch changes the losses"):
        loss_free_of_batch_companions(_adapter(WidthLossAdapter))


@pytest.mark.parametrize("policy", ["truncate", "error"])
def test_a_long_record_that_is_not_cut_fails(policy):
    adapter = _adapter(UncutAdapter, max_length=6, long_policy=policy)
    with pytest.raises(AssertionError, match="long_policy="):
        truncation_honours_policy(adapter)


def test_encode_that_disagrees_with_collate_fails():
    failed = []
    for check in adapter_checks(_adapter(BackwardsAdapter)):
        try:
            check()
        except AssertionError:
            failed.append(check.name.split("-", 1)[1])
    assert "encode_agrees_with_collate" in failed
    with pytest.raises(AssertionError, match="is not encode\\(\\)'s tokens"):
        encode_agrees_with_collate(_adapter(BackwardsAdapter))


@attrs.frozen(kw_only=True)
class SquaredNormScorer(BlockScorer):
    """A plugin scorer with its own reference: ‖g‖², stated in brute-force terms."""

    name: ClassVar[str] = "squared-norm"

    def block_values(self, factors, curvature):
        return factors.squared_norms()

    def reference_scores(self, brute_force, curvature):
        return sum(g.square().sum(1) for g in brute_force.grads.values())


@attrs.frozen(kw_only=True)
class WrongReferenceScorer(SquaredNormScorer):
    """Broken: its reference says ‖g‖ while it scores ‖g‖²."""

    def reference_scores(self, brute_force, curvature):
        return super().reference_scores(brute_force, curvature).sqrt()


@attrs.frozen(kw_only=True)
class NoReferenceScorer(BlockScorer):
    """A scorer that states no reference."""

    name: ClassVar[str] = "no-reference"

    def block_values(self, factors, curvature):
        return factors.squared_norms()


def test_a_scorer_supplies_its_own_reference():
    scores_match_reference(ScorerRun.build(SquaredNormScorer))
    scores_match_reference(ScorerRun.build(GradNormScorer()))
    with pytest.raises(AssertionError, match="differ from the brute-force reference"):
        scores_match_reference(ScorerRun.build(WrongReferenceScorer()))
    names = [c.name.split("-", 1)[1] for c in scorer_checks(NoReferenceScorer())]
    assert "scores_match_reference" not in names and "batch_independent" in names
    ref = lambda bf, curvature: sum(g.square().sum(1) for g in bf.grads.values())  # noqa: E731
    checks = list(scorer_checks(NoReferenceScorer(), reference=ref))
    assert checks[-1].name == "NoReferenceScorer-scores_match_reference"
    for check in checks:
        check()
    assert torch.is_tensor(ScorerRun.build(NoReferenceScorer).scores)


@attrs.define(kw_only=True, eq=False)
class CubesTheGradient(DiagonalFisher):
    """Broken: not a quadratic form (|g|³)."""

    name: ClassVar[str] = "cubes"

    def quadratic_form(self, factors):
        grads = factors.per_sample_grads().values()
        return sum(g.flatten(1).abs().pow(3).sum(1) for g in grads).to(torch.float64)


def test_a_curvature_check_runs_alone():
    fitted = CurvatureFit.build(DiagonalFisher)
    symmetric_psd(fitted)
    quadratic_form_matches_brute_force(fitted)
    with pytest.raises(AssertionError, match="quadratic_form on the engine's factors differs"):
        quadratic_form_matches_brute_force(CurvatureFit.build(CubesTheGradient()))

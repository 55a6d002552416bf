"""The scorer conformance checks, each a top-level function of one :class:`ScorerRun` (the
scorer run once on the tiny float64 model) that raises :class:`AssertionError` saying what failed.

The reference a scorer's scores are compared with is its own: the ``reference=`` given to
:func:`~biocoreset.testing.check_scorer`, else the scorer's ``reference_scores`` method
(:class:`~biocoreset.protocols.SupportsReference`, which every built-in scorer has). A scorer
with neither is not compared (:func:`reference_checks` yields nothing for it).

Example:
    >>> from biocoreset.scorers.loss import LossScorer
    >>> run = ScorerRun.build(LossScorer)
    >>> scores_match_reference(run)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs
import torch

from biocoreset.protocols import CurvatureEstimator, Scorer, SupportsReference
from biocoreset.testing.kit import F64, close, instance, kit_records
from biocoreset.testing.models import tiny_adapter
from biocoreset.testing.reference import BruteForce, brute_force, fit

__all__ = [
    "SCORER_CHECKS",
    "Reference",
    "ScorerRun",
    "batch_independent",
    "losses_match_brute_force",
    "protocol",
    "reference_checks",
    "scores_match_reference",
    "scores_shape",
]

Reference = Callable[[BruteForce, CurvatureEstimator | None], torch.Tensor]
"""``(BruteForce of the scored records, fitted curvature) -> [N] scores``."""


@attrs.frozen(kw_only=True)
class ScorerRun:
    """One scorer run on the tiny float64 model, shared by the scorer checks.

    Attributes:
        scorer: The scorer (built from its factory when a factory was given).
        adapter: The tiny float64 adapter.
        engine: Its gradient engine.
        curvature: The fitted curvature (``None`` for a scorer without one).
        records: The scored records.
        scores: ``score_batch``'s scores of :attr:`records`.
        losses: ``score_batch``'s losses.
        bf: Brute-force quantities of :attr:`records`.
        reference: The reference scores (``None``: none was given and the scorer states none).
        seed: Seed of the records and the masking.
        rtol: Relative tolerance.
    """

    scorer: Any
    adapter: Any
    engine: Any
    curvature: Any
    records: list[tuple[str, str]]
    scores: torch.Tensor
    losses: torch.Tensor
    bf: BruteForce
    reference: Reference | None
    seed: int
    rtol: float

    @classmethod
    def build(
        cls,
        scorer: Any,
        *,
        curvature: Any = None,
        reference: Reference | None = None,
        seed: int = 0,
        rtol: float = 1e-6,
    ) -> ScorerRun:
        """Build the scorer (from its factory), fit its curvature (default: the diagonal
        Fisher) when it needs one, and score four random records (the arguments are
        :func:`~biocoreset.testing.check_scorer`'s)."""
        from biocoreset.grads import make_engine

        made = instance(scorer, Scorer)
        adapter = tiny_adapter(seed=seed)
        engine = make_engine(adapter, adapter.scored_parameters())
        if made.needs_curvature:
            if curvature is None:
                from biocoreset.curvature.diagonal import DiagonalFisher

                curvature = DiagonalFisher(dtype="float64")
            fit(curvature, adapter, engine, kit_records(6, seed + 1), seed=seed)
        recs = kit_records(4, seed)
        scores, losses = made.score_batch(
            adapter, adapter.collate(recs, seed=seed), engine, curvature
        )
        if reference is None and isinstance(made, SupportsReference):
            reference = made.reference_scores
        return cls(
            scorer=made,
            adapter=adapter,
            engine=engine,
            curvature=curvature,
            records=recs,
            scores=scores,
            losses=losses,
            bf=brute_force(adapter, recs, engine.blocks, seed=seed),
            reference=reference,
            seed=seed,
            rtol=rtol,
        )


def protocol(run: ScorerRun) -> None:
    """``needs_curvature`` and ``needs_gradients`` are booleans."""
    made = run.scorer
    assert isinstance(made.needs_curvature, bool) and isinstance(made.needs_gradients, bool), (
        "needs_curvature and needs_gradients must be booleans"
    )


def scores_shape(run: ScorerRun) -> None:
    """``score_batch`` returns ``[B]`` finite float64 scores and ``[B]`` float64 losses."""
    scores, losses = run.scores, run.losses
    n = len(run.records)
    assert tuple(scores.shape) == (n,) and tuple(losses.shape) == (n,), (
        f"score_batch must return two [B] tensors, got {tuple(scores.shape)} and "
        f"{tuple(losses.shape)}"
    )
    assert scores.dtype == F64 and losses.dtype == F64, "scores and losses must be float64"
    assert bool(torch.isfinite(scores).all()), "scores must be finite"


def losses_match_brute_force(run: ScorerRun) -> None:
    """The losses equal the brute-force per-sample losses."""
    err = close(run.losses, run.bf.losses)
    assert err <= run.rtol, f"losses differ from brute force by {err:.2e} (relative)"


def batch_independent(run: ScorerRun) -> None:
    """A record's score does not depend on the other records in its batch or their order."""

    def scores_of(recs: Sequence[tuple[str, str]]) -> torch.Tensor:
        batch = run.adapter.collate(list(recs), seed=run.seed)
        return run.scorer.score_batch(run.adapter, batch, run.engine, run.curvature)[0]

    flipped = scores_of(run.records[::-1])
    singles = torch.cat([scores_of([r]) for r in run.records])
    for other, what in ((flipped.flip(0), "their order"), (singles, "the other records")):
        err = close(run.scores, other)
        assert err <= run.rtol, (
            f"scores depend on {what} in the batch (relative difference {err:.2e})"
        )


def scores_match_reference(run: ScorerRun) -> None:
    """The scores equal the scorer's brute-force reference."""
    assert run.reference is not None, (
        "no reference: pass reference= or give the scorer a reference_scores(brute_force, "
        "curvature) method"
    )
    want = run.reference(run.bf, run.curvature)
    err = close(run.scores, want)
    assert err <= run.rtol, (
        f"scores differ from the brute-force reference by {err:.2e} (relative; tolerance "
        f"{run.rtol:.0e})"
    )


SCORER_CHECKS = (protocol, scores_shape, losses_match_brute_force, batch_independent)
"""Every scorer's checks, in order."""


def reference_checks(scorer: Any, reference: Reference | None) -> list[Callable[[ScorerRun], None]]:
    """:func:`scores_match_reference` when a reference is given or the scorer (or what its
    factory builds) states one (:class:`~biocoreset.protocols.SupportsReference`)."""
    if reference is not None:
        return [scores_match_reference]
    made = scorer if isinstance(scorer, Scorer) and not isinstance(scorer, type) else scorer()
    return [scores_match_reference] if isinstance(made, SupportsReference) else []

"""Conformance checks every component of a kind should pass (as scikit-learn's ``check_estimator``).

Each check raises :class:`AssertionError` saying what failed. ``check_<kind>`` runs every check
of a component in one call; ``<kind>_checks`` yields them one by one as named
:class:`~biocoreset.testing.named.Check` objects (for one pytest id each, see
:func:`~biocoreset.testing.parametrize.parametrize_with_checks`). The numerical checks run on a tiny
float64 model (:func:`~biocoreset.testing.models.tiny_adapter`) and compare with brute force: one
sample at a time, ``torch.autograd.grad`` per sample (:mod:`biocoreset.testing.reference`).

Example:
    >>> from biocoreset.selectors.topk import TopKSelector
    >>> check_selector(TopKSelector())
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import attrs
import numpy as np
import torch

from biocoreset.plugins.options import declared_options
from biocoreset.protocols import (
    CurvatureEstimator,
    LayerFactors,
    ModelAdapter,
    Scorer,
    Selector,
)
from biocoreset.testing.models import random_rna, tiny_adapter
from biocoreset.testing.named import Check, named
from biocoreset.testing.reference import BruteForce, brute_force, fit, implied_matrix

__all__ = [
    "adapter_checks",
    "check_adapter",
    "check_protocols",
    "check_scorer",
    "check_selector",
    "scorer_checks",
    "selector_checks",
]

F64 = torch.float64


def _rtol(adapter: ModelAdapter, rtol: float | None) -> float:
    if rtol is not None:
        return rtol
    wide = all(p.dtype == F64 for p in adapter.model.parameters())
    return 1e-6 if wide else 1e-3


def _close(a: torch.Tensor, b: torch.Tensor) -> float:
    """Relative error ``‖a − b‖ / max(‖b‖, tiny)``."""
    a, b = a.to(F64).cpu(), b.to(F64).cpu()
    return float((a - b).norm() / b.norm().clamp_min(1e-12))


def _records(adapter: ModelAdapter | None, n: int, seed: int) -> list[tuple[str, str]]:
    return random_rna(n, seed=seed, min_len=4, max_len=14, prefix="r")


def _instance(component: Any, protocol: type) -> Any:
    """``component`` itself, or what its factory builds with no options (its options must be
    declared: a factory taking ``**kwargs`` cannot be checked for typos)."""
    if not isinstance(component, type) and isinstance(component, protocol):
        return component
    assert callable(component), f"{component!r} is neither a {protocol.__name__} nor a factory"
    assert declared_options(component) is not None, (
        f"factory {component!r} takes **kwargs: declare its options (an attrs class, keyword "
        "parameters, or biocoreset.plugins.declare_options) so that typos are refused"
    )
    return component()


def selector_checks(
    selector: Selector, *, n: int = 200, budget: int = 20, seed: int = 0
) -> Iterator[Check]:
    """The named checks of :func:`check_selector`, one :class:`~biocoreset.testing.named.Check`
    each (``protocol``, ``budget_indices``, ``seed_reproducible``)."""
    scores = np.random.default_rng(seed).normal(size=n)

    @functools.cache
    def picked() -> np.ndarray:
        return np.asarray(selector.select(scores, budget, seed=seed))

    def protocol() -> None:
        assert isinstance(selector, Selector), (
            f"{selector!r} does not implement the Selector protocol"
        )

    def budget_indices() -> None:
        a = picked()
        assert a.dtype == np.int64, f"indices must be int64, got {a.dtype}"
        assert len(a) == budget, f"expected {budget} indices, got {len(a)}"
        assert len(np.unique(a)) == budget, "indices contain duplicates"
        assert a.min() >= 0 and a.max() < n, "indices out of range"

    def seed_reproducible() -> None:
        again = np.asarray(selector.select(scores, budget, seed=seed))
        assert np.array_equal(picked(), again), "the same seed gave different selections"

    yield from named(
        selector,
        [
            ("protocol", protocol),
            ("budget_indices", budget_indices),
            ("seed_reproducible", seed_reproducible),
        ],
    )


def check_selector(selector: Selector, *, n: int = 200, budget: int = 20, seed: int = 0) -> None:
    """Conformance checks every selector should pass (every check of :func:`selector_checks`).

    Checks the protocol, that exactly ``budget`` distinct in-range int64 indices come back, and that
    the same seed gives the same selection.

    Raises:
        AssertionError: A check failed (the message says which).
    """
    for check in selector_checks(selector, n=n, budget=budget, seed=seed):
        check()


def adapter_checks(
    adapter: ModelAdapter,
    *,
    records: Sequence[tuple[str, str]] | None = None,
    seed: int = 0,
    rtol: float | None = None,
    engine: str = "auto",
) -> Iterator[Check]:
    """The named checks of :func:`check_adapter`, one :class:`~biocoreset.testing.named.Check`
    each (``protocol``, ``parameter_groups``, ``scored_parameters``, ``collate_deterministic``,
    ``labelled_positions``, ``masking_per_record``, ``loss_batch_separable``,
    ``gradients_match_brute_force``); the arguments are :func:`check_adapter`'s."""
    recs = list(records) if records is not None else _records(adapter, 5, seed)

    @functools.cache
    def one() -> Any:
        return adapter.collate(recs, seed=seed)

    def tol() -> float:
        return _rtol(adapter, rtol)

    def protocol() -> None:
        assert isinstance(adapter, ModelAdapter), f"{adapter!r} does not implement ModelAdapter"

    def parameter_groups() -> None:
        named_params = dict(adapter.model.named_parameters())
        seen: set[str] = set()
        for group, members in adapter.parameter_groups().items():
            for n in members:
                assert n in named_params and named_params[n].requires_grad, (
                    f"group {group!r} lists {n!r}, not a trainable parameter"
                )
                assert n not in seen, f"parameter {n!r} is in two groups"
                seen.add(n)

    def scored_parameters() -> None:
        named_params = dict(adapter.model.named_parameters())
        params = adapter.scored_parameters()
        assert params and all(
            named_params.get(n) is p and p.requires_grad for n, p in params.items()
        ), "scored_parameters() must return trainable parameters of adapter.model by their names"

    def collate_deterministic() -> None:
        two = adapter.collate(recs, seed=seed)
        for field in ("input_ids", "attention_mask", "labels"):
            assert torch.equal(getattr(one(), field), getattr(two, field)), (
                f"collate() is not deterministic: {field} differs for the same records and seed"
            )

    def labelled_positions() -> None:
        assert bool(((one().labels != -100).sum(1) >= 1).all()), "a row has no labelled position"

    def masking_per_record() -> None:
        flipped = adapter.collate(recs[::-1], seed=seed)
        for b, rid in enumerate(one().ids):
            f = flipped.ids.index(rid)
            width = int(one().attention_mask[b].sum())
            for field in ("input_ids", "labels"):
                x = getattr(one(), field)[b, :width]
                y = getattr(flipped, field)[f, : int(flipped.attention_mask[f].sum())]
                assert torch.equal(x, y), (
                    f"record {rid!r}: {field} depends on the other records in the batch (masking "
                    "must be a function of (seed, id, sequence) only)"
                )

    def loss_batch_separable() -> None:
        with torch.no_grad():
            batch_loss = adapter.per_sample_loss(one()).to(F64).cpu()
            single = torch.cat(
                [
                    adapter.per_sample_loss(adapter.collate([r], seed=seed)).to(F64).cpu()
                    for r in recs
                ]
            )
        err = _close(batch_loss, single)
        assert err <= tol(), (
            f"per_sample_loss is not batch-separable: losses in a batch differ from batches of one "
            f"by {err:.2e} (relative; tolerance {tol():.0e})"
        )

    def gradients_match_brute_force() -> None:
        from biocoreset.grads import make_engine

        params = adapter.scored_parameters()
        eng = make_engine(adapter, params, engine=engine)
        got: dict[str, torch.Tensor] = {}

        def collect(factors: LayerFactors) -> None:
            for name, g in factors.per_sample_grads().items():
                got[name] = g.detach().to(F64).cpu()

        eng.run(one(), collect)
        assert set(got) == set(params), (
            f"the engine produced gradients for {sorted(set(got) ^ set(params))[:5]} differently "
            "from scored_parameters()"
        )
        names = list(params)
        for b, rec in enumerate(recs):
            with torch.enable_grad():
                loss = adapter.per_sample_loss(adapter.collate([rec], seed=seed))[0]
                ref = torch.autograd.grad(loss, [params[n] for n in names], allow_unused=True)
            for n, g in zip(names, ref, strict=True):
                want = torch.zeros_like(params[n]) if g is None else g
                err = _close(got[n][b], want)
                assert err <= tol(), (
                    f"record {rec[0]!r}: per-sample gradient of {n!r} from the engine differs "
                    f"from brute force by {err:.2e} (relative; tolerance {tol():.0e})"
                )

    yield from named(
        adapter,
        [
            ("protocol", protocol),
            ("parameter_groups", parameter_groups),
            ("scored_parameters", scored_parameters),
            ("collate_deterministic", collate_deterministic),
            ("labelled_positions", labelled_positions),
            ("masking_per_record", masking_per_record),
            ("loss_batch_separable", loss_batch_separable),
            ("gradients_match_brute_force", gradients_match_brute_force),
        ],
    )


def check_adapter(
    adapter: ModelAdapter,
    *,
    records: Sequence[tuple[str, str]] | None = None,
    seed: int = 0,
    rtol: float | None = None,
    engine: str = "auto",
) -> None:
    """Conformance checks every adapter should pass (every check of :func:`adapter_checks`).

    * the :class:`~biocoreset.protocols.ModelAdapter` protocol; parameter groups are disjoint and
      name trainable parameters; scored parameters are trainable;
    * masking is deterministic: the same records and seed give the same batch, and each record's
      row (tokens and labels) does not depend on the order or company of the other records; every
      row has at least one labelled position;
    * ``per_sample_loss`` is batch-separable: each sample's loss equals its loss in a batch of one;
    * the per-sample gradients of the scored parameters from the gradient engine equal brute force
      (one ``torch.autograd.grad`` per record, in a batch of its own).

    Args:
        adapter: The adapter (a float64 model makes the tolerance ``1e-6``; else ``1e-3``).
        records: ``(id, sequence)`` records it accepts (default: random RNA, 4–14 letters).
        seed: Masking seed.
        rtol: Relative tolerance (default from the model's dtype).
        engine: Gradient engine (``"auto"``, ``"hooks"`` or ``"loop"``).

    Raises:
        AssertionError: A check failed (the message says which).

    >>> from biocoreset.testing import tiny_adapter
    >>> check_adapter(tiny_adapter())
    """
    for check in adapter_checks(adapter, records=records, seed=seed, rtol=rtol, engine=engine):
        check()


def scorer_checks(
    scorer: Any,
    *,
    curvature: CurvatureEstimator | None = None,
    reference: Callable[[BruteForce, CurvatureEstimator | None], torch.Tensor] | None = None,
    seed: int = 0,
    rtol: float = 1e-6,
) -> Iterator[Check]:
    """The named checks of :func:`check_scorer`, one :class:`~biocoreset.testing.named.Check`
    each (``protocol``, ``scores_shape``, ``losses_match_brute_force``, ``batch_independent``,
    ``scores_match_reference``); the arguments are :func:`check_scorer`'s."""

    @functools.cache
    def ctx() -> _ScorerRun:
        return _ScorerRun.build(scorer, curvature, seed)

    def protocol() -> None:
        made = ctx().scorer
        assert isinstance(made.needs_curvature, bool) and isinstance(made.needs_gradients, bool), (
            "needs_curvature and needs_gradients must be booleans"
        )

    def scores_shape() -> None:
        c = ctx()
        scores, losses = c.scores, c.losses
        n = len(c.records)
        assert tuple(scores.shape) == (n,) and tuple(losses.shape) == (n,), (
            f"score_batch must return two [B] tensors, got {tuple(scores.shape)} and "
            f"{tuple(losses.shape)}"
        )
        assert scores.dtype == F64 and losses.dtype == F64, "scores and losses must be float64"
        assert bool(torch.isfinite(scores).all()), "scores must be finite"

    def losses_match_brute_force() -> None:
        err = _close(ctx().losses, ctx().bf.losses)
        assert err <= rtol, f"losses differ from brute force by {err:.2e} (relative)"

    def batch_independent() -> None:
        c = ctx()

        def run(recs: Sequence[tuple[str, str]]) -> torch.Tensor:
            batch = c.adapter.collate(list(recs), seed=seed)
            return c.scorer.score_batch(c.adapter, batch, c.engine, c.curvature)[0]

        flipped = run(c.records[::-1])
        singles = torch.cat([run([r]) for r in c.records])
        for other, what in ((flipped.flip(0), "their order"), (singles, "the other records")):
            err = _close(c.scores, other)
            assert err <= rtol, (
                f"scores depend on {what} in the batch (relative difference {err:.2e})"
            )

    def scores_match_reference() -> None:
        c = ctx()
        want = (
            reference(c.bf, c.curvature)
            if reference is not None
            else _builtin_score(c.scorer, c.bf, c.curvature, c.engine)
        )
        if want is not None:
            err = _close(c.scores, want)
            assert err <= rtol, (
                f"scores differ from the brute-force reference by {err:.2e} (relative; tolerance "
                f"{rtol:.0e})"
            )

    yield from named(
        scorer,
        [
            ("protocol", protocol),
            ("scores_shape", scores_shape),
            ("losses_match_brute_force", losses_match_brute_force),
            ("batch_independent", batch_independent),
            ("scores_match_reference", scores_match_reference),
        ],
    )


@attrs.frozen(kw_only=True)
class _ScorerRun:
    """One scorer run on the tiny float64 model, shared by the named scorer checks."""

    scorer: Any
    adapter: Any
    engine: Any
    curvature: Any
    records: list[tuple[str, str]]
    scores: torch.Tensor
    losses: torch.Tensor
    bf: BruteForce

    @classmethod
    def build(cls, scorer: Any, curvature: Any, seed: int) -> _ScorerRun:
        from biocoreset.grads import make_engine

        made = _instance(scorer, Scorer)
        adapter = tiny_adapter(seed=seed)
        engine = make_engine(adapter, adapter.scored_parameters())
        if made.needs_curvature:
            if curvature is None:
                from biocoreset.curvature.diagonal import DiagonalFisher

                curvature = DiagonalFisher(dtype="float64")
            fit(curvature, adapter, engine, _records(adapter, 6, seed + 1), seed=seed)
        recs = _records(adapter, 4, seed)
        scores, losses = made.score_batch(
            adapter, adapter.collate(recs, seed=seed), engine, curvature
        )
        bf = brute_force(adapter, recs, engine.blocks, seed=seed)
        return cls(
            scorer=made,
            adapter=adapter,
            engine=engine,
            curvature=curvature,
            records=recs,
            scores=scores,
            losses=losses,
            bf=bf,
        )


def check_scorer(
    scorer: Any,
    *,
    curvature: CurvatureEstimator | None = None,
    reference: Callable[[BruteForce, CurvatureEstimator | None], torch.Tensor] | None = None,
    seed: int = 0,
    rtol: float = 1e-6,
) -> None:
    """Conformance checks every scorer should pass, on the tiny float64 model (every check of
    :func:`scorer_checks`).

    * the :class:`~biocoreset.protocols.Scorer` protocol (a factory must declare its options);
    * ``score_batch`` returns ``[B]`` finite float64 scores and the brute-force per-sample losses;
    * a record's score does not depend on the other records in its batch or their order;
    * the scores equal a brute-force reference: for the built-ins, ``‖g‖`` (``grad-norm``), the
      loss (``loss``) or ``Σ_blocks gᵀ K g`` with ``K`` the matrix the fitted curvature applies
      (``self-influence``); for another scorer, ``reference(brute_force, curvature)`` when given.

    Args:
        scorer: The scorer, or its factory (called without options).
        curvature: Curvature for a scorer that needs one (default: the diagonal Fisher), fitted here.
        reference: ``(BruteForce of the scored records, fitted curvature) -> [N] scores``.
        seed: Seed of the records and the masking.
        rtol: Relative tolerance.

    Raises:
        AssertionError: A check failed (the message says which).

    >>> from biocoreset.scorers.self_influence import SelfInfluenceScorer
    >>> check_scorer(SelfInfluenceScorer)
    """
    for check in scorer_checks(
        scorer, curvature=curvature, reference=reference, seed=seed, rtol=rtol
    ):
        check()


def _builtin_score(
    scorer: Any, bf: BruteForce, curvature: CurvatureEstimator | None, engine: Any
) -> torch.Tensor | None:
    from biocoreset.scorers.grad_norm import GradNormScorer
    from biocoreset.scorers.loss import LossScorer
    from biocoreset.scorers.self_influence import SelfInfluenceScorer

    if type(scorer) is LossScorer:
        return bf.losses
    if type(scorer) is GradNormScorer:
        return sum(g.square().sum(1) for g in bf.grads.values()).sqrt()  # type: ignore[union-attr]
    if type(scorer) is SelfInfluenceScorer:
        assert curvature is not None
        total = torch.zeros(len(bf.records), dtype=F64)
        for block in engine.blocks:
            k = implied_matrix(curvature, block)
            g = bf.grads[block.name]
            total += ((g @ k) * g).sum(1)
        return total
    return None


def check_protocols(obj: object) -> list[str]:
    """Names of the protocols ``obj`` satisfies, each kind's optional capabilities after it (for
    quick diagnostics).

    >>> from biocoreset.selectors.cci import CCISelector
    >>> check_protocols(CCISelector())
    ['Selector', 'OrientedSelector', 'PlanningSelector']
    """
    from biocoreset import protocols

    kinds = {
        "ModelAdapter": ("SupportsValidation", "SupportsEncode", "SupportsProbe"),
        "CurvatureEstimator": ("MultiPassCurvature", "SavableCurvature"),
        "Scorer": (),
        "Selector": ("OrientedSelector", "PlanningSelector", "IdentifiedSelector"),
        "Engine": (),
    }
    out = []
    for kind, capabilities in kinds.items():
        if isinstance(obj, getattr(protocols, kind)):
            out.append(kind)
            out += [c for c in capabilities if isinstance(obj, getattr(protocols, c))]
    return out

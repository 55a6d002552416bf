"""The curvature conformance check and the dense references of the built-in curvatures.

:func:`check_curvature` fits a curvature on a tiny float64 model through the gradient engine, then

1. recovers the matrix ``K`` it applies on each parameter block (``quadratic_form(g) = gᵀ K g``,
   by polarisation, :func:`~biocoreset.testing.reference.implied_matrix`) and checks that ``K`` is
   symmetric positive semi-definite;
2. checks that the scores it gives on the engine's factors equal ``Σ_blocks g_zᵀ K g_z`` for the
   brute-force per-sample gradients ``g_z`` (one ``torch.autograd.grad`` per record), and do not
   depend on the other records in the batch;
3. checks ``K`` against the explicit dense ``(C + λI)⁻¹``, with ``C`` built from brute-force
   quantities over ``D_sub`` (the built-ins' references below, or the plugin's own ``dense=``)
   and ``λ`` the absolute damping it records (for relative damping, also
   ``λ = damping_relative · trace(C) / P``).

Each check is a top-level function of one :class:`CurvatureFit` (named for what it checks, as in
:data:`CURVATURE_CHECKS`), so one can be imported and run alone.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import torch

from biocoreset.protocols import CurvatureEstimator
from biocoreset.testing.kit import close, instance, kit_records
from biocoreset.testing.models import tiny_adapter
from biocoreset.testing.named import Check, component_name
from biocoreset.testing.reference import (
    BruteForce,
    DenseReference,
    brute_force,
    fit,
    implied_matrix,
)

__all__ = [
    "CURVATURE_CHECKS",
    "CurvatureFit",
    "check_curvature",
    "curvature_checks",
    "damping_recorded",
    "dense_diagonal",
    "dense_ekfac",
    "dense_identity",
    "dense_kfac",
    "matches_dense_reference",
    "metadata_json",
    "protocol",
    "quadratic_form_matches_brute_force",
    "relative_damping",
    "symmetric_psd",
]

F64 = torch.float64


def dense_identity(bf: BruteForce, curvature: Any) -> dict[str, torch.Tensor]:
    """``C = I`` on every block."""
    return {name: torch.eye(g.shape[1], dtype=F64) for name, g in bf.grads.items()}


def dense_diagonal(bf: BruteForce, curvature: Any) -> dict[str, torch.Tensor]:
    """``C = diag(mean_m g_m²)`` over ``D_sub`` on every block."""
    return {name: torch.diag(g.square().mean(0)) for name, g in bf.grads.items()}


def _factors(bf: BruteForce, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """K-FAC's ``A`` (per counted token) and ``S`` (per sequence) of a linear block; counted
    positions are those whose output gradient is not all zero."""
    xs, ds = bf.inputs[name], bf.output_grads[name]
    a = torch.stack(
        [x[(d != 0).any(1)].T @ x[(d != 0).any(1)] for x, d in zip(xs, ds, strict=True)]
    )
    s = torch.stack([d.T @ d for d in ds])
    tokens = sum(int((d != 0).any(1).sum()) for d in ds)
    return a.sum(0) / max(tokens, 1), s.sum(0) / len(ds)


def _kronecker_blocks(curvature: Any) -> set[str]:
    return set(curvature.metadata().get("kfac_layers", {}))


def dense_kfac(bf: BruteForce, curvature: Any) -> dict[str, torch.Tensor]:
    """``A ⊗ S`` on the blocks the curvature treats as Kronecker, the diagonal Fisher elsewhere."""
    out = dense_diagonal(bf, curvature)
    for name in _kronecker_blocks(curvature):
        a, s = _factors(bf, name)
        out[name] = torch.kron(a, s)
    return out


def dense_ekfac(bf: BruteForce, curvature: Any) -> dict[str, torch.Tensor]:
    """``(Q_A ⊗ Q_S) diag(vec Λ) (Q_A ⊗ Q_S)ᵀ`` with ``Λ = mean_m (Q_Sᵀ G_m Q_A)²`` on the
    Kronecker blocks, the diagonal Fisher elsewhere."""
    out = dense_diagonal(bf, curvature)
    for name in _kronecker_blocks(curvature):
        a, s = _factors(bf, name)
        q_a, q_s = torch.linalg.eigh(a)[1], torch.linalg.eigh(s)[1]
        d_in, d_out = a.shape[0], s.shape[0]
        g = bf.grads[name].reshape(-1, d_in, d_out).transpose(1, 2)  # [M, d_out, d_in]
        lam = (q_s.T @ g @ q_a).square().mean(0)
        q = torch.kron(q_a, q_s)
        out[name] = q @ torch.diag(lam.T.reshape(-1)) @ q.T
    return out


def _builtin_dense(curvature: Any) -> DenseReference | None:
    from biocoreset.curvature.diagonal import DiagonalFisher
    from biocoreset.curvature.identity import IdentityCurvature
    from biocoreset.curvature.kfac import EKFAC, KFAC

    return {
        IdentityCurvature: dense_identity,
        DiagonalFisher: dense_diagonal,
        KFAC: dense_kfac,
        EKFAC: dense_ekfac,
    }.get(type(curvature))


@attrs.define(kw_only=True, eq=False)
class CurvatureFit:
    """A curvature fitted on the tiny float64 model, shared by the curvature checks (each a
    top-level function of one :class:`CurvatureFit`, e.g.
    ``symmetric_psd(CurvatureFit.build(DiagonalFisher))``).

    Attributes:
        curvature: The fitted estimator (built from its factory when a factory was given).
        adapter: The tiny float64 adapter.
        engine: Its gradient engine.
        dsub: The records it was fitted on.
        meta: Its ``metadata()``.
        mats: Block name → the ``[P, P]`` matrix ``K`` its ``quadratic_form`` applies.
        dense: The dense reference (given, else the built-in's; ``None``: none).
        seed: Seed of the model, the records and the masking.
        rtol: Relative tolerance.
    """

    curvature: Any
    adapter: Any
    engine: Any
    dsub: list[tuple[str, str]]
    meta: dict[str, Any]
    mats: dict[str, torch.Tensor]
    dense: DenseReference | None
    seed: int
    rtol: float

    @classmethod
    def build(
        cls,
        curvature: Any,
        *,
        dense: DenseReference | None = None,
        seed: int = 0,
        rtol: float = 1e-6,
    ) -> CurvatureFit:
        """Build the curvature (from its factory), fit it on eight random records through the
        gradient engine, and recover the matrix it applies on every block."""
        from biocoreset.grads import make_engine

        made = instance(curvature, CurvatureEstimator)
        adapter = tiny_adapter(seed=seed)
        engine = make_engine(adapter, adapter.scored_parameters())
        dsub = kit_records(8, seed + 1)
        fit(made, adapter, engine, dsub, seed=seed)
        return cls(
            curvature=made,
            adapter=adapter,
            engine=engine,
            dsub=dsub,
            meta=made.metadata(),
            mats={b.name: implied_matrix(made, b) for b in engine.blocks},
            dense=dense or _builtin_dense(made),
            seed=seed,
            rtol=rtol,
        )

    @functools.cached_property
    def dense_c(self) -> dict[str, torch.Tensor] | None:
        """The undamped ``C`` of every block from the dense reference over ``D_sub``."""
        if self.dense is None:
            return None
        bf = brute_force(self.adapter, self.dsub, self.engine.blocks, seed=self.seed)
        return self.dense(bf, self.curvature)


def protocol(fitted: CurvatureFit) -> None:
    """It builds, implements the protocol and fits (:meth:`CurvatureFit.build` did)."""


def metadata_json(fitted: CurvatureFit) -> None:
    """``metadata()`` is JSON-serialisable."""
    try:
        json.dumps(fitted.meta)
    except TypeError as exc:
        raise AssertionError(f"metadata() is not JSON-serialisable: {exc}") from None


def damping_recorded(fitted: CurvatureFit) -> None:
    """``metadata()`` records the absolute damping as a number ``>= 0``."""
    lam = fitted.meta.get("damping")
    assert isinstance(lam, (int, float)) and math.isfinite(lam) and lam >= 0, (
        f"metadata() must record the absolute damping as a number >= 0, got {lam!r}"
    )


def symmetric_psd(fitted: CurvatureFit) -> None:
    """The matrix ``quadratic_form`` applies on each block is symmetric positive semi-definite."""
    for name, k in fitted.mats.items():
        asym = float((k - k.T).norm() / k.norm().clamp_min(1e-300))
        assert asym <= fitted.rtol, (
            f"block {name!r}: quadratic_form is not a symmetric form ({asym:.2e})"
        )
        low = float(torch.linalg.eigvalsh(k).min())
        assert low >= -fitted.rtol * float(k.abs().max()), (
            f"block {name!r}: the form is not positive semi-definite (eigenvalue {low:.3e})"
        )


def quadratic_form_matches_brute_force(fitted: CurvatureFit) -> None:
    """On the engine's factors, ``quadratic_form`` gives ``Σ gᵀ K g`` of the brute-force
    gradients, whatever the batch."""
    c = fitted
    recs = kit_records(4, c.seed)
    bf = brute_force(c.adapter, recs, c.engine.blocks, seed=c.seed)
    want = sum(((bf.grads[n] @ k) * bf.grads[n]).sum(1) for n, k in c.mats.items())
    for batch in (recs, recs[::-1], *([r] for r in recs)):
        got = torch.zeros(len(batch), dtype=F64)

        def add(factors: Any, got: torch.Tensor = got) -> None:
            got.add_(c.curvature.quadratic_form(factors).to("cpu", F64))

        c.engine.run(c.adapter.collate(list(batch), seed=c.seed), add)
        ref = torch.stack([want[recs.index(r)] for r in batch])  # type: ignore[index]
        err = close(got, ref)
        assert err <= c.rtol, (
            f"quadratic_form on the engine's factors differs from the brute-force gradients' "
            f"gᵀ K g by {err:.2e} (relative; batch of {len(batch)})"
        )


def matches_dense_reference(fitted: CurvatureFit) -> None:
    """The applied matrix equals the explicit ``(C + λI)⁻¹`` (when there is a dense reference)."""
    reference = fitted.dense_c
    if reference is None:
        return
    lam = fitted.meta.get("damping")
    assert isinstance(lam, (int, float)), f"metadata() records no numeric damping: {lam!r}"
    for name, k in fitted.mats.items():
        c = reference[name]
        explicit = torch.linalg.inv(c + float(lam) * torch.eye(c.shape[0], dtype=F64))
        err = close(k, explicit)
        assert err <= fitted.rtol, (
            f"block {name!r}: the applied matrix differs from the explicit (C + λI)⁻¹ by "
            f"{err:.2e} (relative; λ = {lam})"
        )


def relative_damping(fitted: CurvatureFit) -> None:
    """Relative damping records ``λ = damping_relative · trace(C) / P``."""
    meta = fitted.meta
    reference = fitted.dense_c
    if reference is None or meta.get("damping_mode") != "relative":
        return
    if meta.get("damping_relative") is None:
        return
    lam = meta["damping"]
    trace = sum(float(torch.trace(c)) for c in reference.values())
    size = sum(c.shape[0] for c in reference.values())
    expect = float(meta["damping_relative"]) * trace / size
    assert abs(lam - expect) <= fitted.rtol * max(abs(expect), 1e-300), (
        f"relative damping: λ = {lam} but damping_relative · trace(C) / P = {expect}"
    )


CURVATURE_CHECKS = (
    protocol,
    metadata_json,
    damping_recorded,
    symmetric_psd,
    quadratic_form_matches_brute_force,
    matches_dense_reference,
    relative_damping,
)
"""Every curvature's checks, in order."""


def curvature_checks(
    curvature: Any,
    *,
    dense: DenseReference | None = None,
    seed: int = 0,
    rtol: float = 1e-6,
) -> Iterator[Check]:
    """The named checks of :func:`check_curvature`, one :class:`~biocoreset.testing.named.Check`
    each (:data:`CURVATURE_CHECKS`: ``protocol``, ``metadata_json``, ``damping_recorded``,
    ``symmetric_psd``, ``quadratic_form_matches_brute_force``, ``matches_dense_reference``,
    ``relative_damping``), all on one :class:`CurvatureFit`; the arguments are
    :func:`check_curvature`'s."""

    @functools.cache
    def fitted() -> CurvatureFit:
        return CurvatureFit.build(curvature, dense=dense, seed=seed, rtol=rtol)

    def on_the_fit(check: Callable[[CurvatureFit], None]) -> Callable[[], None]:
        return lambda: check(fitted())

    prefix = component_name(curvature)
    for check in CURVATURE_CHECKS:
        yield Check(f"{prefix}-{check.__name__}", on_the_fit(check))


def check_curvature(
    curvature: Any,
    *,
    dense: DenseReference | None = None,
    seed: int = 0,
    rtol: float = 1e-6,
) -> None:
    """Conformance checks every curvature should pass, on the tiny float64 model (every check of
    :func:`curvature_checks`).

    See the module docstring. ``dense`` is the reference ``(brute force over D_sub, fitted
    curvature) -> {block name: C}``; the built-ins have theirs (:func:`dense_identity`,
    :func:`dense_diagonal`, :func:`dense_kfac`, :func:`dense_ekfac`). Without one, a plugin's
    curvature gets every check but the comparison with ``(C + λI)⁻¹``.

    Args:
        curvature: The estimator, or its factory (called without options).
        dense: Dense reference for a curvature that is not a built-in.
        seed: Seed of the model, the records and the masking.
        rtol: Relative tolerance.

    Raises:
        AssertionError: A check failed (the message says which).

    >>> from biocoreset.curvature.diagonal import DiagonalFisher
    >>> check_curvature(DiagonalFisher)
    """
    for check in curvature_checks(curvature, dense=dense, seed=seed, rtol=rtol):
        check()

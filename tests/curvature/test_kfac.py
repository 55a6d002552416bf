"""K-FAC / EK-FAC against brute-force float64 references built from explicit Kronecker matrices.

Conventions of the references (docs/curvature-kfac.md): a linear block's gradient is
``G̃ = [∂W | ∂b]`` (``[d_out, d_in + 1]``), ``vec`` stacks columns (``vec(G̃) = G̃ᵀ.reshape(-1)``), so
``vec(δ x̃ᵀ) = x̃ ⊗ δ`` and the K-FAC block is ``torch.kron(A, S)``; quadratic forms are solved
explicitly, ``vec(G)ᵀ (C + λI)⁻¹ vec(G)``, with ``torch.linalg.solve``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pytest
import torch
from torch import nn

from biocoreset import score
from biocoreset.adapters.hf import HFAdapter
from biocoreset.config import ScoreConfig
from biocoreset.curvature.diagonal import DiagonalFisher
from biocoreset.curvature.kfac import EKFAC, KFAC
from biocoreset.data.sources import as_source
from biocoreset.errors import ConfigError, CurvatureError
from biocoreset.grads.loop import blocks_by_module
from biocoreset.plugins import get_registry
from biocoreset.protocols import CurvatureEstimator, LayerFactors, ParamBlock
from biocoreset.scorers.self_influence import SelfInfluenceScorer
from biocoreset.scoring import fit_curvature
from biocoreset.testing import random_rna, tiny_esm
from floats import assert_equal_to_rounding

F64 = torch.float64
ESTIMATORS = {"kfac": KFAC, "ekfac": EKFAC}


# -- shared helpers -----------------------------------------------------------------------------


def vec(g: torch.Tensor) -> torch.Tensor:
    """Column-stacking ``vec`` of a ``[d_out, d_in]`` matrix."""
    return g.T.reshape(-1)


def linear_factors(block: ParamBlock, x: torch.Tensor, d: torch.Tensor) -> LayerFactors:
    """LayerFactors of a linear block whose per-sample gradients follow from ``x`` (with ones) and ``d``."""
    names = list(block.params)
    weight = next((n for n in names if block.params[n].dim() == 2), None)
    bias = next((n for n in names if block.params[n].dim() == 1), None)

    def grads() -> dict[str, torch.Tensor]:
        g = torch.einsum("bto,bti->boi", d, x)
        out = {}
        if weight is not None:
            out[weight] = g[..., : block.params[weight].shape[1]]
        if bias is not None:
            out[bias] = g[..., -1]
        return out

    return LayerFactors(block, x.shape[0], grads, inputs=x, output_grads=d)


def fit(
    est: CurvatureEstimator,
    blocks: Sequence[ParamBlock],
    batches: Sequence[Sequence[LayerFactors]],
    num_samples: int,
    reduce: Callable[[torch.Tensor], None] | None = None,
) -> CurvatureEstimator:
    """Drive the estimator life cycle the way :func:`biocoreset.scoring.fit_curvature` does."""
    est.fit_begin(blocks)
    for _ in range(getattr(est, "fit_passes", 1)):
        for batch in batches:
            for f in batch:
                est.fit_accumulate(f)
        est.fit_end(num_samples, reduce)
    return est


def solve_form(c: torch.Tensor, lam: float, g: torch.Tensor) -> float:
    """``gᵀ (C + λI)⁻¹ g`` by an explicit dense solve."""
    eye = torch.eye(c.shape[0], dtype=F64)
    return float(g @ torch.linalg.solve(c + lam * eye, g))


def ekfac_matrix(
    a: torch.Tensor, s: torch.Tensor, fisher: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """EK-FAC curvature ``Q diag(Λ) Qᵀ`` with ``Q = Q_A ⊗ Q_S`` and ``Λ = diag(Qᵀ F Q)``; returns (C, Λ)."""
    q = torch.kron(torch.linalg.eigh(a)[1], torch.linalg.eigh(s)[1])
    lam = torch.diagonal(q.T @ fisher @ q)
    return q @ torch.diag(lam) @ q.T, lam


# -- synthetic factors: one linear block with masked / padded positions, one diagonal block ------


class Synthetic:
    """Random Kronecker factors for a linear block ``lin`` (d_in=3 + bias, d_out=4) and a LayerNorm-like
    block ``norm`` (generic per-sample gradients), with positions that do not count in the loss.

    Positions outside the loss carry zero output gradients and *garbage* inputs, so an estimator that
    let them into ``A`` would be caught.
    """

    d_in, d_out, T = 3, 4, 5

    def __init__(self, m: int, seed: int, layout: str = "weight+bias") -> None:
        gen = torch.Generator().manual_seed(seed)
        params = {}
        if "weight" in layout:
            params["lin.weight"] = nn.Parameter(torch.zeros(self.d_out, self.d_in, dtype=F64))
        if "bias" in layout:
            params["lin.bias"] = nn.Parameter(torch.zeros(self.d_out, dtype=F64))
        self.lin = ParamBlock(name="lin", kind="linear", params=params)
        self.norm = ParamBlock(
            name="norm",
            kind="layernorm",
            params={"norm.weight": nn.Parameter(torch.zeros(6, dtype=F64))},
        )
        mix = torch.randn(self.d_in, self.d_in, generator=gen, dtype=F64)
        x = torch.randn(m, self.T, self.d_in, generator=gen, dtype=F64) @ mix + 0.5
        cols = ([x] if "weight" in layout else []) + (
            [torch.ones(m, self.T, 1, dtype=F64)] if "bias" in layout else []
        )
        self.x = torch.cat(cols, -1)
        self.cols = self.x.shape[-1]
        self.d = torch.randn(m, self.T, self.d_out, generator=gen, dtype=F64)
        self.counted = torch.rand(m, self.T, generator=gen) < 0.6
        self.counted[:, 0] = True
        self.d[~self.counted] = 0.0
        self.x[~self.counted] = 1e3 * torch.randn(
            int((~self.counted).sum()), self.cols, generator=gen, dtype=F64
        )
        self.generic = torch.randn(m, 6, generator=gen, dtype=F64) * torch.linspace(
            0.1, 2.0, 6, dtype=F64
        )

    @property
    def blocks(self) -> list[ParamBlock]:
        return [self.lin, self.norm]

    def grads(self, m: int) -> torch.Tensor:
        """Brute-force ``vec(G̃_m)``: a loop over counted positions."""
        g = torch.zeros(self.d_out, self.cols, dtype=F64)
        for t in range(self.T):
            if self.counted[m, t]:
                g += torch.outer(self.d[m, t], self.x[m, t])
        return vec(g)

    def batches(self, rows: Sequence[int], size: int) -> list[list[LayerFactors]]:
        out = []
        for i in range(0, len(rows), size):
            idx = torch.tensor(rows[i : i + size])
            gen = self.generic[idx]
            out.append(
                [
                    linear_factors(self.lin, self.x[idx], self.d[idx]),
                    LayerFactors(self.norm, len(idx), lambda gen=gen: {"norm.weight": gen}),
                ]
            )
        return out

    def reference(
        self, kind: str, fit_rows: Sequence[int], score_rows: Sequence[int], rel: float = 0.1
    ):
        """Explicit block-diagonal curvature, its λ, the factors and brute-force scores."""
        rows = list(fit_rows)
        a = torch.zeros(self.cols, self.cols, dtype=F64)
        s = torch.zeros(self.d_out, self.d_out, dtype=F64)
        n_tok = 0
        for m in rows:
            for t in range(self.T):
                if self.counted[m, t]:
                    a += torch.outer(self.x[m, t], self.x[m, t])
                    s += torch.outer(self.d[m, t], self.d[m, t])
                    n_tok += 1
        a, s = a / n_tok, s / len(rows)
        grads = torch.stack([self.grads(m) for m in rows])
        fisher = grads.T @ grads / len(rows)
        if kind == "kfac":
            c = torch.kron(a, s)
            eig = torch.linalg.eigvalsh(c)
        else:
            c, eig = ekfac_matrix(a, s, fisher)
        diag = self.generic[rows].pow(2).mean(0)
        lam = rel * float(eig.sum() + diag.sum()) / (eig.numel() + diag.numel())
        scores = [
            solve_form(c, lam, self.grads(m)) + float((self.generic[m] ** 2 / (diag + lam)).sum())
            for m in score_rows
        ]
        return {
            "a": a,
            "s": s,
            "c": c,
            "lam": lam,
            "eig": eig,
            "fisher": fisher,
            "scores": np.array(scores),
        }


def estimator_scores(est: KFAC, data: Synthetic, rows: Sequence[int]) -> np.ndarray:
    out = []
    for batch in data.batches(rows, 4):
        out.append(sum(est.quadratic_form(f) for f in batch))
    return torch.cat(out).numpy()


@pytest.mark.parametrize("kind", sorted(ESTIMATORS))
def test_synthetic_scores_match_explicit_kronecker(kind):
    data = Synthetic(m=40, seed=0)
    fit_rows, score_rows = list(range(30)), list(range(25, 40))  # overlap and held-out rows
    est = fit(ESTIMATORS[kind](), data.blocks, data.batches(fit_rows, 7), len(fit_rows))
    ref = data.reference(kind, fit_rows, score_rows)
    a, s = est.blocks["lin"].factors()
    torch.testing.assert_close(a, ref["a"], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(s, ref["s"], rtol=1e-12, atol=1e-12)
    assert est.blocks["lin"].tokens == int(data.counted[fit_rows].sum())
    assert est.damping == pytest.approx(ref["lam"], rel=1e-10)
    np.testing.assert_allclose(
        estimator_scores(est, data, score_rows), ref["scores"], rtol=1e-6, atol=0
    )
    meta = est.metadata()
    assert meta["curvature_by_parameter"] == {
        "lin.weight": kind,
        "lin.bias": kind,
        "norm.weight": "diagonal",
    }
    assert (
        meta["damping"] == est.damping
        and meta["damping_mode"] == "relative"
        and meta["damping_relative"] == 0.1
    )


@pytest.mark.parametrize("layout", ["weight", "bias"])
@pytest.mark.parametrize("kind", sorted(ESTIMATORS))
def test_weight_only_and_bias_only_blocks(kind, layout):
    """A linear block may hold the weight alone (bias unscored) or the bias alone (inputs = ones)."""
    data = Synthetic(m=30, seed=12, layout=layout)
    rows = list(range(30))
    est = fit(ESTIMATORS[kind](), data.blocks, data.batches(rows, 7), len(rows))
    ref = data.reference(kind, rows, rows)
    assert est.blocks["lin"].d_in == data.cols
    assert est.damping == pytest.approx(ref["lam"], rel=1e-10)
    np.testing.assert_allclose(estimator_scores(est, data, rows), ref["scores"], rtol=1e-6, atol=0)


def test_empty_and_multi_axis_positions():
    """Factors with no positions (a layer unused by a batch) add nothing; ``[B, P1, P2, d]`` factors
    are flattened over positions."""
    data = Synthetic(m=12, seed=13)
    rows = list(range(12))
    batches = data.batches(rows, 4)
    empty = linear_factors(data.lin, data.x[:3, :0], data.d[:3, :0])
    est = fit(KFAC(), data.blocks, [*batches, [empty]], len(rows))
    base = fit(KFAC(), data.blocks, batches, len(rows))
    torch.testing.assert_close(
        est.blocks["lin"].eigenvalues(), base.blocks["lin"].eigenvalues(), rtol=0, atol=0
    )
    assert est.quadratic_form(empty).tolist() == [0.0, 0.0, 0.0]
    x4 = data.x[:4, :4].reshape(4, 2, 2, -1)
    d4 = data.d[:4, :4].reshape(4, 2, 2, -1)
    torch.testing.assert_close(
        est.quadratic_form(linear_factors(data.lin, x4, d4)),
        est.quadratic_form(linear_factors(data.lin, data.x[:4, :4], data.d[:4, :4])),
        rtol=1e-14,
        atol=0,
    )


@pytest.mark.parametrize("kind", sorted(ESTIMATORS))
def test_absolute_damping_and_batching_invariance(kind):
    data = Synthetic(m=24, seed=1)
    rows = list(range(24))
    ref = data.reference(kind, rows, rows, rel=0.0)
    lam = 0.37 * ref["lam"] + 1e-3
    ref_scores = []
    for m in rows:
        diag = data.generic[rows].pow(2).mean(0)
        ref_scores.append(
            solve_form(ref["c"], lam, data.grads(m))
            + float((data.generic[m] ** 2 / (diag + lam)).sum())
        )
    for size in (1, 5, 24):
        est = fit(ESTIMATORS[kind](damping=lam), data.blocks, data.batches(rows, size), len(rows))
        assert est.metadata()["damping"] == lam and est.metadata()["damping_mode"] == "absolute"
        np.testing.assert_allclose(estimator_scores(est, data, rows), ref_scores, rtol=1e-6, atol=0)


def test_ekfac_eigenvalues_are_fisher_diagonal_in_eigenbasis_synthetic():
    data = Synthetic(m=30, seed=2)
    rows = list(range(30))
    est = fit(EKFAC(), data.blocks, data.batches(rows, 8), len(rows))
    kb = est.blocks["lin"]
    q = torch.kron(kb.q_a, kb.q_s)
    fisher = data.reference("ekfac", rows, [])["fisher"]
    torch.testing.assert_close(
        vec(kb.eigenvalues()), torch.diagonal(q.T @ fisher @ q), rtol=1e-10, atol=1e-14
    )


# -- a tiny real model: Linear → LayerNorm → tanh → Linear over sequences ------------------------


class TinySeqModel(nn.Module):
    """Position-wise two-layer network; the per-sample loss averages over the labelled positions."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.lin1 = nn.Linear(3, 4)
        self.norm = nn.LayerNorm(4)
        self.lin2 = nn.Linear(4, 2, bias=False)
        self.double()
        with torch.no_grad():
            for p in self.parameters():
                p.add_(0.1 * torch.randn_like(p))

    def per_sample_loss(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        y = self.lin2(torch.tanh(self.norm(self.lin1(batch["x"]))))
        err = 0.5 * (y - batch["target"]).pow(2).sum(-1) * batch["mask"]
        return err.sum(1) / batch["mask"].sum(1)


def tiny_seq_data(n: int, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    T = 6
    mask = (torch.rand(n, T, generator=gen) < 0.5).to(F64)
    mask[:, 0] = 1.0
    return {
        "x": torch.randn(n, T, 3, generator=gen, dtype=F64),
        "target": torch.randn(n, T, 2, generator=gen, dtype=F64),
        "mask": mask,
    }


class HookFactorEngine:
    """Test-only engine: ``nn.Linear`` modules (weight, and bias if any, scored and owned by the module)
    become ``"linear"`` blocks with Kronecker factors captured by hooks from one batched forward and
    backward; every other scored parameter gets per-sample gradients by a loop (``"generic"`` blocks).

    It stands in for :mod:`biocoreset.grads.engine` so K-FAC is tested on real factors, padding included.
    """

    name = "test-hooks"

    def __init__(
        self,
        model: nn.Module,
        params: Mapping[str, nn.Parameter],
        per_sample_loss: Callable[[object], torch.Tensor],
    ) -> None:
        self.model = model
        self.loss_fn = per_sample_loss
        self.params = dict(params)
        by_id = {id(p): n for n, p in self.params.items()}
        self.linear: dict[str, nn.Linear] = {}
        owned: set[str] = set()
        for mname, mod in model.named_modules():
            if not isinstance(mod, nn.Linear):
                continue
            w = by_id.get(id(mod.weight))
            b = by_id.get(id(mod.bias)) if mod.bias is not None else None
            prefix = f"{mname}." if mname else ""
            if (
                w is None
                or w != f"{prefix}weight"
                or (mod.bias is not None and b != f"{prefix}bias")
            ):
                continue  # unscored, or a weight tied to another module
            self.linear[mname] = mod
            owned |= {w} | ({b} if b else set())
        self.blocks = [
            ParamBlock(
                name=m,
                kind="linear",
                params={
                    n: self.params[n]
                    for n in self.params
                    if n in owned and n.rpartition(".")[0] == m
                },
            )
            for m in self.linear
        ]
        self.blocks += blocks_by_module({n: p for n, p in self.params.items() if n not in owned})

    def run(
        self, batch: object, on_block: Callable[[LayerFactors], None] | None = None
    ) -> torch.Tensor:
        inputs: dict[str, torch.Tensor] = {}
        outputs: dict[str, torch.Tensor] = {}

        def hook(name: str):
            def fn(module: nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
                assert name not in inputs, f"{name} called twice in one forward"
                inputs[name], outputs[name] = args[0].detach(), out

            return fn

        handles = [mod.register_forward_hook(hook(name)) for name, mod in self.linear.items()]
        try:
            with torch.enable_grad():
                loss = self.loss_fn(batch)
        finally:
            for h in handles:
                h.remove()
        if on_block is None:
            return loss.detach()
        B = loss.shape[0]
        names = list(outputs)
        deltas = dict(
            zip(
                names,
                torch.autograd.grad(loss.sum(), [outputs[n] for n in names], retain_graph=True),
                strict=False,
            )
        )
        generic = [n for blk in self.blocks if blk.kind != "linear" for n in blk.params]
        per = {
            n: torch.zeros((B, *self.params[n].shape), dtype=self.params[n].dtype) for n in generic
        }
        for b in range(B):
            if not generic:
                break
            gs = torch.autograd.grad(
                loss[b], [self.params[n] for n in generic], retain_graph=True, allow_unused=True
            )
            for n, g in zip(generic, gs, strict=False):
                if g is not None:
                    per[n][b] = g
        for blk in self.blocks:
            if blk.kind == "linear":
                mod = self.linear[blk.name]
                x = inputs[blk.name]
                if mod.bias is not None:
                    x = torch.cat([x, x.new_ones(*x.shape[:-1], 1)], -1)
                on_block(linear_factors(blk, x, deltas[blk.name]))
            else:
                sub = {n: per[n] for n in blk.params}
                on_block(LayerFactors(blk, B, lambda sub=sub: sub))
        return loss.detach()


def brute_force_reference(
    model: nn.Module,
    samples: Sequence[object],
    loss_one: Callable[[object], torch.Tensor],
    kron_modules: Sequence[str],
    diag_params: Sequence[str],
    fit_rows: Sequence[int],
    counted: Callable[[int, torch.Tensor], torch.Tensor] | None = None,
) -> dict:
    """One sample at a time: per-sample gradients by ``autograd.grad``; Kronecker factors from hooks.

    ``counted(m, delta)`` gives the positions of sample ``m`` that enter ``A`` (default: rows of the
    output gradient that are not all zero).
    """
    params = dict(model.named_parameters())
    per: list[dict[str, torch.Tensor]] = []
    acts: list[dict[str, tuple[torch.Tensor, torch.Tensor]]] = []
    for sample in samples:
        caught: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        handles = [
            model.get_submodule(m).register_forward_hook(
                lambda mod, args, out, m=m, caught=caught: caught.__setitem__(
                    m, (args[0].detach()[0], out)
                )
            )
            for m in kron_modules
        ]
        try:
            loss = loss_one(sample)
        finally:
            for h in handles:
                h.remove()
        names = [n for n in params]
        gs = torch.autograd.grad(
            loss, [params[n] for n in names], retain_graph=True, allow_unused=True
        )
        per.append(
            {
                n: (g if g is not None else torch.zeros_like(params[n])).detach()
                for n, g in zip(names, gs, strict=False)
            }
        )
        ds = torch.autograd.grad(loss, [caught[m][1] for m in kron_modules]) if kron_modules else ()
        acts.append({m: (caught[m][0], d[0]) for m, d in zip(kron_modules, ds, strict=False)})

    blocks = []  # (kind, C builder data, vec grads of every sample)
    for m in kron_modules:
        mod = model.get_submodule(m)

        def g_of(i: int, m=m, mod=mod) -> torch.Tensor:
            g = per[i][f"{m}.weight"]
            if mod.bias is not None:
                g = torch.cat([g, per[i][f"{m}.bias"][:, None]], 1)
            return vec(g)

        a = s = None
        n_tok = 0
        for i in fit_rows:
            x, d = acts[i][m]
            if mod.bias is not None:
                x = torch.cat([x, x.new_ones(x.shape[0], 1)], -1)
            keep = counted(i, d) if counted is not None else (d != 0).any(-1)
            xs, ds = x[keep], d
            a = xs.T @ xs if a is None else a + xs.T @ xs
            s = ds.T @ ds if s is None else s + ds.T @ ds
            n_tok += int(keep.sum())
        a, s = a / n_tok, s / len(fit_rows)
        grads = torch.stack([g_of(i) for i in range(len(samples))])
        fisher = grads[list(fit_rows)].T @ grads[list(fit_rows)] / len(fit_rows)
        blocks.append(
            {"module": m, "a": a, "s": s, "tokens": n_tok, "grads": grads, "fisher": fisher}
        )
    diag_grads = (
        torch.stack(
            [torch.cat([per[i][n].reshape(-1) for n in diag_params]) for i in range(len(samples))]
        )
        if diag_params
        else torch.zeros(len(samples), 0, dtype=F64)
    )
    return {"blocks": blocks, "diag_grads": diag_grads}


def reference_scores(
    ref: dict, kind: str, fit_rows: Sequence[int], damping: float | None = None, rel: float = 0.1
) -> tuple[np.ndarray, float, list[torch.Tensor]]:
    """Scores of every sample from the explicit block-diagonal curvature; also λ and each block's Λ."""
    mats, eigs = [], []
    for blk in ref["blocks"]:
        if kind == "kfac":
            c = torch.kron(blk["a"], blk["s"])
            eig = torch.linalg.eigvalsh(c)
        else:
            c, eig = ekfac_matrix(blk["a"], blk["s"], blk["fisher"])
        mats.append(c)
        eigs.append(eig)
    dg = ref["diag_grads"]
    diag = dg[list(fit_rows)].pow(2).mean(0)
    total = sum(float(e.sum()) for e in eigs) + float(diag.sum())
    count = sum(e.numel() for e in eigs) + diag.numel()
    lam = damping if damping is not None else rel * total / count
    n = dg.shape[0]
    scores = np.zeros(n)
    for i in range(n):
        scores[i] = float((dg[i] ** 2 / (diag + lam)).sum())
        for blk, c in zip(ref["blocks"], mats, strict=False):
            scores[i] += solve_form(c, lam, blk["grads"][i])
    return scores, lam, eigs


def _tiny_seq_setup(n: int = 20, seed: int = 3):
    model = TinySeqModel(seed)
    data = tiny_seq_data(n, seed)
    params = dict(model.named_parameters())
    engine = HookFactorEngine(model, params, model.per_sample_loss)
    return model, data, params, engine


def _seq_batches(
    engine: HookFactorEngine, data: dict, rows: Sequence[int], size: int
) -> list[list[LayerFactors]]:
    out = []
    for i in range(0, len(rows), size):
        idx = torch.tensor(rows[i : i + size])
        got: list[LayerFactors] = []
        engine.run({k: v[idx] for k, v in data.items()}, got.append)
        out.append(got)
    return out


@pytest.mark.parametrize("kind", sorted(ESTIMATORS))
def test_tiny_model_scores_match_bruteforce(kind):
    model, data, _params, engine = _tiny_seq_setup()
    fit_rows = [*list(range(0, 20, 2)), 1, 3]
    n = data["x"].shape[0]
    est = fit(
        ESTIMATORS[kind](), engine.blocks, _seq_batches(engine, data, fit_rows, 4), len(fit_rows)
    )
    got = torch.cat(
        [
            sum(est.quadratic_form(f) for f in b)
            for b in _seq_batches(engine, data, list(range(n)), 6)
        ]
    )
    samples = [{k: v[i : i + 1] for k, v in data.items()} for i in range(n)]
    # the reference counts positions by the loss mask, not by nonzero output gradients
    ref = brute_force_reference(
        model,
        samples,
        lambda s: model.per_sample_loss(s)[0],
        ["lin1", "lin2"],
        ["norm.weight", "norm.bias"],
        fit_rows,
        counted=lambda i, d: data["mask"][i].bool(),
    )
    expected, lam, _ = reference_scores(ref, kind, fit_rows)
    assert est.damping == pytest.approx(lam, rel=1e-10)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6, atol=0)
    meta = est.metadata()
    assert meta["curvature_by_parameter"] == {
        "lin1.weight": kind,
        "lin1.bias": kind,
        "lin2.weight": kind,
        "norm.weight": "diagonal",
        "norm.bias": "diagonal",
    }
    assert meta["kfac_layers"]["lin1"] == {
        "d_in": 4,
        "d_out": 4,
        "bias": True,
        "tokens": int(data["mask"][fit_rows].sum()),
    }
    assert meta["kfac_layers"]["lin2"]["d_in"] == 4 and meta["kfac_layers"]["lin2"]["bias"] is False


def test_ekfac_eigenvalues_equal_exact_fisher_diagonal_in_kronecker_eigenbasis():
    """Λ_EKFAC = diag((Q_A ⊗ Q_S)ᵀ F (Q_A ⊗ Q_S)), F the exact empirical Fisher of brute-force gradients."""
    model, data, _params, engine = _tiny_seq_setup(n=16, seed=5)
    rows = list(range(16))
    est = fit(EKFAC(), engine.blocks, _seq_batches(engine, data, rows, 5), len(rows))
    samples = [{k: v[i : i + 1] for k, v in data.items()} for i in range(16)]
    ref = brute_force_reference(
        model,
        samples,
        lambda s: model.per_sample_loss(s)[0],
        ["lin1", "lin2"],
        [],
        rows,
        counted=lambda i, d: data["mask"][i].bool(),
    )
    for blk in ref["blocks"]:
        kb = est.blocks[blk["module"]]
        a, s = kb.factors()
        torch.testing.assert_close(a, blk["a"], rtol=1e-10, atol=1e-13)
        torch.testing.assert_close(s, blk["s"], rtol=1e-10, atol=1e-13)
        q = torch.kron(kb.q_a, kb.q_s)
        exact = torch.diagonal(q.T @ blk["fisher"] @ q)
        torch.testing.assert_close(vec(kb.eigenvalues()), exact, rtol=1e-9, atol=1e-14)
        # and it is not K-FAC's product of spectra (the check can fail)
        assert not torch.allclose(
            vec(kb.eigenvalues()), vec(torch.outer(kb.eig_s, kb.eig_a)), rtol=1e-3
        )


# -- one token per sample, independent inputs and output gradients: K-FAC → exact Fisher ---------


def _kfac_vs_exact_fisher_gap(m: int, *, dependent: bool, seed: int = 0) -> float:
    """Max relative gap between K-FAC's and the exact empirical Fisher's quadratic forms on 50 held-out
    gradients of a linear regression ``y = W x + b`` whose residuals are (or are not) independent of ``x``."""
    gen = torch.Generator().manual_seed(seed)
    layer = nn.Linear(3, 2).double()
    n_test = 50
    mix = torch.tensor([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [-0.3, 0.2, 0.5]], dtype=F64)
    x = torch.randn(m + n_test, 3, generator=gen, dtype=F64) @ mix + torch.tensor(
        [0.5, -1.0, 0.2], dtype=F64
    )
    noise = torch.randn(m + n_test, 2, generator=gen, dtype=F64) @ torch.tensor(
        [[1.0, 0.4], [0.0, 0.7]], dtype=F64
    )
    if dependent:
        noise = noise * (0.2 + x[:, :1].pow(2))  # residual scale depends on the input
    with torch.no_grad():
        target = layer(x) + noise

    def per_sample_loss(rows: torch.Tensor) -> torch.Tensor:
        return 0.5 * (layer(x[rows][:, None, :]) - target[rows][:, None, :]).pow(2).sum((1, 2))

    engine = HookFactorEngine(layer, dict(layer.named_parameters()), per_sample_loss)
    assert [b.kind for b in engine.blocks] == ["linear"]
    fit_rows = torch.arange(m)
    batches = []
    for chunk in fit_rows.split(4096):
        got: list[LayerFactors] = []
        engine.run(chunk, got.append)
        batches.append(got)
    est = fit(KFAC(damping_relative=0.01), engine.blocks, batches, m)

    # the exact empirical Fisher from brute-force per-sample gradients (torch.func, one sample each)
    from torch.func import functional_call, grad, vmap

    p0 = {k: v.detach() for k, v in layer.named_parameters()}

    def loss_one(p: dict, xi: torch.Tensor, ti: torch.Tensor) -> torch.Tensor:
        return 0.5 * (functional_call(layer, p, (xi,)) - ti).pow(2).sum()

    g = vmap(grad(loss_one), in_dims=(None, 0, 0))(p0, x, target)
    vecs = (
        torch.cat([g["weight"], g["bias"][:, :, None]], 2).transpose(1, 2).reshape(m + n_test, -1)
    )
    fisher = vecs[:m].T @ vecs[:m] / m
    exact = np.array([solve_form(fisher, est.damping, vecs[m + i]) for i in range(n_test)])
    got = []
    test_rows = torch.arange(m, m + n_test)
    engine.run(test_rows, lambda f: got.append(est.quadratic_form(f)))
    approx = got[0].numpy()
    return float(np.max(np.abs(approx - exact) / exact))


def test_kfac_approaches_exact_fisher_when_inputs_and_output_grads_are_independent():
    sizes = (100, 1_000, 10_000)
    gaps = [_kfac_vs_exact_fisher_gap(m, dependent=False) for m in sizes]
    assert gaps[0] > gaps[1] > gaps[2], gaps
    assert gaps[0] > 4 * gaps[2] and gaps[2] < 0.08, gaps  # ~1/sqrt(M): 100x the data, ~10x smaller
    # control: with residuals that depend on the input, the gap does not vanish
    dep = _kfac_vs_exact_fisher_gap(sizes[-1], dependent=True)
    assert dep > 5 * gaps[2], (dep, gaps)


# -- distributed reduction ----------------------------------------------------------------------


class ThreadAllReduce:
    """In-place sum over ``n`` threads standing in for ranks (same call order required on every rank)."""

    def __init__(self, n: int) -> None:
        self.barrier = threading.Barrier(n)
        self.slots: list[torch.Tensor | None] = [None] * n
        self.calls = [0] * n

    def for_rank(self, rank: int) -> Callable[[torch.Tensor], None]:
        def reduce(t: torch.Tensor) -> None:
            self.calls[rank] += 1
            self.slots[rank] = t.clone()
            self.barrier.wait()
            total = sum(self.slots[1:], self.slots[0].clone())  # type: ignore[union-attr]
            self.barrier.wait()
            t.copy_(total)

        return reduce


@pytest.mark.parametrize("kind", sorted(ESTIMATORS))
def test_fit_end_reduces_every_statistic_across_ranks(kind):
    data = Synthetic(m=30, seed=4)
    rows = list(range(30))
    single = fit(ESTIMATORS[kind](), data.blocks, data.batches(rows, 5), len(rows))
    shards = [rows[0::2], rows[1::2]]  # uneven padding/token counts per rank
    ar = ThreadAllReduce(2)
    ranks = [ESTIMATORS[kind]() for _ in shards]
    errors: list[BaseException] = []

    def work(r: int) -> None:
        try:
            fit(ranks[r], data.blocks, data.batches(shards[r], 4), len(rows), ar.for_rank(r))
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)
            ar.barrier.abort()

    threads = [threading.Thread(target=work, args=(r,)) for r in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    # A, S, token count and the diagonal Fisher (+ Λ for EK-FAC)
    assert ar.calls == [4 + (1 if kind == "ekfac" else 0)] * 2
    expected = estimator_scores(single, data, rows)
    for est in ranks:
        assert est.damping == pytest.approx(single.damping, rel=1e-12)
        assert est.blocks["lin"].tokens == single.blocks["lin"].tokens
        np.testing.assert_allclose(estimator_scores(est, data, rows), expected, rtol=1e-10)


# -- errors and options -------------------------------------------------------------------------


def test_layer_too_large_is_a_config_error_with_suggestions():
    block = ParamBlock(
        name="big.proj",
        kind="linear",
        params={
            "big.proj.weight": nn.Parameter(torch.zeros(10, 20)),
            "big.proj.bias": nn.Parameter(torch.zeros(10)),
        },
    )
    with pytest.raises(ConfigError, match=r"dimension 21.*max_dim=16") as info:
        KFAC(max_dim=16).fit_begin([block])
    msg = str(info.value)
    assert "parameters=" in msg and "diagonal_layers" in msg and "curvature='diagonal'" in msg
    est = KFAC(max_dim=16, diagonal_layers=["big.*"])
    est.fit_begin([block])
    assert (
        est.blocks == {}
        and est.metadata()["curvature_by_parameter"]["big.proj.weight"] == "diagonal"
    )


def test_options_are_validated():
    with pytest.raises(
        ConfigError,
        match=r"unknown option 'max_dimm' for curvature 'kfac'\. Did you mean 'max_dim'",
    ):
        get_registry().get("curvature", "kfac").create(max_dimm=3)
    with pytest.raises(TypeError, match="max_dimm"):  # the class itself: attrs' own check
        KFAC(max_dimm=3)
    with pytest.raises(ConfigError, match="dtype"):
        EKFAC(dtype="float16")
    with pytest.raises(ConfigError, match="max_dim"):
        KFAC(max_dim=0)
    with pytest.raises(ConfigError, match="damping"):
        KFAC(damping=-1.0)
    bad = ParamBlock(
        name="x",
        kind="linear",
        params={"x.a": nn.Parameter(torch.zeros(2, 2)), "x.b": nn.Parameter(torch.zeros(2, 2))},
    )
    with pytest.raises(ConfigError, match="one \\[d_out, d_in\\] weight"):
        KFAC().fit_begin([bad])


def test_zero_damping_singular_is_an_error_and_nonsingular_is_fine():
    data = Synthetic(m=3, seed=6)
    data.counted[0] = torch.tensor(
        [True, False, False, False, False]
    )  # one token: A and S have rank 1
    data.d[0, 1:] = 0.0
    blocks = [data.lin]
    batches = [[f for f in b if f.block is data.lin] for b in data.batches([0], 1)]
    with pytest.raises(CurvatureError, match=r"damping is 0.*singular.*lin"):
        fit(KFAC(damping=0.0), blocks, batches, 1)
    big = Synthetic(m=60, seed=7)
    est = fit(
        EKFAC(damping=0.0),
        [big.lin],
        [[f for f in b if f.block is big.lin] for b in big.batches(range(60), 10)],
        60,
    )
    assert est.damping == 0.0 and np.isfinite(estimator_scores_lin(est, big, range(60))).all()


def estimator_scores_lin(est: KFAC, data: Synthetic, rows) -> np.ndarray:
    return torch.cat([est.quadratic_form(b[0]) for b in data.batches(list(rows), 8)]).numpy()


def test_ekfac_life_cycle_errors():
    data = Synthetic(m=8, seed=8)
    est = EKFAC()
    est.fit_begin(data.blocks)
    assert est.fit_passes == 2
    for b in data.batches(range(8), 4):
        for f in b:
            est.fit_accumulate(f)
    est.fit_end(8)
    with pytest.raises(CurvatureError, match=r"half fitted.*fit_passes=2"):
        est.quadratic_form(data.batches([0], 1)[0][0])
    with pytest.raises(CurvatureError, match="same D_sub"):
        est.fit_end(7)
    est.fit_end(8)
    with pytest.raises(CurvatureError, match="fit_end\\(\\) called 3 times"):
        est.fit_end(8)
    no_factors = LayerFactors(data.lin, 1, dict)
    with pytest.raises(CurvatureError, match="without inputs/output_grads"):
        est.quadratic_form(no_factors)
    only_diag = EKFAC()
    only_diag.fit_begin([data.norm])
    assert only_diag.fit_passes == 1  # no linear block: no second pass


def test_registered_as_builtin_plugins():
    reg = get_registry()
    for name, cls in ESTIMATORS.items():
        comp = reg.get("curvature", name)
        assert (
            comp.load() is cls
            and comp.factory.__wrapped__ is cls
            and comp.plugin == "biocoreset.curvature.kfac"
            and comp.source == "built-in"
        )
        assert isinstance(cls(), CurvatureEstimator)


def test_non_linear_blocks_equal_the_diagonal_fisher():
    data = Synthetic(m=12, seed=9)
    rows = list(range(12))
    est = fit(KFAC(damping=0.05), [data.norm], [[b[1]] for b in data.batches(rows, 5)], 12)
    diag = fit(
        DiagonalFisher(damping=0.05, dtype="float64"),
        [data.norm],
        [[b[1]] for b in data.batches(rows, 5)],
        12,
    )
    for b in data.batches(rows, 5):
        torch.testing.assert_close(
            est.quadratic_form(b[1]), diag.quadratic_form(b[1]), rtol=1e-14, atol=0
        )
    assert est.metadata()["damping"] == diag.metadata()["damping"] == 0.05


# -- a real masked LM: tiny ESM (padding, masked positions, attention, LayerNorm, tied head) -----


def _esm_reference(adapter: HFAdapter, records, kron_modules, diag_params, fit_rows, seed):
    samples = [adapter.collate([rec], seed=seed) for rec in records]
    return brute_force_reference(
        adapter.model,
        samples,
        lambda b: adapter.per_sample_loss(b)[0],
        kron_modules,
        diag_params,
        fit_rows,
    ), samples


@pytest.mark.parametrize("kind", sorted(ESTIMATORS))
def test_tiny_esm_with_hook_factors_matches_bruteforce(kind):
    """Batched factors (padding present) through :func:`biocoreset.scoring.fit_curvature` (both EK-FAC passes)
    and the self-influence scorer equal the one-sample-at-a-time explicit Kronecker reference."""
    model, tok = tiny_esm(seed=2)
    adapter = HFAdapter(model, tok)
    records = random_rna(14, seed=11, min_len=6, max_len=28)
    params = adapter.scored_parameters()
    engine = HookFactorEngine(model, params, adapter.per_sample_loss)
    cfg = ScoreConfig(batch_size=4, seed=3, progress=False)
    subset = np.array([0, 2, 3, 5, 7, 8, 9, 10, 12, 13])
    est = ESTIMATORS[kind]()
    fit_curvature(est, adapter, engine, as_source(records), subset, cfg)
    scorer = SelfInfluenceScorer()
    got = np.concatenate(
        [
            scorer.score_batch(adapter, adapter.collate(records[i : i + 5], seed=3), engine, est)[
                0
            ].numpy()
            for i in range(0, 14, 5)
        ]
    )
    kron = [b.name for b in engine.blocks if b.kind == "linear"]
    assert (
        "lm_head.dense" in kron and "lm_head.decoder" not in kron
    )  # the tied decoder is not Kronecker
    diag = [n for b in engine.blocks if b.kind != "linear" for n in b.params]
    ref, samples = _esm_reference(adapter, records, kron, diag, subset.tolist(), seed=3)
    expected, lam, _ = reference_scores(ref, kind, subset.tolist())
    assert est.damping == pytest.approx(lam, rel=1e-9)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=0)
    # token accounting: every real token reaches the encoder; only masked positions reach the head
    layers = est.metadata()["kfac_layers"]
    real = sum(int(samples[i].attention_mask.sum()) for i in subset)
    masked = sum(int((samples[i].labels != -100).sum()) for i in subset)
    assert layers["esm.encoder.layer.0.attention.self.query"]["tokens"] == real
    assert layers["lm_head.dense"]["tokens"] == masked < real


def test_score_kfac_with_loop_engine_falls_back_to_diagonal():
    """The loop engine emits only generic blocks: K-FAC then equals the diagonal Fisher, and says so."""
    model, tok = tiny_esm(seed=1)
    adapter = HFAdapter(model, tok)
    records = random_rna(10, seed=3)
    diag = score(adapter, records, subset=6, batch_size=4, engine="loop")
    for kind in ESTIMATORS:
        res = score(adapter, records, subset=6, batch_size=4, engine="loop", curvature=kind)
        np.testing.assert_allclose(res.scores, diag.scores, rtol=1e-12)
        assert res.metadata["curvature"] == kind and res.metadata["damping"] == pytest.approx(
            diag.metadata["damping"]
        )
        assert res.metadata["kfac_layers"] == {}
        assert set(res.metadata["curvature_by_parameter"].values()) == {"diagonal"}


@pytest.mark.parametrize("kind", sorted(ESTIMATORS))
def test_score_end_to_end_with_hook_engine(kind):
    pytest.importorskip(
        "biocoreset.grads.engine", reason="the hook engine (biocoreset.grads.engine) has not landed"
    )
    model, tok = tiny_esm(seed=4)
    adapter = HFAdapter(model, tok)
    records = random_rna(12, seed=5, min_len=4, max_len=26)
    res = score(adapter, records, subset=8, batch_size=5, seed=2, engine="hooks", curvature=kind)
    meta = res.metadata
    kron = list(meta["kfac_layers"])
    assert kron, "the hook engine should emit linear blocks"
    for name in kron:
        assert isinstance(model.get_submodule(name), nn.Linear)
    by_param = meta["curvature_by_parameter"]
    diag = [n for n, c in by_param.items() if c == "diagonal"]
    assert {n for n, c in by_param.items() if c == kind} == {
        f"{m}.{p}" for m in kron for p in ("weight", "bias") if f"{m}.{p}" in by_param
    }
    fit_rows = [res.ids.index(i) for i in meta["subset_ids"]]
    ref, _ = _esm_reference(adapter, records, kron, diag, fit_rows, seed=2)
    expected, lam, _ = reference_scores(ref, kind, fit_rows)
    assert meta["damping"] == pytest.approx(lam, rel=1e-9)
    np.testing.assert_allclose(res.scores, expected, rtol=1e-6, atol=0)


@pytest.mark.parametrize("kind", sorted(ESTIMATORS))
def test_state_dict_round_trip(kind, tmp_path):
    """A saved fit (``torch.load(weights_only=True)``) restores the same scores and metadata."""
    data = Synthetic(m=20, seed=10)
    rows = list(range(20))
    est = fit(ESTIMATORS[kind](), data.blocks, data.batches(rows, 6), len(rows))
    path = tmp_path / "curvature.pt"
    torch.save(est.state_dict(), path)
    fresh = ESTIMATORS[kind]()
    fresh.fit_begin(data.blocks)
    fresh.load_state_dict(torch.load(path, weights_only=True))
    assert fresh.metadata() == est.metadata()
    # invariant: the loaded state is the fitted one (the tensors load bit for bit; the scores
    # are recomputed from them at other addresses, so to float64 rounding)
    assert_equal_to_rounding(estimator_scores(fresh, data, rows), estimator_scores(est, data, rows))
    other = ESTIMATORS[kind]()
    other.fit_begin([data.norm])
    with pytest.raises(CurvatureError, match="does not match"):
        other.load_state_dict(torch.load(path, weights_only=True))


@pytest.mark.parametrize("kind", sorted(ESTIMATORS))
def test_float32_factors_use_float32_products_and_float64_statistics(kind):
    """A float32 model: per-batch products and stored eigenvectors in float32, accumulation and
    eigendecomposition in float64; scores agree with the float64 fit to float32 accuracy."""
    data = Synthetic(m=24, seed=14)
    rows = list(range(24))
    ref = fit(ESTIMATORS[kind](), data.blocks, data.batches(rows, 6), len(rows))
    lin32 = ParamBlock(
        name="lin",
        kind="linear",
        params={n: nn.Parameter(p.float()) for n, p in data.lin.params.items()},
    )
    norm32 = ParamBlock(
        name="norm",
        kind="layernorm",
        params={n: nn.Parameter(p.float()) for n, p in data.norm.params.items()},
    )

    def batches32(rows_: Sequence[int]) -> list[list[LayerFactors]]:
        out = []
        for b in data.batches(rows_, 6):
            gen = b[1].per_sample_grads()["norm.weight"].float()
            out.append(
                [
                    linear_factors(lin32, b[0].inputs.float(), b[0].output_grads.float()),
                    LayerFactors(norm32, gen.shape[0], lambda gen=gen: {"norm.weight": gen}),
                ]
            )
        return out

    est = fit(ESTIMATORS[kind](), [lin32, norm32], batches32(rows), len(rows))
    kb = est.blocks["lin"]
    assert kb.q_a.dtype == torch.float32 and kb.eig_a.dtype == F64 and kb.eigenvalues().dtype == F64
    got = torch.cat([sum(est.quadratic_form(f) for f in b) for b in batches32(rows)])
    assert got.dtype == F64
    np.testing.assert_allclose(got.numpy(), estimator_scores(ref, data, rows), rtol=1e-4)


_DIST_WORKER = """
import json, sys
from pathlib import Path
import torch
from biocoreset.adapters.hf import HFAdapter
from biocoreset.api import score_to_file
from biocoreset.testing import tiny_esm
from biocoreset.runtime.distributed import current, init_distributed

ctx = init_distributed()
model, tok = tiny_esm(seed=0)
out = Path(sys.argv[2])
meta = score_to_file(HFAdapter(model, tok), sys.argv[1], out / "scores.parquet", subset=9, batch_size=4,
                     shard_size=4, progress=False, curvature=sys.argv[3], engine="hooks")
if ctx.is_main:
    (out / "meta.json").write_text(json.dumps(meta, default=str))
current().barrier()
if ctx.is_distributed:
    torch.distributed.destroy_process_group()
"""


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(ESTIMATORS))
def test_torchrun_two_ranks_equals_one_process(kind, tmp_path):
    """Under torchrun (gloo, 2 ranks, one rank without a batch in the last step of each pass) the
    all-reduced factors, Λ, λ and the scores equal the single-process ones."""
    pytest.importorskip("biocoreset.grads.engine")
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available")
    import json
    import os
    import subprocess
    import sys

    from biocoreset import load_scores
    from biocoreset.data.synthetic import write_fasta

    worker = tmp_path / "worker.py"
    worker.write_text(_DIST_WORKER)
    corpus = write_fasta(random_rna(14, seed=6, min_len=4, max_len=30), tmp_path / "c.fa")
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    outs = []
    for nproc in (1, 2):
        out = tmp_path / f"n{nproc}"
        out.mkdir()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--standalone",
                f"--nproc_per_node={nproc}",
                str(worker),
                str(corpus),
                str(out),
                kind,
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        outs.append(
            (json.loads((out / "meta.json").read_text()), load_scores(out / "scores.parquet"))
        )
    (ma, sa), (mb, sb) = outs
    assert mb["world_size"] == 2 and ma["curvature"] == mb["curvature"] == kind
    assert ma["kfac_layers"] == mb["kfac_layers"] and ma["kfac_layers"]
    assert mb["damping"] == pytest.approx(ma["damping"], rel=1e-10)
    assert sa.ids == sb.ids
    np.testing.assert_allclose(sb.scores, sa.scores, rtol=1e-8)

"""The ``kfac`` and ``ekfac`` curvatures: Kronecker-factored empirical Fisher blocks per linear layer.

For a linear layer ``y = W̃ x̃`` (``W̃ = [W | b]``, ``x̃ = [x; 1]`` when the layer has a bias) the
gradient of sample ``m`` is ``G_m = Σ_t δ_{m,t} x̃_{m,t}ᵀ`` (``[d_out, d_in]``), with ``δ`` the
gradient of the summed per-sample losses with respect to the layer output. Over ``D_sub`` (``M``
sequences) the estimator accumulates::

    A = Σ_m Σ_{t ∈ P_m} x̃ x̃ᵀ / N_tokens        (per token)
    S = Σ_m Σ_{t ∈ P_m} δ δᵀ / M                (per sequence)

where ``P_m`` is the set of positions of sequence ``m`` whose output-gradient row is not identically
zero (the positions through which the loss reaches the layer: never padding; only the labelled,
masked positions for a position-wise head after the last attention) and ``N_tokens = Σ_m |P_m|``.
With the column-stacking convention ``vec(δ x̃ᵀ) = x̃ ⊗ δ`` the curvature block is ``A ⊗ S``. For one
token per sample it is ``E[x̃x̃ᵀ] ⊗ E[δδᵀ]`` over ``D_sub``, the expected empirical Fisher
``E[(x̃x̃ᵀ) ⊗ (δδᵀ)]`` exactly when ``x̃`` and ``δ`` are independent (so the finite-``M`` empirical
Fisher and K-FAC converge to each other as ``M`` grows); for ``T`` tokens it is the usual "tokens
uncorrelated" approximation, at the same per-sequence scale as the diagonal Fisher.

``A = Q_A diag(a) Q_Aᵀ`` and ``S = Q_S diag(s) Q_Sᵀ`` are eigendecomposed in float64. In that
basis the per-sample gradient is ``R_m = Q_Sᵀ G_m Q_A`` and the eigenvalues are ``Λ_ij = s_i a_j``
(K-FAC) or, re-fitted on a second pass over ``D_sub``, ``Λ_ij = (1/M) Σ_m (R_m)_ij²`` (EK-FAC). The
block's contribution to the self-influence is ``Σ_ij (R_z)_ij² / (Λ_ij + λ)``, which equals
``vec(G_z)ᵀ (C + λI)⁻¹ vec(G_z)`` with ``C = (Q_A ⊗ Q_S) diag(vec Λ) (Q_A ⊗ Q_S)ᵀ``.

Every other block (embeddings, LayerNorm, loose or tied parameters: any block whose kind is not
``"linear"``) gets the diagonal empirical Fisher of :class:`~biocoreset.curvature.diagonal.DiagonalFisher`.
One λ serves the whole curvature: absolute, or ``damping_relative`` × the mean eigenvalue
``trace(C) / P`` over every scored parameter. See ``docs/curvature-kfac.md``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import attrs
import torch

from biocoreset.curvature.damping import (
    DEFAULT_RELATIVE_DAMPING,
    check_damping_options,
    resolve_damping,
)
from biocoreset.curvature.diagonal import DiagonalFisher
from biocoreset.curvature.kronecker import NORMALISATION, KroneckerBlock, eigh_psd, patterns
from biocoreset.errors import ConfigError, CurvatureError, did_you_mean
from biocoreset.protocols import LayerFactors, ParamBlock

__all__ = ["DEFAULT_MAX_DIM", "EKFAC", "KFAC", "KroneckerBlock"]

DEFAULT_MAX_DIM = 8192
"""Largest Kronecker factor (``d_in + 1`` or ``d_out``) eigendecomposed densely by default."""

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@attrs.define(kw_only=True, eq=False, slots=False)
class KFAC:
    """K-FAC curvature for ``"linear"`` blocks, diagonal empirical Fisher for every other block.

    Args:
        damping: Absolute λ. When ``None``, λ = ``damping_relative`` × the mean eigenvalue of the
            whole curvature (``trace(C) / P``, K-FAC/EK-FAC eigenvalues and diagonal Fisher entries
            together).
        damping_relative: Multiple of the mean eigenvalue (default 0.1).
        dtype: Compute dtype of the per-batch products, ``"float32"`` (default) or ``"float64"``;
            float64 factors are always computed in float64. Factors are accumulated and
            eigendecomposed in float64 whatever this says.
        max_dim: Largest Kronecker factor dimension (``d_in + 1`` or ``d_out``) decomposed densely;
            a larger linear layer is a :class:`~biocoreset.errors.ConfigError` (memory
            ``O(d_in² + d_out²)`` and time ``O(d³)`` per layer).
        diagonal_layers: :mod:`fnmatch` globs of linear block names that get the diagonal Fisher
            instead (e.g. a huge output projection).

    Attributes:
        damping: The absolute λ once fitted (``None`` before); the option is ``damping_option``.

    Example:
        >>> est = KFAC(damping_relative=0.1, max_dim=4096)
        >>> est.name, est.needs_fit
        ('kfac', True)
    """

    name: ClassVar[str] = "kfac"
    needs_fit: ClassVar[bool] = True
    eigenvalue_corrected: ClassVar[bool] = False

    damping_option: float | None = attrs.field(default=None, alias="damping")
    damping_relative: float | None = None
    dtype_name: str = attrs.field(default="float32", alias="dtype")
    max_dim: int = DEFAULT_MAX_DIM
    diagonal_layers: tuple[str, ...] = attrs.field(default=(), converter=patterns)
    acc_dtype: torch.dtype = attrs.field(init=False, repr=False)
    blocks: dict[str, KroneckerBlock] = attrs.field(factory=dict, init=False, repr=False)
    diagonal: DiagonalFisher = attrs.field(init=False, repr=False)
    damping: float | None = attrs.field(default=None, init=False)
    mean_eigenvalue: float | None = attrs.field(default=None, init=False, repr=False)
    num_samples: int = attrs.field(default=0, init=False, repr=False)
    _pass: int = attrs.field(default=0, init=False, repr=False)
    _fitted: bool = attrs.field(default=False, init=False, repr=False)
    _by_param: dict[str, str] = attrs.field(factory=dict, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        check_damping_options(self.damping_option, self.damping_relative)
        if self.dtype_name not in _DTYPES:
            raise ConfigError(
                f"dtype must be one of {sorted(_DTYPES)}, got {self.dtype_name!r}."
                f"{did_you_mean(str(self.dtype_name), _DTYPES)}"
            )
        if isinstance(self.max_dim, bool) or not isinstance(self.max_dim, int) or self.max_dim < 1:
            raise ConfigError(f"max_dim must be an integer >= 1, got {self.max_dim!r}.")
        self.acc_dtype = _DTYPES[self.dtype_name]
        self.diagonal = DiagonalFisher(damping=0.0, dtype=self.dtype_name)

    # -- life cycle -------------------------------------------------------------------------------

    @property
    def fit_passes(self) -> int:
        """Passes over ``D_sub``: 2 for EK-FAC with at least one linear block, else 1."""
        return 2 if self.eigenvalue_corrected and self.blocks else 1

    def fit_begin(self, blocks: Sequence[ParamBlock]) -> None:
        """Split ``blocks`` into Kronecker (``"linear"``) and diagonal ones and allocate statistics.

        Raises:
            ConfigError: A linear block is malformed, or has a factor larger than ``max_dim``.
        """
        self.blocks = {}
        self._by_param = {}
        diagonal_blocks: list[ParamBlock] = []
        for block in blocks:
            if block.kind != "linear" or any(
                fnmatch.fnmatchcase(block.name, p) for p in self.diagonal_layers
            ):
                diagonal_blocks.append(block)
                self._by_param.update(dict.fromkeys(block.params, "diagonal"))
                continue
            if block.name in self.blocks:
                raise ConfigError(
                    f"two linear blocks are named {block.name!r}; block names must be unique."
                )
            kb = self._parse_linear(block)
            self.blocks[block.name] = kb
            self._by_param.update(dict.fromkeys(block.params, self.name))
        self.diagonal = DiagonalFisher(damping=0.0, dtype=self.dtype_name)
        self.diagonal.fit_begin(diagonal_blocks)
        self.damping = None
        self.mean_eigenvalue = None
        self.num_samples = 0
        self._pass = 0
        self._fitted = False

    def fit_accumulate(self, factors: LayerFactors) -> None:
        """Add one batch of one block: ``x̃x̃ᵀ``, ``δδᵀ`` and token counts (pass 1), squared rotated
        per-sample gradients (EK-FAC pass 2), or squared gradients (diagonal blocks, pass 1)."""
        kb = self.blocks.get(factors.block.name)
        if kb is None:
            if self._pass == 0:
                self.diagonal.fit_accumulate(factors)
            return
        x, d = self._factors(factors, kb)
        if self._pass == 0:
            assert kb.a_sum is not None and kb.s_sum is not None and kb.count is not None
            keep = (d != 0).any(-1)  # [B, T]: positions through which the loss reaches the layer
            xs = x[keep]
            ds = d[keep]
            kb.a_sum += (xs.T @ xs).to(torch.float64)
            kb.s_sum += (ds.T @ ds).to(torch.float64)
            kb.count += keep.sum().to(torch.float64)
        else:
            assert kb.lam_sum is not None
            kb.lam_sum += kb.rotate(x, d).square().sum(0).to(torch.float64)

    def fit_end(
        self, num_samples: int, reduce: Callable[[torch.Tensor], None] | None = None
    ) -> None:
        """End a pass over ``D_sub``: all-reduce its statistics with ``reduce``, normalise by
        ``num_samples`` (the global count) and, after the last pass, resolve λ.

        Pass 1 eigendecomposes ``A`` and ``S`` (float64). EK-FAC needs a second pass (see
        :attr:`fit_passes`) whose ``fit_end`` normalises ``Λ``.

        Raises:
            CurvatureError: ``D_sub`` is empty; ``fit_end`` was called once too often or with a
                different ``num_samples``; or λ = 0 and the curvature is singular.
        """
        if num_samples < 1:
            raise CurvatureError(
                f"{self.name} needs at least one D_sub sample; the subset is empty."
            )
        if self._pass == 0:
            self.num_samples = num_samples
            self._end_factor_pass(num_samples, reduce)
            if self.fit_passes == 2:
                for kb in self.blocks.values():
                    kb.lam_sum = torch.zeros(
                        (kb.d_out, kb.d_in), dtype=torch.float64, device=kb.device
                    )
                self._pass = 1
                return
        elif self._pass == 1 and self.fit_passes == 2:
            if num_samples != self.num_samples:
                raise CurvatureError(
                    f"EK-FAC pass 2 saw num_samples={num_samples}, pass 1 saw {self.num_samples}: both "
                    "passes must run over the same D_sub."
                )
            for kb in self.blocks.values():
                assert kb.lam_sum is not None
                if reduce is not None:
                    reduce(kb.lam_sum)
                kb.lam = kb.lam_sum / num_samples
                kb.lam_sum = None
        else:
            raise CurvatureError(
                f"fit_end() called {self._pass + 1} times but {self.name} takes {self.fit_passes} "
                "pass(es) over D_sub; call fit_begin() to refit."
            )
        self._pass += 1
        self._finish()

    def quadratic_form(self, factors: LayerFactors) -> torch.Tensor:
        """``[B]`` float64 ``Σ_ij (Q_Sᵀ G_b Q_A)_ij² / (Λ_ij + λ)`` for a linear block; the diagonal
        Fisher's ``Σ_j g_{b,j}² / (F_j + λ)`` for any other block.

        Raises:
            CurvatureError: The estimator is not fully fitted.
        """
        if not self._fitted or self.damping is None:
            if self._pass == 1:
                raise CurvatureError(
                    f"{self.name} is half fitted: EK-FAC takes fit_passes=2 passes over D_sub and "
                    "fit_end() ran once. Run the second pass (the driver must honour fit_passes)."
                )
            raise CurvatureError(f"{self.name} is not fitted: call fit_end() first.")
        kb = self.blocks.get(factors.block.name)
        if kb is None:
            return self.diagonal.quadratic_form(factors)
        x, d = self._factors(factors, kb)
        r = kb.rotate(x, d)
        assert kb.inverse is not None
        r = r.square_().flatten(1)
        return (r @ kb.inverse.to(r.dtype).flatten()).to(torch.float64)

    def metadata(self) -> dict[str, Any]:
        """Absolute λ and how it was chosen, the normalisation, each Kronecker block's dimensions and
        token count, and which curvature each scored parameter got."""
        rel = None
        if self.damping_option is None:
            rel = (
                self.damping_relative
                if self.damping_relative is not None
                else DEFAULT_RELATIVE_DAMPING
            )
        n_kron = sum(kb.numel for kb in self.blocks.values())
        n_diag = sum(f.numel() for f in self.diagonal.fisher.values())
        return {
            "curvature": self.name,
            "damping": self.damping,
            "damping_mode": "absolute" if self.damping_option is not None else "relative",
            "damping_relative": rel,
            "mean_eigenvalue": self.mean_eigenvalue,
            "fit_samples": self.num_samples,
            "kfac_normalisation": NORMALISATION,
            "kfac_layers": {
                kb.name: {
                    "d_in": kb.d_in,
                    "d_out": kb.d_out,
                    "bias": kb.bias is not None,
                    "tokens": kb.tokens,
                }
                for kb in self.blocks.values()
            },
            "num_kronecker_parameters": n_kron,
            "num_diagonal_parameters": n_diag,
            "curvature_by_parameter": dict(self._by_param),
        }

    def state_dict(self) -> dict[str, Any]:
        """The fitted state (tensors, numbers and strings only; loadable with ``weights_only=True``).

        Raises:
            CurvatureError: The estimator is not fully fitted.
        """
        if not self._fitted:
            raise CurvatureError(f"{self.name} is not fitted: nothing to save.")
        blocks = {}
        for kb in self.blocks.values():
            blocks[kb.name] = {
                "d_in": kb.d_in,
                "d_out": kb.d_out,
                "tokens": kb.tokens,
                "eig_a": kb.eig_a,
                "q_a": kb.q_a,
                "eig_s": kb.eig_s,
                "q_s": kb.q_s,
                "lam": kb.lam,
            }
        return {
            "name": self.name,
            "damping": self.damping,
            "mean_eigenvalue": self.mean_eigenvalue,
            "num_samples": self.num_samples,
            "blocks": blocks,
            "diagonal": dict(self.diagonal.fisher),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` into an estimator that ran ``fit_begin`` on the same blocks.

        Raises:
            CurvatureError: The state belongs to another estimator or other blocks.
        """
        blocks = state.get("blocks", {})
        if (
            state.get("name") != self.name
            or set(blocks) != set(self.blocks)
            or set(state["diagonal"]) != set(self.diagonal.fisher)
        ):
            raise CurvatureError(
                f"saved curvature state does not match this {self.name} estimator's blocks; refit it."
            )
        for name, saved in blocks.items():
            kb = self.blocks[name]
            if (saved["d_in"], saved["d_out"]) != (kb.d_in, kb.d_out):
                raise CurvatureError(
                    f"saved block {name!r} has other dimensions; refit the curvature."
                )
            kb.tokens = int(saved["tokens"])
            kb.eig_a, kb.q_a = saved["eig_a"].to(kb.device), saved["q_a"].to(kb.device)
            kb.eig_s, kb.q_s = saved["eig_s"].to(kb.device), saved["q_s"].to(kb.device)
            kb.lam = None if saved["lam"] is None else saved["lam"].to(kb.device)
            kb.a_sum = kb.s_sum = kb.count = kb.lam_sum = None
        for name, f in state["diagonal"].items():
            self.diagonal.fisher[name].copy_(f)
        self.num_samples = self.diagonal.num_samples = int(state["num_samples"])
        self.damping = self.diagonal.damping = float(state["damping"])
        self.mean_eigenvalue = float(state["mean_eigenvalue"])
        self._set_inverses()
        self._pass = self.fit_passes
        self._fitted = True

    # -- helpers ----------------------------------------------------------------------------------

    def _parse_linear(self, block: ParamBlock) -> KroneckerBlock:
        mats = [(n, p) for n, p in block.params.items() if p.dim() == 2]
        vecs = [(n, p) for n, p in block.params.items() if p.dim() == 1]
        if (
            len(mats) > 1
            or len(vecs) > 1
            or not block.params
            or len(mats) + len(vecs) != len(block.params)
        ):
            shapes = {n: tuple(p.shape) for n, p in block.params.items()}
            raise ConfigError(
                f"linear block {block.name!r} must hold one [d_out, d_in] weight and/or one [d_out] "
                f"bias, got {shapes}. Fix the engine's block, or list it in "
                "curvature_options={'diagonal_layers': [...]} to give it the diagonal Fisher."
            )
        wname: str | None = None
        bname: str | None = None
        d_in = 0
        if mats:  # a bias-only block (weight not scored) has inputs of just the ones column
            wname, weight = mats[0]
            d_out, d_in = weight.shape
        if vecs:
            bname, bias = vecs[0]
            if wname is not None and bias.shape[0] != d_out:
                raise ConfigError(
                    f"linear block {block.name!r}: bias {bname!r} has {bias.shape[0]} entries, the weight "
                    f"{wname!r} has {d_out} output rows."
                )
            d_out = bias.shape[0]
            d_in += 1
        device = next(iter(block.params.values())).device
        big = max(d_in, d_out)
        if big > self.max_dim:
            gib = 8 * (d_in**2 + d_out**2) * 2 / 2**30
            raise ConfigError(
                f"linear layer {block.name!r} has a Kronecker factor of dimension {big} (d_in{'+1' if bname else ''}"
                f"={d_in}, d_out={d_out}) above max_dim={self.max_dim}: its dense float64 "
                f"eigendecomposition needs ~{gib:.1f} GiB and O(d³) time. Score fewer layers "
                "(parameters=[...] without it), give it the diagonal Fisher with "
                f"curvature_options={{'diagonal_layers': [{block.name!r}]}}, use curvature='diagonal', "
                "or raise curvature_options={'max_dim': ...}."
            )
        kb = KroneckerBlock(block.name, wname, bname, d_in, d_out, device)
        param_dtype = next(iter(block.params.values())).dtype
        kb.compute_dtype = torch.promote_types(param_dtype, self.acc_dtype)
        return kb

    def _factors(
        self, factors: LayerFactors, kb: KroneckerBlock
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x, d = factors.inputs, factors.output_grads
        if x is None or d is None:
            raise CurvatureError(
                f"{self.name}: linear block {kb.name!r} came without inputs/output_grads; the gradient "
                "engine must provide Kronecker factors for 'linear' blocks."
            )
        B = factors.batch_size
        if x.dim() == 2:  # one position per sample
            x, d = x.unsqueeze(1), d.unsqueeze(1)
        elif x.dim() > 3:  # [B, *positions, d]
            x, d = x.flatten(1, -2), d.flatten(1, -2)
        if (
            x.shape[-1] != kb.d_in
            or d.shape[-1] != kb.d_out
            or x.shape[:-1] != d.shape[:-1]
            or x.shape[0] != B
        ):
            raise CurvatureError(
                f"{self.name}: linear block {kb.name!r} expects inputs [B={B}, T, {kb.d_in}] and output "
                f"grads [B, T, {kb.d_out}], got {tuple(x.shape)} and {tuple(d.shape)}."
            )
        dtype = torch.promote_types(torch.promote_types(x.dtype, d.dtype), self.acc_dtype)
        return x.to(device=kb.device, dtype=dtype), d.to(device=kb.device, dtype=dtype)

    def _end_factor_pass(
        self, num_samples: int, reduce: Callable[[torch.Tensor], None] | None
    ) -> None:
        for kb in self.blocks.values():
            assert kb.a_sum is not None and kb.s_sum is not None and kb.count is not None
            if reduce is not None:
                reduce(kb.a_sum)
                reduce(kb.s_sum)
                reduce(kb.count)
            kb.tokens = round(float(kb.count))
            a = kb.a_sum / max(kb.tokens, 1)
            s = kb.s_sum / num_samples
            kb.eig_a, q_a = eigh_psd(a)
            kb.eig_s, q_s = eigh_psd(s)
            kb.q_a, kb.q_s = q_a.to(kb.compute_dtype), q_s.to(kb.compute_dtype)
            kb.a_sum = kb.s_sum = kb.count = None
        for acc in self.diagonal.fisher.values():
            if reduce is not None:
                reduce(acc)
            acc /= num_samples
        self.diagonal.num_samples = num_samples

    def _finish(self) -> None:
        total = sum(float(kb.eigenvalues().sum()) for kb in self.blocks.values())
        total += sum(float(f.sum()) for f in self.diagonal.fisher.values())
        count = sum(kb.numel for kb in self.blocks.values()) + sum(
            f.numel() for f in self.diagonal.fisher.values()
        )
        self.mean_eigenvalue = total / max(count, 1)
        lam = resolve_damping(self.damping_option, self.damping_relative, self.mean_eigenvalue)
        if lam == 0.0:
            self._check_invertible()
        self.damping = lam
        self.diagonal.damping = lam
        self._set_inverses()
        self._fitted = True

    def _set_inverses(self) -> None:
        assert self.damping is not None
        for kb in self.blocks.values():
            kb.inverse = (kb.eigenvalues() + self.damping).reciprocal().to(kb.compute_dtype)

    def _check_invertible(self) -> None:
        eps = torch.finfo(torch.float64).eps
        bad: dict[str, int] = {}
        for kb in self.blocks.values():
            lam = kb.eigenvalues()
            tol = float(lam.max()) * max(kb.d_in, kb.d_out) * eps if lam.numel() else 0.0
            k = int((lam <= tol).sum())
            if k:
                bad[kb.name] = k
        for name, f in self.diagonal.fisher.items():
            k = int((f == 0).sum())
            if k:
                bad[name] = k
        if bad:
            listed = ", ".join(f"{n} ({k} eigenvalues)" for n, k in list(bad.items())[:5])
            raise CurvatureError(
                f"damping is 0 but the {self.name} curvature is singular in {len(bad)} block(s)/parameter(s): "
                f"{listed}{' ...' if len(bad) > 5 else ''}. Sequences with gradient in those directions "
                "would score inf. Set damping > 0 (e.g. damping_relative=0.1) or exclude these parameters."
            )


@attrs.define(kw_only=True, eq=False, slots=False)
class EKFAC(KFAC):
    """EK-FAC: K-FAC's Kronecker eigenbasis with eigenvalues re-fitted on a second pass over ``D_sub``,
    ``Λ_ij = (1/M) Σ_m (Q_Sᵀ G_m Q_A)_ij²`` — the diagonal of the exact empirical Fisher in that basis.

    Takes the same options as :class:`KFAC`.

    Example:
        >>> EKFAC().name, EKFAC().eigenvalue_corrected
        ('ekfac', True)
    """

    name: ClassVar[str] = "ekfac"
    eigenvalue_corrected: ClassVar[bool] = True

"""The fitted state of one linear block of the ``kfac``/``ekfac`` curvatures (:mod:`biocoreset.curvature.kfac`)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from biocoreset.errors import CurvatureError

__all__ = ["NORMALISATION", "KroneckerBlock", "eigh_psd", "patterns"]

NORMALISATION = (
    "A = sum_{m,t in P_m} x x^T / N_tokens (x with a trailing 1 for the bias); "
    "S = sum_{m,t in P_m} delta delta^T / M; P_m = positions of sequence m with a nonzero output "
    "gradient; curvature block A kron S (vec column-stacking); EK-FAC: Lambda = mean_m (Q_S^T G_m Q_A)^2"
)


def patterns(value: str | Sequence[str]) -> tuple[str, ...]:
    """``diagonal_layers`` as a tuple of strings (one glob may be given as a string)."""
    return (value,) if isinstance(value, str) else tuple(str(p) for p in value)


class KroneckerBlock:
    """Fitted state of one linear block.

    Attributes:
        name: Block name.
        weight: Qualified name of the ``[d_out, d_in]`` weight, or ``None`` (bias-only block).
        bias: Qualified name of the ``[d_out]`` bias, or ``None``.
        d_in: Input dimension, including the ones column of the bias.
        d_out: Output dimension.
        tokens: Number of positions that entered ``A`` (after :meth:`KFAC.fit_end`).
        eig_a: Eigenvalues of ``A`` (float64, ascending, clamped at 0).
        q_a: Eigenvectors of ``A`` (columns; computed in float64, stored in the compute dtype
            ``promote(parameter dtype, dtype option)``: float32 for a float32 model by default).
        eig_s: Eigenvalues of ``S``.
        q_s: Eigenvectors of ``S``.
        lam: EK-FAC eigenvalues ``[d_out, d_in]`` (``None`` for K-FAC, whose ``Λ = outer(eig_s, eig_a)``).
        inverse: ``1 / (Λ + λ)`` in the compute dtype, set once λ is known.
    """

    def __init__(
        self,
        name: str,
        weight: str | None,
        bias: str | None,
        d_in: int,
        d_out: int,
        device: torch.device,
    ) -> None:
        self.name, self.weight, self.bias = name, weight, bias
        self.d_in, self.d_out, self.device = d_in, d_out, device
        f64 = torch.float64
        self.a_sum: torch.Tensor | None = torch.zeros((d_in, d_in), dtype=f64, device=device)
        self.s_sum: torch.Tensor | None = torch.zeros((d_out, d_out), dtype=f64, device=device)
        self.count: torch.Tensor | None = torch.zeros(1, dtype=f64, device=device)
        self.lam_sum: torch.Tensor | None = None
        self.tokens = 0
        self.eig_a = self.q_a = self.eig_s = self.q_s = torch.empty(0)
        self.lam: torch.Tensor | None = None
        self.inverse: torch.Tensor | None = None
        self.compute_dtype = torch.float64

    @property
    def numel(self) -> int:
        """Number of parameters (weight and bias) in the block."""
        return self.d_in * self.d_out

    def eigenvalues(self) -> torch.Tensor:
        """``[d_out, d_in]`` float64 eigenvalues ``Λ`` in the Kronecker eigenbasis (undamped)."""
        if self.lam is not None:
            return self.lam
        return torch.outer(self.eig_s, self.eig_a)

    def factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The normalised float64 factors ``(A, S)``, rebuilt from their eigendecompositions."""
        a = (self.q_a * self.eig_a) @ self.q_a.T
        s = (self.q_s * self.eig_s) @ self.q_s.T
        return a, s

    def bases(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """``(Q_A, Q_S)`` in ``dtype`` (stored in the compute dtype, so normally no copy)."""
        return self.q_a.to(dtype), self.q_s.to(dtype)

    def rotate(self, x: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """``[B, d_out, d_in]`` per-sample gradients ``Q_Sᵀ G_b Q_A`` from factors ``x``, ``d`` (``[B, T, ·]``).

        Rotates the factors first when that is cheaper (short sequences), else forms ``G_b`` first.
        """
        q_a, q_s = self.bases(x.dtype)
        t = x.shape[1]
        if t * (self.d_in**2 + self.d_out**2) <= self.d_in * self.d_out * (self.d_in + self.d_out):
            return torch.bmm((d @ q_s).transpose(1, 2), x @ q_a)
        g = torch.bmm(d.transpose(1, 2), x)
        return q_s.T @ g @ q_a


def eigh_psd(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetrised float64 eigendecomposition with eigenvalues clamped at 0 (the factor is PSD)."""
    m = matrix.to(torch.float64)
    m = (m + m.T) / 2
    vals, vecs = torch.linalg.eigh(m)
    if not bool(torch.isfinite(vals).all()):
        raise CurvatureError("a K-FAC factor has non-finite entries: the gradients overflowed.")
    return vals.clamp_min(0.0), vecs

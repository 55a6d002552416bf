"""Task heads on top of backbone representations (paper Appendix B).

* :class:`LinearHead` — one linear layer (RNA sequence tasks).
* :class:`MLPHead` — two layers with a ReLU (protein tasks; also per residue on ``[..., H]``).
* :class:`PairwiseHead` — a symmetric ``[B, L, L, out]`` map from residue features: low-rank
  projections ``a_i = A h_i``, ``b_j = B h_j``, pair feature ``a_i ⊙ b_j`` (+ the transposed term),
  then a small MLP. Memory ``O(L² · dim)``.
* :class:`SequencePairHead` — a two-layer head on the pooled features of two sequences.

Example:
    >>> import torch
    >>> PairwiseHead(8, dim=4)(torch.zeros(2, 5, 8)).shape
    torch.Size([2, 5, 5, 1])
"""

from __future__ import annotations

import torch
from torch import nn

from biocoreset.errors import ConfigError

__all__ = ["HEADS", "LinearHead", "MLPHead", "PairwiseHead", "SequencePairHead", "make_head"]


class LinearHead(nn.Module):
    """``Linear(in_features, out_features)``."""

    def __init__(self, in_features: int, out_features: int, *, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(x))


class MLPHead(nn.Module):
    """Two-layer MLP ``Linear → ReLU → Dropout → Linear`` (works on any leading shape)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        hidden: int | None = None,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        hidden = hidden or max(16, in_features // 2)
        self.net = nn.Sequential(
            nn.Linear(in_features, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, out_features),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class PairwiseHead(nn.Module):
    """Symmetric pair map from residue features ``[B, L, H]`` → ``[B, L, L, out_features]``.

    Args:
        in_features: Residue feature size ``H``.
        out_features: Outputs per pair (1 for a logit or a distance).
        dim: Projection size of the pair features.
        hidden: Hidden size of the pair MLP (``None``: ``dim``).
    """

    def __init__(
        self, in_features: int, out_features: int = 1, *, dim: int = 32, hidden: int | None = None
    ) -> None:
        super().__init__()
        self.left = nn.Linear(in_features, dim)
        self.right = nn.Linear(in_features, dim)
        hidden = hidden or dim
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, out_features))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        a, b = self.left(h), self.right(h)
        z = a.unsqueeze(2) * b.unsqueeze(1) + b.unsqueeze(2) * a.unsqueeze(1)  # symmetric in (i, j)
        return self.mlp(z)


class SequencePairHead(nn.Module):
    """Two-layer head on two pooled vectors: ``[a, b]`` (``"concat"``) or ``[a + b, a ⊙ b]``
    (``"symmetric"``, order-invariant)."""

    def __init__(
        self,
        in_features: int,
        out_features: int = 1,
        *,
        features: str = "concat",
        hidden: int | None = None,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if features not in ("concat", "symmetric"):
            raise ConfigError(f"pair features must be 'concat' or 'symmetric', got {features!r}.")
        self.features = features
        self.mlp = MLPHead(2 * in_features, out_features, hidden=hidden, dropout=dropout)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        x = torch.cat([a, b], -1) if self.features == "concat" else torch.cat([a + b, a * b], -1)
        return self.mlp(x)


HEADS = ("linear", "mlp")
"""Names accepted by :func:`make_head` for sequence and per-residue tasks."""


def make_head(name: str, in_features: int, out_features: int, **options: object) -> nn.Module:
    """Build a ``"linear"`` or ``"mlp"`` head.

    Raises:
        ConfigError: Unknown head name.
    """
    if name == "linear":
        return LinearHead(in_features, out_features, **options)  # type: ignore[arg-type]
    if name == "mlp":
        return MLPHead(in_features, out_features, **options)  # type: ignore[arg-type]
    raise ConfigError(f"unknown head {name!r}; choices: {', '.join(HEADS)}.")

"""The ``diagonal`` curvature: the diagonal empirical Fisher over ``D_sub`` (paper Eq. 10–11).

``F = (1/M) Σ_m g_m ⊙ g_m`` and ``I(z) = Σ_j g_{z,j}² / (F_j + λ)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import attrs
import torch

from biocoreset.curvature.damping import check_damping_options, resolve_damping
from biocoreset.errors import ConfigError, CurvatureError, did_you_mean
from biocoreset.protocols import LayerFactors, ParamBlock

__all__ = ["DiagonalFisher"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@attrs.define(kw_only=True, eq=False, slots=False)
class DiagonalFisher:
    """Diagonal empirical Fisher with damping.

    Args:
        damping: Absolute λ. When ``None``, λ = ``damping_relative`` × mean(F).
        damping_relative: Multiple of the mean Fisher entry (default 0.1).
        dtype: Accumulation dtype, ``"float32"`` (default) or ``"float64"``; float64 gradients are
            always accumulated in float64.

    Attributes:
        damping: The absolute λ once fitted (``None`` before); the option is ``damping_option``.
        fisher: The fitted ``F`` per scored parameter.

    >>> DiagonalFisher(damping=0.0).name
    'diagonal'
    """

    name: ClassVar[str] = "diagonal"
    needs_fit: ClassVar[bool] = True

    damping_option: float | None = attrs.field(default=None, alias="damping")
    damping_relative: float | None = None
    dtype: str = "float32"
    acc_dtype: torch.dtype = attrs.field(init=False, repr=False)
    fisher: dict[str, torch.Tensor] = attrs.field(factory=dict, init=False, repr=False)
    _inverses: dict[str, tuple[Any, torch.Tensor]] = attrs.field(
        factory=dict, init=False, repr=False
    )
    damping: float | None = attrs.field(default=None, init=False)
    num_samples: int = attrs.field(default=0, init=False)

    def __attrs_post_init__(self) -> None:
        check_damping_options(self.damping_option, self.damping_relative)
        if self.dtype not in _DTYPES:
            raise ConfigError(
                f"dtype must be one of {sorted(_DTYPES)}, got {self.dtype!r}."
                f"{did_you_mean(str(self.dtype), _DTYPES)}"
            )
        self.acc_dtype = _DTYPES[self.dtype]

    def fit_begin(self, blocks: Sequence[ParamBlock]) -> None:
        """Allocate one accumulator per scored parameter."""
        self.fisher = {}
        self._inverses = {}
        for block in blocks:
            for name, p in block.params.items():
                dtype = torch.promote_types(p.dtype, self.acc_dtype)
                self.fisher[name] = torch.zeros(p.shape, dtype=dtype, device=p.device)

    def fit_accumulate(self, factors: LayerFactors) -> None:
        """Add ``Σ_b g_b²`` of one batch."""
        for name, sq in factors.sum_squared_grads(self.acc_dtype).items():
            acc = self.fisher[name]
            acc += sq.to(acc.dtype)

    def fit_end(
        self, num_samples: int, reduce: Callable[[torch.Tensor], None] | None = None
    ) -> None:
        """Average over ``num_samples``, resolve λ, and check invertibility.

        Raises:
            CurvatureError: λ = 0 and some Fisher entries are 0 (the message names the parameters).
        """
        if num_samples < 1:
            raise CurvatureError("the Fisher needs at least one D_sub sample; the subset is empty.")
        for acc in self.fisher.values():
            if reduce is not None:
                reduce(acc)
            acc /= num_samples
        self.num_samples = num_samples
        total = sum(float(f.sum()) for f in self.fisher.values())
        count = sum(f.numel() for f in self.fisher.values())
        mean = total / max(count, 1)
        self.damping = resolve_damping(self.damping_option, self.damping_relative, mean)
        if self.damping == 0.0:
            zero = {n: int((f == 0).sum()) for n, f in self.fisher.items() if bool((f == 0).any())}
            if zero:
                listed = ", ".join(f"{n} ({k} entries)" for n, k in list(zero.items())[:5])
                raise CurvatureError(
                    f"damping is 0 but the Fisher has zero entries in {len(zero)} parameter(s): {listed}"
                    f"{' ...' if len(zero) > 5 else ''}. Every sequence whose gradient touches them "
                    "would score inf. Set damping > 0 (e.g. damping_relative=0.1) or exclude these "
                    "parameters."
                )

    def quadratic_form(self, factors: LayerFactors) -> torch.Tensor:
        """``Σ_j g_{b,j}² / (F_j + λ)`` over the block, float64."""
        if self.damping is None:
            raise CurvatureError("the diagonal Fisher is not fitted: call fit_end() first.")
        return factors.weighted_squared_norms(
            {name: self._inverse(name) for name in factors.block.params}
        )

    def _inverse(self, name: str) -> torch.Tensor:
        """``1 / (F + λ)`` for one parameter, cached until ``F`` or ``λ`` changes."""
        f = self.fisher[name]
        assert self.damping is not None
        key = (f._version, f.data_ptr(), self.damping)
        hit = self._inverses.get(name)
        if hit is None or hit[0] != key:
            hit = (key, 1.0 / (f + self.damping))
            self._inverses[name] = hit
        return hit[1]

    def metadata(self) -> dict[str, Any]:
        """Absolute λ, how it was chosen, and the mean Fisher entry."""
        count = sum(f.numel() for f in self.fisher.values())
        mean = sum(float(f.sum()) for f in self.fisher.values()) / max(count, 1)
        return {
            "curvature": self.name,
            "damping": self.damping,
            "damping_mode": "absolute" if self.damping_option is not None else "relative",
            "damping_relative": None
            if self.damping_option is not None
            else (self.damping_relative if self.damping_relative is not None else 0.1),
            "fisher_mean": mean,
            "fisher_zero_entries": int(sum(int((f == 0).sum()) for f in self.fisher.values())),
            "fit_samples": self.num_samples,
        }

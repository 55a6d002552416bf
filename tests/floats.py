"""Float comparisons that hold on any CPU (docs/reliability.md, "Floats across CPUs").

Floating-point results depend on the CPU's kernels (AVX2, AVX-512, a BLAS's code path, even the
memory alignment MKL sees), so two runs agree bit for bit only on one machine with one set of
kernels. A test that compares floats from another process, a saved file, a resumed run or another
batch shape therefore asks for equality *to the rounding of their dtype*: ``|a − d| ≤ k·eps·|d|``,
with ``k = 4096`` by default (float64: 9.1e-13 relative, the "≤ 1e-12" the docs state; float32:
4.9e-4). A real bug (another mask, another subset, a lost shard) moves a score by far more.

Bitwise comparisons stay where nothing is recomputed: a tensor saved and loaded, a state dict
that must be unchanged, integer indices.
"""

from __future__ import annotations

from typing import Any

import numpy as np

ULPS = 4096  # float64: 4096 · 2.2e-16 = 9.1e-13 relative


def _array(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def rounding_rtol(dtype: Any, ulps: int = ULPS) -> float:
    """The relative tolerance ``ulps · eps(dtype)``: 9.1e-13 for float64 at the default."""
    return ulps * float(np.finfo(np.dtype(dtype)).eps)


def assert_equal_to_rounding(
    actual: Any, desired: Any, *, ulps: int = ULPS, scale: str = "element", err_msg: str = ""
) -> None:
    """Assert two float arrays agree to the rounding of their (common) dtype.

    ``scale="element"`` bounds each entry by its own size (scores, losses: all well away from
    zero); ``scale="array"`` by the largest entry of ``desired`` (weights, whose entries cross
    zero). Shapes and dtypes must match; NaN must sit where NaN sits.
    """
    a, d = _array(actual), _array(desired)
    assert a.shape == d.shape, f"shapes differ: {a.shape} vs {d.shape} {err_msg}"
    assert a.dtype == d.dtype, f"dtypes differ: {a.dtype} vs {d.dtype} {err_msg}"
    assert np.issubdtype(a.dtype, np.floating), f"not a float array: {a.dtype} {err_msg}"
    rtol = rounding_rtol(a.dtype, ulps)
    if scale == "element":
        np.testing.assert_allclose(a, d, rtol=rtol, atol=0, err_msg=err_msg)
    elif scale == "array":
        finite = d[np.isfinite(d)]
        top = float(np.abs(finite).max()) if finite.size else 0.0
        np.testing.assert_allclose(a, d, rtol=0, atol=rtol * top, err_msg=err_msg)
    else:
        raise ValueError(f"scale must be 'element' or 'array', not {scale!r}")


def assert_state_dicts_equal_to_rounding(a: Any, b: Any, *, ulps: int = ULPS) -> None:
    """Every float tensor of two state dicts equal to rounding (``scale="array"``); the rest
    exactly."""
    assert a.keys() == b.keys()
    for k in a:
        x, y = _array(a[k]), _array(b[k])
        if np.issubdtype(x.dtype, np.floating):
            assert_equal_to_rounding(x, y, ulps=ulps, scale="array", err_msg=k)
        else:
            np.testing.assert_array_equal(x, y, err_msg=k)


def portable_tiny_esm(**options: Any) -> tuple[Any, Any]:
    """:func:`~biocoreset.testing.tiny_esm` with its random initial weights drawn in float64.

    ``tiny_esm`` builds the model in float32 first, and torch's float32 ``normal_``/``uniform_``
    give other last bits under other kernels (``ATEN_CPU_CAPABILITY=default`` moves the tiny
    model's weights by 1e-7 relative); its float64 draws are the same on every kernel. Use this
    where a test compares with numbers saved from a run of this model.
    """
    import torch

    from biocoreset.testing import tiny_esm

    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        return tiny_esm(**options)
    finally:
        torch.set_default_dtype(before)

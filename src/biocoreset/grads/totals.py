"""Per-sample totals summed block by block on the device, moved to the host once per batch.

A scorer adds one ``[B]`` value per parameter block (a quadratic form, a squared norm). Moving
each to the host would synchronise the device once per block; :class:`BatchTotal` keeps the sum
where the values are (float64, see :func:`~biocoreset.grads.factors.score_dtype`) and hands it over
once, with the batch's losses in the same transfer.

Example:
    >>> import torch
    >>> total = BatchTotal(2)
    >>> total.add(torch.tensor([1.0, 2.0]))
    >>> total.add(torch.tensor([0.5, 0.25], dtype=torch.float64))
    >>> scores, losses = total.to_host(torch.tensor([3.0, 4.0]))
    >>> scores.tolist(), losses.tolist(), scores.dtype
    ([1.5, 2.25], [3.0, 4.0], torch.float64)
"""

from __future__ import annotations

import torch

from biocoreset.grads.factors import score_dtype

__all__ = ["BatchTotal"]


class BatchTotal:
    """A ``[size]`` running sum kept on the device of the first values added.

    Args:
        size: Number of samples ``B``.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._acc: torch.Tensor | None = None

    def add(self, values: torch.Tensor) -> None:
        """Add ``[B]`` values (any float dtype, any device: they are moved to the sum's)."""
        if self._acc is None:
            device = values.device
            self._acc = torch.zeros(self.size, dtype=score_dtype(device), device=device)
        self._acc.add_(values.detach().to(self._acc.device, self._acc.dtype))

    def to_host(self, *others: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The sum, then each of ``others`` (``[B]`` each), as float64 CPU tensors, in one transfer."""
        acc = self._acc
        if acc is None:
            acc = torch.zeros(
                self.size, dtype=torch.float64, device=others[0].device if others else "cpu"
            )
        rows = [acc, *(t.detach().to(acc.device, acc.dtype) for t in others)]
        host = torch.stack(rows).to("cpu", torch.float64)
        return tuple(host.unbind(0))

"""The hook engine: per-sample gradients from one forward and one backward pass.

Per batch, :meth:`HookEngine.run` does

1. one forward pass, with forward hooks on the planned modules (:mod:`biocoreset.grads.plan`)
   keeping each call's input (a reference, not a copy: autograd saves it anyway);
2. a check of the autograd graph: every reader of a handled parameter lies inside a hooked call;
3. the exact fallback (:mod:`biocoreset.grads.fallback`) for parameters no handler covers;
4. one backward pass of ``Σ_b loss_b`` with :func:`torch.autograd.grad` *to the module outputs*
   (never to the parameters), so no parameter gradient is formed or accumulated in ``.grad``.
   Gradient hooks on the module outputs hand each call's output gradient to its handler as soon as
   autograd produces it; a block whose calls are all in is passed to ``on_block`` at once and
   dropped, so at most one layer's per-sample gradients exist at a time (tied parameters wait for
   their last use).

Per-sample quantities are formed in float32 — float64 when the model is float64 or
``dtype=torch.float64`` — whatever the autocast dtype of the forward pass. Under bf16 autocast the
linear layers' factors are kept as the bf16 values the layers saw, and the products formed from
them in float32 (:mod:`biocoreset.grads.factors`); the numbers are those of upcasting first.

Shaped for a GPU: per-sample products are formed in a workspace sized by device
(``workspace_bytes``; 8 MiB on the CPU, a quarter of the available memory on CUDA, so one linear
layer's products for a whole batch are one batched matmul), and the per-block reductions stay on
the device — a scorer moves a batch's scores to the host once (:mod:`biocoreset.grads.totals`).

Example:
    >>> import torch
    >>> from biocoreset.adapters.hf import HFAdapter
    >>> from biocoreset.testing import tiny_esm
    >>> adapter = HFAdapter(*tiny_esm())
    >>> engine = HookEngine(adapter, adapter.scored_parameters())
    >>> batch = adapter.collate([("a", "ACGUAC"), ("b", "GGA")], seed=0)
    >>> norms = torch.zeros(2, dtype=torch.float64)
    >>> losses = engine.run(batch, lambda f: norms.add_(f.squared_norms()))
    >>> tuple(losses.shape), bool((norms > 0).all())
    ((2,), True)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from biocoreset.errors import ConfigError
from biocoreset.grads.batch_run import BatchRun, RunSettings
from biocoreset.grads.factors import FAST_PATHS
from biocoreset.grads.plan import Plan, build_plan
from biocoreset.protocols import Batch, LayerFactors, ModelAdapter, ParamBlock

__all__ = ["AUTOCAST_DTYPES", "HookEngine"]

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
FP16_GRAD_SCALE = 2.0**12
FALLBACK_BUDGET = 512 * 2**20
"""Bytes of fallback per-sample gradients computed in one batched backward pass."""


def _resolve_autocast(autocast: str | torch.dtype | None) -> torch.dtype | None:
    if autocast is None:
        return None
    if isinstance(autocast, torch.dtype):
        if autocast in AUTOCAST_DTYPES.values():
            return autocast
    elif autocast in AUTOCAST_DTYPES:
        return AUTOCAST_DTYPES[autocast]
    raise ConfigError(
        f"autocast must be one of {sorted(AUTOCAST_DTYPES)} or None, got {autocast!r}."
    )


class HookEngine:
    """Per-sample gradients of ``params`` by module hooks, one forward and one backward per batch.

    Args:
        adapter: The model adapter (its ``per_sample_loss`` defines the loss; must be
            batch-separable).
        params: Scored parameters by qualified name.
        dtype: Dtype of per-sample quantities; default float32, or float64 when a scored parameter
            is float64.
        fast_path: ``"auto"`` (default: Gram-matrix squared norms for linear blocks where they are
            cheaper), ``True`` or ``False``.
        autocast: ``"bf16"``, ``"fp16"`` or ``None``: autocast dtype of the model forward.
        workspace_bytes: Bytes of per-sample products formed at once by the linear layers'
            reductions. ``None`` (default): by device, measured once per batch —
            :data:`~biocoreset.grads.factors.CHUNK_BYTES` (8 MiB) on the CPU, a quarter of the
            available memory on CUDA (:func:`~biocoreset.grads.factors.workspace_bytes_for`).
            Larger means fewer, bigger matmuls; it changes no number beyond summation order.

    Attributes:
        name: ``"hooks"``.
        blocks: Parameter blocks, in scored-parameter order.
        plan: How each parameter is covered (see :mod:`biocoreset.grads.plan`).
        fallback_budget: Bytes of fallback per-sample gradients formed per batched backward pass
            (default 512 MiB); fallback blocks are grouped up to it.

    Raises:
        ConfigError: Bad option, or the engine cannot probe the adapter (the message says how to
            fix it).
    """

    name = "hooks"

    def __init__(
        self,
        adapter: ModelAdapter,
        params: Mapping[str, nn.Parameter],
        *,
        dtype: torch.dtype | None = None,
        fast_path: str | bool = "auto",
        autocast: str | torch.dtype | None = None,
        workspace_bytes: int | None = None,
    ) -> None:
        if workspace_bytes is not None and (
            isinstance(workspace_bytes, bool)
            or not isinstance(workspace_bytes, int)
            or workspace_bytes < 1
        ):
            raise ConfigError(
                f"workspace_bytes must be a positive number of bytes or None (by device), got "
                f"{workspace_bytes!r}."
            )
        if fast_path not in FAST_PATHS:
            raise ConfigError(f"fast_path must be one of {FAST_PATHS}, got {fast_path!r}.")
        if dtype is not None and dtype not in (torch.float32, torch.float64):
            raise ConfigError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}.")
        self.adapter = adapter
        self.params = dict(params)
        self.fast_path = fast_path
        self.workspace_bytes = workspace_bytes
        self.autocast_dtype = _resolve_autocast(autocast)
        if dtype is None:
            wide = any(p.dtype == torch.float64 for p in self.params.values())
            dtype = torch.float64 if wide else torch.float32
        self.dtype = dtype
        self.grad_scale = FP16_GRAD_SCALE if self.autocast_dtype == torch.float16 else 1.0
        self.fallback_budget = FALLBACK_BUDGET
        self.plan: Plan = build_plan(
            adapter, self.params, autocast=self._autocast, cast_dtype=self.autocast_dtype
        )
        self.blocks: list[ParamBlock] = self.plan.blocks

    def _device_type(self) -> str:
        for p in self.adapter.model.parameters():
            return p.device.type
        return "cpu"

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self._device_type(), dtype=self.autocast_dtype)

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable summary: block kinds and the parameters on the fallback path (with why).

        >>> from biocoreset.adapters.hf import HFAdapter
        >>> from biocoreset.testing import tiny_esm
        >>> adapter = HFAdapter(*tiny_esm())
        >>> info = HookEngine(adapter, adapter.scored_parameters()).describe()
        >>> info["addends"], info["fallback"]
        (['lm_head.bias'], {})
        """
        kinds: dict[str, int] = {}
        for b in self.blocks:
            kinds[b.kind] = kinds.get(b.kind, 0) + 1
        return {
            "engine": self.name,
            "blocks": kinds,
            "addends": list(self.plan.addends),
            "fallback": dict(self.plan.reasons),
            "dtype": str(self.dtype).removeprefix("torch."),
            "autocast": None
            if self.autocast_dtype is None
            else str(self.autocast_dtype).removeprefix("torch."),
            "fast_path": self.fast_path,
            "workspace_bytes": "auto" if self.workspace_bytes is None else self.workspace_bytes,
        }

    def run(
        self, batch: Batch, on_block: Callable[[LayerFactors], None] | None = None
    ) -> torch.Tensor:
        """Compute per-sample losses and hand each block's factors to ``on_block`` once per batch.

        Args:
            batch: A collated batch.
            on_block: Called once per block with its :class:`~biocoreset.protocols.LayerFactors`
                (``inputs``/``output_grads`` set for ``"linear"`` blocks), as soon as they are ready.
                ``None``: forward pass only.

        Returns:
            ``[B]`` detached per-sample losses.
        """
        if on_block is None:
            with torch.no_grad(), self._autocast():
                return self.adapter.per_sample_loss(batch).detach()
        return BatchRun(self.settings(), len(batch), on_block).execute(batch)

    def settings(self) -> RunSettings:
        """The frozen settings a :class:`~biocoreset.grads.batch_run.BatchRun` runs with (taken
        from the engine's current attributes, so a changed ``fallback_budget`` applies)."""
        return RunSettings(
            adapter=self.adapter,
            params=self.params,
            plan=self.plan,
            dtype=self.dtype,
            autocast_dtype=self.autocast_dtype,
            autocast=self._autocast,
            grad_scale=self.grad_scale,
            fallback_budget=self.fallback_budget,
            fast_path=self.fast_path,
            workspace_bytes=self.workspace_bytes,
        )

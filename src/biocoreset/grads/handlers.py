"""Per-module rules that turn a layer's input and output gradient into per-sample gradients.

A handler knows one module type whose parameters enter the computation only inside the module's
own ``forward``. Because the per-sample losses are batch-separable, the gradient of the summed loss
with respect to the module output, restricted to row ``b``, is sample ``b``'s output gradient, and
each parameter's per-sample gradient follows from it and the stored input:

* :class:`LinearHandler` — ``∂W_b = Σ_t g_bt x_btᵀ``, ``∂bias_b = Σ_t g_bt``;
* :class:`EmbeddingHandler` — row ``v`` of ``∂E_b`` is ``Σ_{t: id_bt = v} g_bt`` (the
  ``padding_idx`` row gets nothing, as in :func:`torch.nn.functional.embedding`);
* :class:`LayerNormHandler` — ``∂γ_b = Σ_t x̂_bt ⊙ g_bt``, ``∂β_b = Σ_t g_bt``.

Handlers only see tensors already moved to ``[B, T, ...]`` layout (batch first, every other
non-feature dimension flattened into ``T``) and cast to the compute dtype.

Example:
    >>> import torch
    >>> layer = torch.nn.Linear(3, 2)
    >>> x, g = torch.randn(4, 5, 3), torch.randn(4, 5, 2)
    >>> grads = LinearHandler().per_sample(layer, x, g, ["weight", "bias"])
    >>> tuple(grads["weight"].shape), tuple(grads["bias"].shape)
    ((4, 2, 3), (4, 2))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

__all__ = [
    "HANDLERS",
    "EmbeddingHandler",
    "Handler",
    "LayerNormHandler",
    "LinearHandler",
    "handler_for",
]


class Handler:
    """Base class: how to read a module call and compute its per-sample parameter gradients.

    Attributes:
        kind: Block kind of a block made of one such module (``"linear"``, ``"embedding"``,
            ``"layernorm"``).
        module_type: The :class:`torch.nn.Module` class handled (subclasses too, when they keep
            its ``forward``).
    """

    kind: str = "generic"
    module_type: type[nn.Module] = nn.Module

    def applies(self, module: nn.Module) -> bool:
        """Whether ``module`` is handled: an instance whose ``forward`` is the base class's own."""
        return (
            isinstance(module, self.module_type)
            and type(module).forward is self.module_type.forward
        )

    def payload(
        self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> torch.Tensor | None:
        """The input tensor the handler needs from a call (``None`` when the call is unusable)."""
        x = args[0] if args else kwargs.get("input")
        return x if isinstance(x, torch.Tensor) else None

    def feature_dims(self, module: nn.Module) -> int:
        """Number of trailing payload dimensions that are features (never the batch dimension)."""
        return 1

    def to_btd(
        self, module: nn.Module, t: torch.Tensor, bdim: int, batch_size: int, features: int
    ) -> torch.Tensor:
        """Move ``bdim`` to the front and flatten the other non-feature dims: ``[B, T, *features]``."""
        t = t.movedim(bdim, 0)
        if t.shape[0] != batch_size:
            t = t.expand(batch_size, *t.shape[1:])
        feat = t.shape[t.dim() - features :] if features else ()
        return t.reshape(batch_size, -1, *feat)

    def per_sample(
        self, module: nn.Module, x: torch.Tensor, g: torch.Tensor, names: Sequence[str]
    ) -> dict[str, torch.Tensor]:
        """Per-sample gradients ``{local name: [B, *param.shape]}`` for the local parameter ``names``."""
        raise NotImplementedError


class LinearHandler(Handler):
    """``nn.Linear`` and subclasses that keep its ``forward`` (e.g. ``NonDynamicallyQuantizableLinear``)."""

    kind = "linear"
    module_type = nn.Linear

    def per_sample(
        self, module: nn.Module, x: torch.Tensor, g: torch.Tensor, names: Sequence[str]
    ) -> dict[str, torch.Tensor]:
        """``x``: ``[B, T, d_in]``, ``g``: ``[B, T, d_out]``."""
        out: dict[str, torch.Tensor] = {}
        if "weight" in names:
            out["weight"] = torch.bmm(g.transpose(1, 2), x)
        if "bias" in names:
            out["bias"] = g.sum(1)
        return out


class EmbeddingHandler(Handler):
    """``nn.Embedding`` looked up by its own ``forward`` (token ids in, vectors out)."""

    kind = "embedding"
    module_type = nn.Embedding

    def applies(self, module: nn.Module) -> bool:
        """Handled unless gradients are scaled by in-batch frequency (not batch-separable)."""
        return super().applies(module) and not getattr(module, "scale_grad_by_freq", False)

    def feature_dims(self, module: nn.Module) -> int:
        """Token ids have no feature dimension."""
        return 0

    def per_sample(
        self, module: nn.Module, x: torch.Tensor, g: torch.Tensor, names: Sequence[str]
    ) -> dict[str, torch.Tensor]:
        """``x``: ``[B, T]`` token ids, ``g``: ``[B, T, d]``: scatter-add by id, per sample."""
        if "weight" not in names:
            return {}
        assert isinstance(module, nn.Embedding)
        B, T, d = g.shape
        V = module.num_embeddings
        ids = x.to(torch.long)
        if module.padding_idx is not None:
            g = g.masked_fill((ids == module.padding_idx).unsqueeze(-1), 0.0)
        flat = (ids + torch.arange(B, device=ids.device).unsqueeze(1) * V).reshape(-1)
        out = torch.zeros(B * V, d, dtype=g.dtype, device=g.device)
        out.index_add_(0, flat, g.reshape(B * T, d))
        return {"weight": out.view(B, V, d)}


class LayerNormHandler(Handler):
    """``nn.LayerNorm`` with or without bias (parameter-free ones own nothing to score)."""

    kind = "layernorm"
    module_type = nn.LayerNorm

    def feature_dims(self, module: nn.Module) -> int:
        """The normalised dimensions."""
        assert isinstance(module, nn.LayerNorm)
        return len(module.normalized_shape)

    def per_sample(
        self, module: nn.Module, x: torch.Tensor, g: torch.Tensor, names: Sequence[str]
    ) -> dict[str, torch.Tensor]:
        """``x``, ``g``: ``[B, T, *normalized_shape]``; ``x̂`` is recomputed from ``x``."""
        assert isinstance(module, nn.LayerNorm)
        xhat = x
        if "weight" in names:
            dims = tuple(range(2, x.dim()))
            var, mean = torch.var_mean(x, dim=dims, correction=0, keepdim=True)
            xhat = (x - mean) * torch.rsqrt(var + module.eps)
        return self.per_sample_normalised(xhat, g, names)

    def per_sample_normalised(
        self, xhat: torch.Tensor, g: torch.Tensor, names: Sequence[str]
    ) -> dict[str, torch.Tensor]:
        """Same as :meth:`per_sample` from the normalised input ``x̂`` (e.g. from autograd's saved
        mean and 1/std)."""
        out: dict[str, torch.Tensor] = {}
        if "weight" in names:
            out["weight"] = (xhat * g).sum(1)
        if "bias" in names:
            out["bias"] = g.sum(1)
        return out


HANDLERS: tuple[Handler, ...] = (LinearHandler(), EmbeddingHandler(), LayerNormHandler())


def handler_for(module: nn.Module) -> Handler | None:
    """The handler for ``module``, or ``None`` when no handler applies.

    >>> type(handler_for(torch.nn.Linear(2, 2))).__name__
    'LinearHandler'
    >>> handler_for(torch.nn.GELU()) is None
    True
    """
    for handler in HANDLERS:
        if handler.applies(module):
            return handler
    return None

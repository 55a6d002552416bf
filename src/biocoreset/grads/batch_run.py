"""One batch through the hook engine: the state of one :meth:`HookEngine.run` call.

:class:`BatchRun` drives the forward pass with hooks, checks the autograd graph, runs the exact
fallback where no handler applies, and hands each block's per-sample factors to the caller as soon
as the backward pass has produced them (see :mod:`biocoreset.grads.engine` for the whole picture).
:class:`~biocoreset.grads.engine.HookEngine` is the public entry point; this module is its engine
room.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import torch
from torch import nn
from torch.autograd.graph import GradientEdge

from biocoreset.errors import ConfigError
from biocoreset.grads.factors import EmbeddingFactors, LinearFactors, workspace_bytes_for
from biocoreset.grads.fallback import per_sample_autograd
from biocoreset.grads.graph import (
    GraphIndex,
    addend_per_sample,
    call_subgraph,
    is_addition_of,
    nodes_above,
)
from biocoreset.grads.handlers import LayerNormHandler
from biocoreset.grads.plan import (
    Call,
    Plan,
    broadcast_consumers,
    covered_uses,
    leaky_nodes,
    record_calls,
)
from biocoreset.protocols import Batch, LayerFactors, ModelAdapter, ParamBlock

__all__ = ["BatchRun", "RunSettings"]


@attrs.frozen(kw_only=True)
class RunSettings:
    """What one :class:`BatchRun` needs from its engine, frozen for the run (the engine builds it;
    this module does not know the engine).

    Attributes:
        adapter: The model adapter (its ``per_sample_loss`` is the loss).
        params: Scored parameters by qualified name.
        plan: How each parameter is covered (:mod:`biocoreset.grads.plan`).
        dtype: Dtype of per-sample quantities.
        autocast_dtype: Autocast dtype of the forward pass, or ``None``.
        autocast: Makes the forward pass's autocast context.
        grad_scale: Scale of the backward seed (fp16), undone on every gradient.
        fallback_budget: Bytes of fallback per-sample gradients per batched backward pass.
        fast_path: The linear blocks' fast-path choice.
        workspace_bytes: Bytes of per-sample products formed at once (``None``: by device).
    """

    adapter: ModelAdapter
    params: Mapping[str, nn.Parameter]
    plan: Plan
    dtype: torch.dtype
    autocast_dtype: torch.dtype | None
    autocast: Callable[[], contextlib.AbstractContextManager[Any]]
    grad_scale: float
    fallback_budget: int
    fast_path: str | bool
    workspace_bytes: int | None

    @property
    def blocks(self) -> list[ParamBlock]:
        """Parameter blocks, in scored-parameter order."""
        return self.plan.blocks


_RELEASED = torch.empty(0)
"""Stands in for a call's input once its gradient has been delivered (the input is released)."""


class _BlockState:
    """Contributions to one block during one run."""

    def __init__(self, index: int, block: ParamBlock) -> None:
        self.index = index
        self.block = block
        self.pending = 0
        self.parts: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.sums: dict[str, torch.Tensor] = {}
        self.done = False


class BatchRun:
    """State of one :meth:`~biocoreset.grads.engine.HookEngine.run` call (see the module docstring
    of :mod:`biocoreset.grads.engine` for the passes)."""

    def __init__(
        self, settings: RunSettings, batch_size: int, on_block: Callable[[LayerFactors], None]
    ) -> None:
        self.settings = settings
        self.plan = settings.plan
        self.B = batch_size
        self.on_block = on_block
        self.phase = "forward"
        self.calls: list[Call] = []
        self.captured: list[tuple[int, list[str]]] = []
        self.states = [_BlockState(i, b) for i, b in enumerate(settings.blocks)]
        self.workspace: int | None = settings.workspace_bytes
        # Under bf16 autocast, keep linear factors in bf16: they are the layers' own bf16 values.
        self.keep = (
            torch.bfloat16
            if settings.autocast_dtype == torch.bfloat16 and settings.dtype == torch.float32
            else None
        )

    # -- driving -----------------------------------------------------------------------------------

    def execute(self, batch: Batch) -> torch.Tensor:
        try:
            return self._execute(batch)
        finally:
            # Hooks on graph nodes reference this run; this run must not reference the graph (nor
            # the layer inputs) once it is over, or the cycle would keep a batch of activations alive.
            self.calls = []
            self.captured = []
            self.states = []

    def _execute(self, batch: Batch) -> torch.Tensor:
        eng = self.settings
        with (
            record_calls(
                self.plan.entries,
                self.calls,
                cast_dtype=eng.autocast_dtype,
                on_output=self._watch,
                active=lambda: self.phase == "forward",
            ),
            torch.enable_grad(),
            eng.autocast(),
        ):
            loss = eng.adapter.per_sample_loss(batch)
        self.phase = "analyse"
        if loss.shape != (self.B,):
            raise ConfigError(
                f"per_sample_loss returned shape {tuple(loss.shape)}; expected ({self.B},)."
            )
        edges: list[GradientEdge] = []
        if loss.grad_fn is not None:
            edges = self._analyse(loss)
            self.phase = "fallback"
            self._fallback(loss)
            self.phase = "main"
            if edges:
                seed = torch.full_like(loss, eng.grad_scale)
                results = torch.autograd.grad(loss, edges, grad_outputs=seed, allow_unused=True)
                for i, names in self.captured:
                    self._on_addend(names, (results[i],))
                del results
        self.phase = "done"
        for state in self.states:
            if not state.done:
                self._emit(state)
        return loss.detach()

    def _watch(self, call: Call, output: torch.Tensor) -> None:
        if not call.entry.broadcast:
            # By index: a hook holding the Call (which holds this very node) would form a cycle
            # through C++ that the garbage collector cannot see, leaking the batch's graph.
            index = len(self.calls) - 1
            output.register_hook(lambda g, index=index: self._on_grad(index, g))

    # -- graph check -------------------------------------------------------------------------------

    def _analyse(self, loss: torch.Tensor) -> list[GradientEdge]:
        """Check the plan holds for this batch; return the lowest call outputs to differentiate to."""
        plan = self.plan
        handled = {id(self.settings.params[q]): q for e in plan.entries for q in e.names.values()}
        addends = {id(self.settings.params[q]): q for q in plan.addends}
        index = GraphIndex(loss.grad_fn, set(handled) | set(addends))
        subgraphs = [call_subgraph(c.out_node, c.in_nodes) for c in self.calls]
        inside: set[Any] = set().union(*subgraphs) if subgraphs else set()
        covered: set[tuple[Any, int]] = set()
        for call, sub in zip(self.calls, subgraphs, strict=True):
            entry = call.entry
            shape = call.payload.shape
            want = 1 if entry.broadcast else self.B
            if len(shape) <= entry.bdim or shape[entry.bdim] != want:
                raise ConfigError(
                    f"module {entry.name!r}: input of shape {tuple(shape)} has no batch dimension {entry.bdim} of "
                    f"size {want} in this batch (the probe batch had one). Use engine='loop'."
                )
            leaks = leaky_nodes(call, sub, inside, index)
            if leaks:
                raise ConfigError(
                    f"module {entry.name!r}: an intermediate result of its call is used outside it in this "
                    f"batch ({type(leaks[0]).__name__}); its per-sample gradients would be incomplete. "
                    "Use engine='loop'."
                )
            ids = {id(entry.module._parameters[k]): q for k, q in entry.names.items()}
            covered |= covered_uses(call, sub, ids)
            if entry.broadcast:
                consumers = broadcast_consumers(call, index)
                if consumers is None:
                    raise ConfigError(
                        f"module {entry.name!r}: its batch-1 output is no longer broadcast by an addition in "
                        "this batch. Use engine='loop'."
                    )
                call.consumers = consumers
        missed = sorted(
            {
                handled[pid]
                for pid, readers in index.uses.items()
                if pid in handled
                for n in readers
                if (n, pid) not in covered
            }
        )
        if missed:
            raise ConfigError(
                f"parameters {missed} are used outside their hooked module calls in this batch, unlike on "
                "the probe batch; per-sample gradients from hooks would be incomplete. Use engine='loop'."
            )
        # count the calls each block waits for
        for call in self.calls:
            self.states[call.entry.block].pending += 1
        for i, call in enumerate(self.calls):
            if call.entry.broadcast:
                remaining = [len(call.consumers)]
                for node in call.consumers:
                    node.register_prehook(
                        lambda grads, i=i, remaining=remaining: self._on_consumer(
                            i, grads, remaining
                        )
                    )
        active = {c.out_node for c in self.calls if c.out_node in index.nodes}
        above = nodes_above(active, index.parents)
        edges, seen = [], set()
        for call in self.calls:
            key = (call.out_node, call.out_nr)
            if call.out_node in active and call.out_node not in above and key not in seen:
                seen.add(key)
                edges.append(GradientEdge(call.out_node, call.out_nr))
        self._watch_addends(index, addends, above, edges)
        return edges

    def _watch_addends(
        self, index: GraphIndex, addends: dict[int, str], above: set[Any], edges: list[GradientEdge]
    ) -> None:
        """Hook the additions reading bare addends: node pre-hooks where the backward pass runs them,
        else capture their output gradient as an extra target of the backward pass."""
        block_of = {n: i for i, names in self.plan.addend.items() for n in names}
        by_node: dict[Any, list[str]] = {}
        for pid, name in addends.items():
            p = self.settings.params[name]
            for node in index.uses.get(pid, []):
                if not is_addition_of(node, p):
                    raise ConfigError(
                        f"parameter {name!r} is read by {type(node).__name__} in this batch, not only by additions "
                        "as on the probe batch. Use engine='loop'."
                    )
                by_node.setdefault(node, []).append(name)
        for node, names in by_node.items():
            for name in names:
                self.states[block_of[name]].pending += 1
            if node in above:
                node.register_prehook(lambda grads, names=names: self._on_addend(names, grads))
            else:
                edges.append(GradientEdge(node, 0))
                self.captured.append((len(edges) - 1, names))

    def _on_addend(self, names: list[str], grads: tuple[torch.Tensor | None, ...]) -> None:
        if self.phase != "main":
            return
        g = grads[0]
        for name in names:
            state = self.states[next(i for i, ns in self.plan.addend.items() if name in ns)]
            if g is not None:
                bdim = self.plan.addends[name]
                if g.dim() <= bdim or g.shape[bdim] != self.B:
                    raise ConfigError(
                        f"parameter {name!r}: the addition reading it has gradient shape {tuple(g.shape)}, with no "
                        f"batch dimension {bdim} of size {self.B}. Use engine='loop'."
                    )
                shape = self.settings.params[name].shape
                t = self._unscale(addend_per_sample(g, bdim, shape, self.B))
                state.sums[name] = state.sums[name] + t if name in state.sums else t
            state.pending -= 1
            if state.pending == 0:
                self._emit(state)

    # -- fallback ----------------------------------------------------------------------------------

    def _fallback(self, loss: torch.Tensor) -> None:
        """Per-sample gradients of the fallback blocks, as few batched backward passes as fit in
        :attr:`HookEngine.fallback_budget` bytes; each block is emitted as soon as it is computed."""
        eng = self.settings
        chunk: list[int] = []
        size = 0
        items = list(self.plan.fallback.items())

        def nbytes(names: list[str]) -> int:
            return self.B * sum(eng.params[n].numel() * eng.params[n].element_size() for n in names)

        for k, (i, names) in enumerate(items):
            chunk.append(i)
            size += nbytes(names)
            nxt = items[k + 1][1] if k + 1 < len(items) else None
            if nxt is None or size + nbytes(nxt) > eng.fallback_budget:
                names_all = [n for j in chunk for n in self.plan.fallback[j]]
                grads = per_sample_autograd(
                    loss, [eng.params[n] for n in names_all], scale=eng.grad_scale
                )
                by_name = dict(zip(names_all, grads, strict=True))
                del grads
                for j in chunk:
                    state = self.states[j]
                    state.sums = {n: self._unscale(by_name.pop(n)) for n in self.plan.fallback[j]}
                    self._emit(state)
                chunk, size = [], 0

    # -- backward hooks ----------------------------------------------------------------------------

    def _unscale(self, g: torch.Tensor) -> torch.Tensor:
        eng = self.settings
        g = g.to(eng.dtype)
        if eng.grad_scale != 1.0:
            if not bool(torch.isfinite(g).all()):
                raise ConfigError(
                    "float16 gradients overflowed under autocast='fp16'; use autocast='bf16' or None."
                )
            g = g / eng.grad_scale
        return g

    def _on_consumer(
        self, index: int, grads: tuple[torch.Tensor | None, ...], remaining: list[int]
    ) -> None:
        if self.phase != "main":
            return
        call = self.calls[index]
        g = grads[0]
        if g is not None:
            expected = list(call.out_shape)
            expected[call.entry.bdim] = self.B
            if list(g.shape) != expected:
                raise ConfigError(
                    f"module {call.entry.name!r}: the addition broadcasting its output has gradient shape "
                    f"{tuple(g.shape)}, expected {tuple(expected)}. Use engine='loop'."
                )
            call.parts.append(g)
        remaining[0] -= 1
        if remaining[0] == 0 and call.parts:
            total = call.parts[0] if len(call.parts) == 1 else torch.stack(call.parts).sum(0)
            call.parts = []
            self._deliver(call, total)

    def _on_grad(self, index: int, g: torch.Tensor) -> None:
        if self.phase == "main":
            self._deliver(self.calls[index], g)

    def _deliver(self, call: Call, grad: torch.Tensor) -> None:
        entry = call.entry
        if call.payload._version != call.version:
            raise ConfigError(
                f"module {entry.name!r}: its input was modified in place after the call; per-sample gradients "
                "need the original. Avoid in-place ops on layer inputs or use engine='loop'."
            )
        handler, module = entry.handler, entry.module
        layernorm = isinstance(handler, LayerNormHandler)
        out_features = handler.feature_dims(module) if layernorm else 1
        payload, call.payload = call.payload, _RELEASED
        x = handler.to_btd(module, payload, entry.bdim, self.B, handler.feature_dims(module))
        g = handler.to_btd(module, grad, entry.bdim, self.B, out_features)
        linear = entry.block in self.plan.linear
        if x.is_floating_point() and not (linear and x.dtype == self.keep):
            x = x.to(self.settings.dtype)
        if not (linear and g.dtype == self.keep):
            g = self._unscale(g)
        state = self.states[entry.block]
        if entry.block in self.plan.linear or entry.block in self.plan.embedding:
            state.parts.append((x, g))
        else:
            xhat = self._normalised(call, x) if layernorm and "weight" in entry.names else None
            if xhat is not None:
                assert isinstance(handler, LayerNormHandler)
                local = handler.per_sample_normalised(xhat, g, list(entry.names))
            else:
                local = handler.per_sample(module, x, g, list(entry.names))
            for k, t in local.items():
                q = entry.names[k]
                state.sums[q] = state.sums[q] + t if q in state.sums else t
        state.pending -= 1
        if state.pending == 0:
            self._emit(state)

    def _normalised(self, call: Call, x: torch.Tensor) -> torch.Tensor | None:
        """``x̂`` of a layer-norm call from the mean and 1/std autograd saved (``None`` if it did not)."""
        node = call.out_node
        try:
            mean, rstd = node._saved_result1, node._saved_result2
        except (AttributeError, RuntimeError):
            return None
        entry = call.entry
        n = entry.handler.feature_dims(entry.module)
        if (
            not isinstance(mean, torch.Tensor)
            or mean.dim() != len(call.out_shape)
            or mean.numel() * int(torch.Size(call.out_shape[-n:]).numel())
            != int(torch.Size(call.out_shape).numel())
        ):
            return None
        mean = entry.handler.to_btd(entry.module, mean, entry.bdim, self.B, n).to(x.dtype)
        rstd = entry.handler.to_btd(entry.module, rstd, entry.bdim, self.B, n).to(x.dtype)
        return (x - mean) * rstd

    # -- emission ----------------------------------------------------------------------------------

    def _emit(self, state: _BlockState) -> None:
        eng = self.settings
        block = state.block
        if state.index in self.plan.linear:
            weight, bias = self.plan.linear[state.index]
            if state.parts:
                xs, gs = zip(*state.parts, strict=True)
                x = xs[0] if len(xs) == 1 else torch.cat(xs, dim=1)
                g = gs[0] if len(gs) == 1 else torch.cat(gs, dim=1)
            else:
                p = block.params[weight] if weight is not None else None
                ref = next(iter(block.params.values()))
                d_out = ref.shape[0]
                d_in = p.shape[1] if p is not None else 0
                x = torch.zeros((self.B, 0, d_in), dtype=eng.dtype, device=ref.device)
                g = torch.zeros((self.B, 0, d_out), dtype=eng.dtype, device=ref.device)
            if self.workspace is None:  # by device, once per batch, with the activations in memory
                self.workspace = workspace_bytes_for(g.device)
            factors: LayerFactors = LinearFactors(
                block,
                x,
                g,
                weight=weight,
                bias=bias,
                fast_path=eng.fast_path,
                dtype=eng.dtype,
                workspace_bytes=self.workspace,
            )
        elif state.index in self.plan.embedding:
            entry = self.plan.embedding[state.index]
            module = entry.module
            assert isinstance(module, nn.Embedding)
            ref = next(iter(block.params.values()))
            if state.parts:
                ids = torch.cat([p[0] for p in state.parts], dim=1)
                g = torch.cat([p[1] for p in state.parts], dim=1)
            else:
                ids = torch.zeros((self.B, 0), dtype=torch.long, device=ref.device)
                g = torch.zeros((self.B, 0, ref.shape[1]), dtype=eng.dtype, device=ref.device)
            factors = EmbeddingFactors(
                block,
                ids,
                g,
                weight=entry.names["weight"],
                num_embeddings=module.num_embeddings,
                padding_idx=module.padding_idx,
            )
        else:
            grads = {
                n: state.sums[n]
                if n in state.sums
                else torch.zeros((self.B, *p.shape), dtype=eng.dtype, device=p.device)
                for n, p in block.params.items()
            }

            def materialised(grads: dict[str, torch.Tensor] = grads) -> dict[str, torch.Tensor]:
                return grads

            factors = LayerFactors(block, self.B, materialised)
        state.parts = []
        state.sums = {}
        state.done = True
        self.on_block(factors)

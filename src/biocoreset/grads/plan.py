"""Which parameter gets its per-sample gradient from which module call: the hook engine's plan.

The plan is made once per engine from a probe forward pass (:mod:`biocoreset.grads.probe`) and
its autograd graph (:mod:`biocoreset.grads.graph`):

1. Every module with a handler (:mod:`biocoreset.grads.handlers`) that owns a scored parameter is
   hooked; each call records the handler's input, the call's output node and its inputs' nodes.
2. A call is *usable* when its input has exactly one dimension of the probe's batch size (the
   batch dimension; an embedding looked up with a batch dimension of 1 and added to a batched
   tensor, like BERT's position embeddings, is usable through the addition), and no node it
   created is consumed outside handled calls.
3. A parameter is *handled* when every node of the graph that reads it lies inside a usable call of
   a module owning it. Its contributions from all those calls are summed (tied weights); otherwise
   it goes to the exact fallback (:mod:`biocoreset.grads.fallback`) as a whole.
4. A parameter read only by additions ``a + p`` (EsmForMaskedLM's ``lm_head.bias``) whose output
   has a batch dimension is a *bare addend*: its per-sample gradient is that addition's output
   gradient summed per sample over the other dimensions.
5. Blocks: handled parameters linked by a shared call or module form one block (``"linear"``,
   ``"embedding"`` or ``"layernorm"`` when it is one module's, else ``"generic"``); bare addends
   and fallback parameters are grouped by owning module name into ``"generic"`` blocks.

Example:
    >>> from biocoreset.adapters.hf import HFAdapter
    >>> from biocoreset.testing import tiny_esm
    >>> adapter = HFAdapter(*tiny_esm())
    >>> plan = build_plan(adapter, adapter.scored_parameters())
    >>> sorted({b.kind for b in plan.blocks})
    ['embedding', 'generic', 'layernorm', 'linear']
    >>> plan.addends, plan.fallback_params
    ({'lm_head.bias': 0}, [])
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.autograd.graph import get_gradient_edge

from biocoreset.errors import ConfigError
from biocoreset.grads.graph import (
    GraphIndex,
    Node,
    addend_batch_dim,
    call_subgraph,
    is_accumulate,
)
from biocoreset.grads.handlers import EmbeddingHandler, Handler, LinearHandler, handler_for
from biocoreset.grads.probe import PROBE_BATCH, probe_batch
from biocoreset.protocols import ModelAdapter, ParamBlock

__all__ = [
    "Call",
    "Entry",
    "Plan",
    "build_plan",
    "record_calls",
]


@dataclass(eq=False)
class Entry:
    """A hooked module.

    Attributes:
        name: Qualified module name.
        module: The module.
        handler: Its handler.
        names: Local parameter name → qualified scored name (handled parameters only).
        bdim: Batch dimension of the handler input (and of the output).
        broadcast: The input has a batch dimension of 1 and the output is broadcast by an addition.
        block: Index of the block the module contributes to.
    """

    name: str
    module: nn.Module
    handler: Handler
    names: dict[str, str] = field(default_factory=dict)
    bdim: int = 0
    broadcast: bool = False
    block: int = -1


@dataclass(eq=False)
class Call:
    """One recorded call of a hooked module in a forward pass."""

    entry: Entry
    payload: torch.Tensor
    version: int
    out_node: Node
    out_nr: int
    out_shape: torch.Size
    in_nodes: tuple[Node, ...]
    consumers: list[Node] = field(default_factory=list)
    parts: list[torch.Tensor] = field(default_factory=list)


@dataclass
class Plan:
    """The engine's plan for one model and scored parameter set.

    Attributes:
        entries: Hooked modules (each contributes to exactly one block).
        blocks: Parameter blocks, in the order of the scored parameters.
        linear: Block index → ``(weight name or None, bias name or None)`` for ``"linear"`` blocks.
        embedding: Block index → the hooked module for ``"embedding"`` blocks.
        addend: Block index → qualified names of the bare addends in it.
        addends: Bare addend name → batch dimension of the additions that read it.
        fallback: Block index → qualified parameter names computed by the fallback.
        fallback_params: Every parameter computed by the fallback, in scored order.
        reasons: Fallback parameter → why no handler covers it.
    """

    entries: list[Entry]
    blocks: list[ParamBlock]
    linear: dict[int, tuple[str | None, str | None]]
    embedding: dict[int, Entry]
    addend: dict[int, list[str]]
    addends: dict[str, int]
    fallback: dict[int, list[str]]
    fallback_params: list[str]
    reasons: dict[str, str]


def _autocast_cast(
    x: torch.Tensor, cast_dtype: torch.dtype | None, cache: dict[int, Any]
) -> torch.Tensor:
    """``x`` as autocast feeds it to a linear layer (one shared copy per input tensor)."""
    if (
        cast_dtype is None
        or not x.is_floating_point()
        or x.dtype == cast_dtype
        or x.dtype == torch.float64
    ):
        return x.detach()
    hit = cache.get(id(x))
    if hit is not None and hit[0]() is x:
        cached: torch.Tensor = hit[1]
        return cached
    import weakref

    cast = x.detach().to(cast_dtype)
    cache[id(x)] = (weakref.ref(x), cast)
    return cast


@contextlib.contextmanager
def record_calls(
    entries: list[Entry],
    calls: list[Call],
    *,
    cast_dtype: torch.dtype | None = None,
    on_output: Callable[[Call, torch.Tensor], None] | None = None,
    active: Callable[[], bool] = lambda: True,
) -> Iterator[None]:
    """Forward hooks on ``entries`` that append a :class:`Call` for every call with a grad output.

    Args:
        entries: Modules to hook.
        calls: Receives the calls.
        cast_dtype: Autocast dtype applied to linear-layer inputs (``None``: no autocast).
        on_output: Called with each new call and its output tensor (to register gradient hooks).
        active: Whether hooks may fire now; a call while inactive (e.g. activation checkpointing
            re-running the forward during the backward pass) is an error.
    """
    cache: dict[int, Any] = {}

    def hook(
        entry: Entry, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any
    ) -> None:
        if not active():
            raise ConfigError(
                f"module {entry.name!r} ran during the backward pass (activation checkpointing?); the hook "
                "engine needs one plain forward pass. Disable checkpointing or use engine='loop'."
            )
        if (
            not isinstance(output, torch.Tensor)
            or not output.requires_grad
            or output.grad_fn is None
        ):
            return
        x = entry.handler.payload(module, args, kwargs)
        if x is None:
            raise ConfigError(
                f"module {entry.name!r} was called without a tensor input; use engine='loop'."
            )
        in_nodes = (get_gradient_edge(x).node,) if x.requires_grad else ()
        if isinstance(entry.handler, LinearHandler):
            payload = _autocast_cast(x, cast_dtype, cache)
        else:
            payload = x.detach()
        edge = get_gradient_edge(output)
        call = Call(
            entry=entry,
            payload=payload,
            version=payload._version,
            out_node=edge.node,
            out_nr=edge.output_nr,
            out_shape=output.shape,
            in_nodes=in_nodes,
        )
        calls.append(call)
        if on_output is not None:
            on_output(call, output)

    handles = []
    try:
        for entry in entries:
            handles.append(
                entry.module.register_forward_hook(
                    lambda m, a, k, o, entry=entry: hook(entry, m, a, k, o), with_kwargs=True
                )
            )
        yield
    finally:
        for h in handles:
            h.remove()


def broadcast_consumers(call: Call, index: GraphIndex) -> list[Node] | None:
    """The additions that broadcast a batch-1 output to the batch, or ``None`` if not all are such."""
    consumers = index.parents.get(call.out_node, [])
    if not consumers:
        return None
    for node in consumers:
        if type(node).__name__ != "AddBackward0" or getattr(node, "_saved_alpha", 1) != 1:
            return None
        if sum(1 for c, _ in node.next_functions if c is call.out_node) != 1:
            return None
    return list(dict.fromkeys(consumers))


def _batch_dim(call: Call, batch_size: int) -> tuple[int, bool] | None:
    """``(bdim, broadcast)`` for a call, or ``None`` when the batch dimension is ambiguous/absent."""
    handler, module = call.entry.handler, call.entry.module
    shape = call.payload.shape
    n = len(shape) - handler.feature_dims(module)
    hits = [d for d in range(n) if shape[d] == batch_size]
    if len(hits) == 1:
        return hits[0], False
    if (
        not hits
        and isinstance(handler, EmbeddingHandler)
        and n >= 1
        and shape[0] == 1
        and batch_size > 1
    ):
        return 0, True
    return None


def covered_uses(
    call: Call, subgraph: set[Node], param_ids: Mapping[int, str]
) -> set[tuple[Node, int]]:
    """``(node, id(param))`` edges inside ``subgraph`` into parameters of the call's module."""
    out = set()
    for node in subgraph:
        for child, _ in node.next_functions:
            if child is not None and is_accumulate(child) and id(child.variable) in param_ids:
                out.add((node, id(child.variable)))
    return out


def leaky_nodes(
    call: Call, subgraph: set[Node], inside: set[Node], index: GraphIndex
) -> list[Node]:
    """Nodes of ``subgraph`` (other than the output) consumed outside the handled calls."""
    return [
        n
        for n in subgraph
        if n is not call.out_node and any(p not in inside for p in index.parents.get(n, ()))
    ]


def _module_params(module: nn.Module, by_id: Mapping[int, str]) -> dict[str, str]:
    return {
        local: by_id[id(p)]
        for local, p in module._parameters.items()
        if p is not None and id(p) in by_id
    }


def _reason(name: str, entries: list[Entry], calls: list[Call], modes: Mapping[int, Any]) -> str:
    """Why no handler covers parameter ``name``."""
    owners = [e for e in entries if name in e.names.values()]
    if not owners:
        return "used outside any handled module call"
    called = [e for e in owners if any(c.entry is e for c in calls)]
    if not called:
        names = ", ".join(repr(e.name) for e in owners)
        return f"read by functional code (e.g. F.linear) while its module {names} never runs"
    unusable = [e for e in called if modes.get(id(e)) is None]
    if unusable:
        names = ", ".join(repr(e.name) for e in unusable)
        return f"module {names} has no unambiguous batch dimension, or its intermediates are used outside it"
    names = ", ".join(repr(e.name) for e in called)
    return f"also read outside the calls of module {names}"


def build_plan(
    adapter: ModelAdapter,
    params: Mapping[str, nn.Parameter],
    *,
    autocast: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
    cast_dtype: torch.dtype | None = None,
) -> Plan:
    """Probe the model once and decide handlers, fallbacks and blocks (see the module docstring).

    Args:
        adapter: The model adapter.
        params: Scored parameters by qualified name.
        autocast: Context manager factory for the model forward (the probe runs under it too).
        cast_dtype: The autocast dtype of linear layers (``None`` without autocast).

    Raises:
        ConfigError: No probe batch can be built, or a scored parameter does not require grad.
    """
    order = list(params)
    by_id = {id(p): n for n, p in params.items()}
    frozen = [n for n, p in params.items() if not p.requires_grad]
    if frozen:
        raise ConfigError(f"scored parameters must require grad; these do not: {frozen[:5]}.")

    # 1. candidate modules: handled type, owning a scored parameter directly
    entries: list[Entry] = []
    seen: set[int] = set()
    for mname, module in adapter.model.named_modules(remove_duplicate=False):
        if id(module) in seen:
            continue
        seen.add(id(module))
        handler = handler_for(module)
        local = _module_params(module, by_id)
        if handler is not None and local:
            entries.append(Entry(name=mname, module=module, handler=handler, names=local))

    reasons: dict[str, str] = {}
    addends: dict[str, int] = {}
    usable: dict[int, tuple[int, bool]] = {}
    handled: set[str] = set()
    if params:
        calls: list[Call] = []
        batch = probe_batch(adapter)
        with record_calls(entries, calls, cast_dtype=cast_dtype), torch.enable_grad(), autocast():
            loss = adapter.per_sample_loss(batch)
        if loss.grad_fn is None:
            raise ConfigError("the per-sample loss does not depend on any scored parameter.")
        index = GraphIndex(loss.grad_fn, set(by_id))

        # 2. usable calls, per module (all calls of a module must agree)
        modes: dict[int, tuple[int, bool] | None] = {}
        for call in calls:
            key = id(call.entry)
            mode = _batch_dim(call, PROBE_BATCH)
            if mode is not None and mode[1] and broadcast_consumers(call, index) is None:
                mode = None
            if key in modes and modes[key] != mode:
                mode = None
            modes[key] = mode
        subgraphs = {id(c): call_subgraph(c.out_node, c.in_nodes) for c in calls}
        inside = set().union(*subgraphs.values()) if subgraphs else set()
        covered: set[tuple[Node, int]] = set()
        for call in calls:
            mode = modes[id(call.entry)]
            if mode is None:
                continue
            sub = subgraphs[id(call)]
            if leaky_nodes(call, sub, inside, index):
                modes[id(call.entry)] = None
                continue
            ids = {
                id(call.entry.module._parameters[local]): q for local, q in call.entry.names.items()
            }
            covered |= covered_uses(call, sub, ids)
        for call in calls:  # a module made unusable after some of its calls were counted
            if modes[id(call.entry)] is None:
                covered -= covered_uses(
                    call, subgraphs[id(call)], {id(params[q]): q for q in call.entry.names.values()}
                )
        usable = {k: m for k, m in modes.items() if m is not None}

        # 3. handled parameters: every reader inside a usable call of an owning module
        for name, p in params.items():
            readers = index.uses.get(id(p), [])
            if not readers:
                reasons[name] = "not used by the loss on the probe batch"
            elif all((n, id(p)) in covered for n in readers):
                handled.add(name)
            else:
                bdim = addend_batch_dim(p, readers, PROBE_BATCH)
                if bdim is not None:
                    addends[name] = bdim
                else:
                    reasons[name] = _reason(name, entries, calls, modes)

    # 4. blocks
    live: list[Entry] = []
    for entry in entries:
        entry.names = {k: v for k, v in entry.names.items() if v in handled}
        if entry.names and id(entry) in usable:
            entry.bdim, entry.broadcast = usable[id(entry)]
            live.append(entry)
    parent = {n: n for n in handled}

    def find(n: str) -> str:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    for entry in live:
        qs = list(entry.names.values())
        for q in qs[1:]:
            parent[find(q)] = find(qs[0])
    groups: dict[str, list[str]] = {}
    for n in order:
        if n in handled:
            groups.setdefault(find(n), []).append(n)
    fallback_groups: dict[tuple[str, bool], list[str]] = {}
    for n in order:
        if n not in handled:
            fallback_groups.setdefault((n.rpartition(".")[0], n in addends), []).append(n)

    blocks_spec: list[tuple[int, str, str, list[str], list[Entry]]] = []
    for names in groups.values():
        members = [e for e in live if set(e.names.values()) & set(names)]
        first = order.index(names[0])
        if len(members) == 1:
            e = members[0]
            kind = e.handler.kind
            if kind == "linear" and "weight" not in e.names:
                kind = "generic"
            blocks_spec.append((first, e.name, kind, names, members))
        else:
            blocks_spec.append((first, names[0].rpartition(".")[0], "generic", names, members))
    for (owner, _), names in fallback_groups.items():
        blocks_spec.append((order.index(names[0]), owner, "generic", names, []))
    blocks_spec.sort(key=lambda s: s[0])

    blocks: list[ParamBlock] = []
    linear: dict[int, tuple[str | None, str | None]] = {}
    embedding: dict[int, Entry] = {}
    fallback: dict[int, list[str]] = {}
    addend: dict[int, list[str]] = {}
    for i, (_, bname, kind, names, members) in enumerate(blocks_spec):
        blocks.append(ParamBlock(name=bname, kind=kind, params={n: params[n] for n in names}))
        for e in members:
            e.block = i
        if kind == "linear":
            linear[i] = (members[0].names.get("weight"), members[0].names.get("bias"))
        elif kind == "embedding":
            embedding[i] = members[0]
        if not members:
            (addend if names[0] in addends else fallback)[i] = names
    return Plan(
        entries=live,
        blocks=blocks,
        linear=linear,
        embedding=embedding,
        addend=addend,
        addends=addends,
        fallback=fallback,
        fallback_params=[n for n in order if n not in handled and n not in addends],
        reasons={n: r for n, r in reasons.items() if n not in handled},
    )

"""Reading the autograd graph of one forward pass: who uses which parameter, and where.

The hook engine trusts a handler with a parameter only when the graph proves that every use of
the parameter happens inside a handled module call. :class:`GraphIndex` walks the graph once from
the loss and records, for each node, the nodes that consume its output (``parents``, i.e. closer to
the loss) and, for each scored parameter, the nodes that read it directly (``uses``).
:func:`call_subgraph` collects the nodes a module call created (from its output's node down to,
but excluding, its inputs' nodes).

Example:
    >>> import torch
    >>> lin = torch.nn.Linear(2, 2)
    >>> x = torch.randn(3, 2, requires_grad=True)
    >>> loss = lin(x).sum()
    >>> index = GraphIndex(loss.grad_fn, {id(lin.weight)})
    >>> len(index.uses[id(lin.weight)])
    1
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import torch

__all__ = [
    "GraphIndex",
    "addend_batch_dim",
    "addend_per_sample",
    "call_subgraph",
    "is_accumulate",
    "is_addition_of",
    "node_output_shape",
    "nodes_above",
]

Node = Any  # torch.autograd.graph.Node (kept loose: C++ node types have no common Python base)


def is_accumulate(node: Node) -> bool:
    """Whether ``node`` is a leaf's ``AccumulateGrad`` node."""
    return type(node).__name__ == "AccumulateGrad"


class GraphIndex:
    """Parents of every node and direct readers of every scored parameter, from ``root`` down.

    Args:
        root: The loss's ``grad_fn``.
        scored: ``id()`` of the parameters whose uses are recorded.

    Attributes:
        parents: Node → nodes that take its output as an input (one entry per edge).
        uses: ``id(param)`` → nodes with an edge into the parameter's ``AccumulateGrad``.
        nodes: Every non-leaf node reachable from ``root``.
    """

    def __init__(self, root: Node, scored: set[int]) -> None:
        self.parents: dict[Node, list[Node]] = defaultdict(list)
        self.uses: dict[int, list[Node]] = defaultdict(list)
        self.nodes: set[Node] = {root}
        stack = [root]
        while stack:
            node = stack.pop()
            for child, _ in node.next_functions:
                if child is None:
                    continue
                if is_accumulate(child):
                    key = id(child.variable)
                    if key in scored:
                        self.uses[key].append(node)
                    continue
                self.parents[child].append(node)
                if child not in self.nodes:
                    self.nodes.add(child)
                    stack.append(child)


def call_subgraph(out_node: Node, stop: Iterable[Node]) -> set[Node]:
    """Nodes created by one module call: reachable from ``out_node`` without entering ``stop``.

    ``stop`` holds the nodes of the call's inputs; ``AccumulateGrad`` nodes are never included.
    """
    stop_set = set(stop)
    seen = {out_node}
    stack = [out_node]
    while stack:
        node = stack.pop()
        for child, _ in node.next_functions:
            if child is None or child in seen or child in stop_set or is_accumulate(child):
                continue
            seen.add(child)
            stack.append(child)
    return seen


def nodes_above(starts: Iterable[Node], parents: dict[Node, list[Node]]) -> set[Node]:
    """Every node strictly closer to the loss than some node of ``starts`` (transitive parents)."""
    above: set[Node] = set()
    stack = [p for s in starts for p in parents.get(s, ())]
    while stack:
        node = stack.pop()
        if node in above:
            continue
        above.add(node)
        stack.extend(parents.get(node, ()))
    return above


def node_output_shape(node: Node, output_nr: int = 0) -> tuple[int, ...] | None:
    """Shape of a graph node's forward output (``None`` when torch does not expose it)."""
    try:
        return tuple(node._input_metadata[output_nr].shape)
    except (AttributeError, IndexError, RuntimeError, TypeError):
        return None


def is_addition_of(node: Node, param: torch.Tensor) -> bool:
    """Whether ``node`` is ``a + param`` (alpha 1, ``param`` read once)."""
    if type(node).__name__ != "AddBackward0" or getattr(node, "_saved_alpha", 1) != 1:
        return False
    reads = [
        c
        for c, _ in node.next_functions
        if c is not None and is_accumulate(c) and c.variable is param
    ]
    return len(reads) == 1


def addend_batch_dim(param: torch.Tensor, readers: list[Node], batch_size: int) -> int | None:
    """The batch dimension shared by the additions reading a bare addend, or ``None``."""
    dims = set()
    for node in readers:
        if not is_addition_of(node, param):
            return None
        shape = node_output_shape(node)
        if shape is None:
            return None
        lead = len(shape) - param.dim()
        hits = [d for d in range(max(lead, 0)) if shape[d] == batch_size]
        if len(hits) != 1:
            return None
        dims.add(hits[0])
    return dims.pop() if len(dims) == 1 else None


def addend_per_sample(
    g: torch.Tensor, bdim: int, shape: torch.Size, batch_size: int
) -> torch.Tensor:
    """``[B, *shape]``: an addition's output gradient summed per sample down to the addend's shape."""
    t = g.movedim(bdim, 0)
    k = t.dim() - 1 - len(shape)
    return t.sum_to_size((batch_size, *([1] * k), *shape)).reshape(batch_size, *shape)

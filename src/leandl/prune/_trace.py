"""Channel-dependency tracing on a ``torch.fx`` graph (the engine behind :mod:`leandl.prune.groups`).

Every tensor in the traced graph carries a *view* of its channel dimension: an ordered list of
segments ``(space, r)``, where ``space`` is a set of coupled units (union-find over "base spaces")
and ``r`` is how many consecutive indices each unit occupies there (1 after a conv, ``H*W`` after
a flatten). Unit ``k`` of a segment starting at offset ``o`` owns indices ``o + k*r + arange(r)``.

Rules (one per op family):

- conv / linear: the input view is *consumed* (weight dim 1); the output is a new space
  *produced* by weight dim 0 and bias. Depthwise convs produce on their input's view (in == out);
  other grouped convs block both sides (never pruned).
- BatchNorm / LayerNorm over the channel dim: producers on the input view (weight, bias, stats).
- element-wise ops (``add``, ``mul``, ...) between two tensors tie their spaces (residuals);
  a broadcast parameter (position embedding) becomes a producer of the space.
- ``cat`` on the channel dim concatenates views (offsets), on another dim ties them.
- ``flatten`` / ``view`` that merge the channel dim with trailing dims multiply ``r``.
- anything else that touches the channel dim (``pad`` over channels, ``chunk``, slicing) marks
  the spaces *unsupported* with the op's name and layer; :func:`channel_groups` refuses them.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from leandl.errors import ModelError

__all__ = ["Space", "Tracer", "trace_spaces", "Slice"]

Slice = tuple[str, str, int, int, int]  # (module name, param name, dim, offset, r)

_PASS_MODULES = (
    nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.Hardsigmoid,
    nn.LeakyReLU, nn.ELU, nn.Mish, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Identity,
    nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.Upsample,
    nn.ZeroPad2d, nn.Hardtanh,
)
_PASS_FUNCS = {
    "relu", "relu_", "relu6", "gelu", "silu", "sigmoid", "tanh", "hardswish", "hardtanh",
    "leaky_relu", "elu", "mish", "dropout", "dropout1d", "dropout2d", "avg_pool1d",
    "avg_pool2d", "max_pool1d", "max_pool2d", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
    "adaptive_max_pool1d", "adaptive_max_pool2d", "interpolate", "contiguous", "clone",
    "float", "to", "detach", "neg", "abs", "exp", "sqrt", "type_as",
}
_BINARY = {"add", "sub", "mul", "truediv", "iadd", "isub", "imul", "add_", "mul_", "div", "sub_"}
_RESHAPE = {"view", "reshape", "flatten", "unsqueeze", "squeeze"}
_NO_TENSOR = {"size", "dim", "getattr", "numel"}


@dataclass
class Space:
    """A set of coupled units: every slice that produces or consumes them."""

    size: int
    producers: list[Slice] = field(default_factory=list)
    consumers: list[Slice] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)  # why it may not be pruned (quietly)
    unsupported: list[str] = field(default_factory=list)  # ops that make pruning unsafe
    kind: str = "channel"
    name: str | None = None  # explicit group name (heads)
    order: int = 0


@dataclass
class _Info:
    view: list[tuple[int, int]] | None  # segments (space id, r) along cdim
    cdim: int | None
    param: tuple[str, str] | None = None  # a (broadcast) parameter: (owner, param name)
    poison: str | None = None  # tuple output of an unsupported op


class Tracer(fx.Tracer):
    """fx tracer that keeps attention modules (ours, BERT-style) as leaves."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return _is_attention(m) or _is_bert_attention(m) or super().is_leaf_module(m, qualname)


def _is_attention(m: nn.Module) -> bool:
    return (isinstance(getattr(m, "qkv", None), nn.Linear)
            and isinstance(getattr(m, "proj", None), nn.Linear) and hasattr(m, "head_dim"))


def _is_bert_attention(m: nn.Module) -> bool:
    return all(isinstance(getattr(m, k, None), nn.Linear) for k in ("query", "key", "value")) \
        and hasattr(m, "num_attention_heads") and hasattr(m, "attention_head_size")


class _Graph:
    """Union-find over spaces plus the per-node rules."""

    def __init__(self, gm: fx.GraphModule, heads: bool) -> None:
        self.gm = gm
        self.heads = heads
        self.spaces: list[Space] = []
        self.parent: list[int] = []
        self.env: dict[fx.Node, _Info] = {}

    # -- union-find ---------------------------------------------------------------------
    def new(self, size: int, **kw: Any) -> int:
        self.spaces.append(Space(size=size, order=len(self.spaces), **kw))
        self.parent.append(len(self.parent))
        return len(self.parent) - 1

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        a, b = self.find(a), self.find(b)
        if a == b:
            return
        if self.spaces[a].size != self.spaces[b].size:
            self.mark([(a, 1), (b, 1)], "element-wise op between different widths")
            return
        if self.spaces[b].order < self.spaces[a].order:
            a, b = b, a
        sa, sb = self.spaces[a], self.spaces[b]
        for attr in ("producers", "consumers", "blocked", "unsupported"):
            getattr(sa, attr).extend(getattr(sb, attr))
        self.parent[b] = a

    def mark(self, view: list[tuple[int, int]] | None, reason: str, blocked: bool = False) -> None:
        for sid, _ in view or []:
            sp = self.spaces[self.find(sid)]
            (sp.blocked if blocked else sp.unsupported).append(reason)

    def add(self, view: list[tuple[int, int]], module: str, params: list[str], dim: int,
            role: str) -> None:
        """Register ``module.param`` dim ``dim`` as producer/consumer of every segment."""
        off = 0
        for sid, r in view:
            sp = self.spaces[self.find(sid)]
            for p in params:
                (sp.producers if role == "p" else sp.consumers).append((module, p, dim, off, r))
            off += sp.size * r

    def width(self, view: list[tuple[int, int]]) -> int:
        return sum(self.spaces[self.find(s)].size * r for s, r in view)

    def fresh(self, node: fx.Node, cdim: int | None, reason: str | None = None,
              blocked: str | None = None) -> _Info:
        shape = _shape(node)
        if shape is None or cdim is None or cdim >= len(shape):
            return _Info(None, None)
        sid = self.new(shape[cdim])
        if reason:
            self.spaces[sid].unsupported.append(reason)
        if blocked:
            self.spaces[sid].blocked.append(blocked)
        return _Info([(sid, 1)], cdim)


def _shape(node: Any) -> tuple[int, ...] | None:
    meta = getattr(node, "meta", {}).get("tensor_meta") if isinstance(node, fx.Node) else None
    return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None


def _where(node: fx.Node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    path = list(stack.values())[-1][0] if stack else ""
    path = path if isinstance(path, str) else ""
    return f"{path or 'model'} ({node.op} {getattr(node.target, '__name__', node.target)})"


def trace_spaces(model: nn.Module, example_inputs: Any, heads: bool = True) -> tuple[
        list[Space], list[str]]:
    """Trace ``model`` and return its root spaces (coupled unit sets) and its module order.

    Raises:
        ModelError: the model cannot be traced symbolically by ``torch.fx``.
    """
    from torch.fx.passes.shape_prop import ShapeProp

    try:
        graph = Tracer().trace(model)
    except Exception as exc:  # fx raises many types (TraceError, TypeError, ...)
        raise ModelError(
            f"torch.fx cannot trace this model ({type(exc).__name__}: {exc})",
            where=type(model).__name__,
            fix="remove data-dependent Python control flow from forward, or prune it by hand",
        ) from exc
    gm = fx.GraphModule(model, graph)
    args = example_inputs if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(*args)
    finally:
        model.train(was_training)
    g = _Graph(gm, heads)
    order: list[str] = []
    for node in gm.graph.nodes:
        if node.op == "call_module":
            order.append(str(node.target))
        g.env[node] = _rule(g, node)
    roots = [g.find(i) for i in range(len(g.spaces))]
    return [g.spaces[i] for i in sorted(set(roots))], order


def _rule(g: _Graph, node: fx.Node) -> _Info:
    from leandl.prune import _rules

    return _rules.apply(g, node)


def prod(xs: Any) -> int:
    """Integer product (1 for an empty sequence)."""
    return int(math.prod(int(x) for x in xs))


def fn_name(node: fx.Node) -> str:
    """The short name of a call_function / call_method target ("add", "flatten", ...)."""
    t = node.target
    if isinstance(t, str):
        return t
    if t is operator.getitem:
        return "getitem"
    return getattr(t, "__name__", str(t))

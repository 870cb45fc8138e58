"""Per-op propagation rules for :mod:`leandl.prune._trace` (see its docstring for the model)."""

from __future__ import annotations

from typing import Any

import torch.fx as fx
from torch import nn

from leandl.prune._trace import (
    _BINARY, _NO_TENSOR, _PASS_FUNCS, _PASS_MODULES, _RESHAPE, _Graph, _Info, _is_attention,
    _is_bert_attention, _shape, _where, fn_name, prod,
)

__all__ = ["apply"]


def apply(g: _Graph, node: fx.Node) -> _Info:
    """Compute ``node``'s channel info from its inputs' (already in ``g.env``)."""
    if node.op == "placeholder":
        shape = _shape(node)
        if shape is None or len(shape) < 2:
            return _Info(None, None)
        cdim = 1 if len(shape) >= 3 else len(shape) - 1
        return g.fresh(node, cdim, blocked="model input")
    if node.op == "get_attr":
        owner, _, pname = str(node.target).rpartition(".")
        return _Info(None, None, param=(owner, pname))
    if node.op == "output":
        for arg in _nodes(node.args):
            g.mark(g.env[arg].view, "model output", blocked=True)
        return _Info(None, None)
    if node.op == "call_module":
        return _module(g, node, g.gm.get_submodule(str(node.target)))
    return _function(g, node, fn_name(node))


def _nodes(args: Any) -> list[fx.Node]:
    out: list[fx.Node] = []
    fx.node.map_arg(args, out.append)
    return out


def _inputs(g: _Graph, node: fx.Node) -> list[_Info]:
    return [g.env[a] for a in _nodes(node.args) + _nodes(node.kwargs)]


def _unsupported(g: _Graph, node: fx.Node, what: str) -> _Info:
    reason = f"{what} at {_where(node)}"
    for info in _inputs(g, node):
        g.mark(info.view, reason)
    shape = _shape(node)
    ins = [i for i in _inputs(g, node) if i.cdim is not None]
    cdim = ins[0].cdim if ins else None
    if shape is None:
        return _Info(None, cdim, poison=reason)
    return g.fresh(node, cdim if cdim is not None and cdim < len(shape) else None, reason=reason)


def _module(g: _Graph, node: fx.Node, m: nn.Module) -> _Info:
    name = str(node.target)
    x = g.env[node.args[0]] if node.args and isinstance(node.args[0], fx.Node) else _Info(None, None)
    if isinstance(m, nn.modules.conv._ConvNd):
        return _conv(g, node, m, name, x)
    if isinstance(m, nn.Linear):
        if x.view is None or x.cdim != len(_shape(node.args[0]) or ()) - 1:
            if x.view is not None:
                g.mark(x.view, f"linear {name} on a non-channel dim")
        else:
            g.add(x.view, name, ["weight"], 1, "c")
        out = g.fresh(node, len(_shape(node) or (0,)) - 1)
        if out.view:
            g.add(out.view, name, ["weight"] + (["bias"] if m.bias is not None else []), 0, "p")
        return out
    if isinstance(m, nn.modules.batchnorm._BatchNorm):
        if x.view is None or x.cdim != 1:
            return _unsupported(g, node, f"batch norm {name} on an unknown channel dim")
        params = [p for p in ("weight", "bias", "running_mean", "running_var")
                  if getattr(m, p, None) is not None]
        g.add(x.view, name, params, 0, "p")
        return x
    if isinstance(m, nn.LayerNorm):
        shape = _shape(node.args[0]) or ()
        if len(m.normalized_shape) != 1 or x.view is None or x.cdim != len(shape) - 1:
            return _unsupported(g, node, f"layer norm {name} over several dims")
        if m.elementwise_affine:
            g.add(x.view, name, ["weight"] + (["bias"] if m.bias is not None else []), 0, "p")
        return x
    if isinstance(m, nn.Flatten):
        return _reshape(g, node, x)
    if isinstance(m, _PASS_MODULES):
        return x
    if isinstance(m, nn.Embedding):
        return g.fresh(node, len(_shape(node) or (0,)) - 1, blocked=f"embedding {name}")
    if _is_attention(m):
        return _attention(g, node, m, name, x)
    if _is_bert_attention(m):
        return _bert_attention(g, node, m, name, x)
    return _unsupported(g, node, f"module {name} ({type(m).__name__}) is not supported")


def _conv(g: _Graph, node: fx.Node, m: nn.Module, name: str, x: _Info) -> _Info:
    bias = ["bias"] if m.bias is not None else []
    if m.groups == 1:
        if x.view is not None and x.cdim == 1:
            g.add(x.view, name, ["weight"], 1, "c")
        out = g.fresh(node, 1)
        if out.view:
            g.add(out.view, name, ["weight"] + bias, 0, "p")
        return out
    if m.groups == m.in_channels == m.out_channels and x.view is not None:
        g.add(x.view, name, ["weight"] + bias, 0, "p")  # depthwise: in == out
        return x
    g.mark(x.view, f"grouped conv {name}", blocked=True)
    return g.fresh(node, 1, blocked=f"grouped conv {name}")


def _attention(g: _Graph, node: fx.Node, m: nn.Module, name: str, x: _Info) -> _Info:
    if x.view is not None:
        g.add(x.view, f"{name}.qkv", ["weight"], 1, "c")
    heads, hd = int(m.num_heads), int(m.head_dim)
    if g.heads:
        sid = g.new(heads, kind="head", name=name)
        sp = g.spaces[sid]
        for s in range(3):
            for p in ["weight"] + (["bias"] if m.qkv.bias is not None else []):
                sp.producers.append((f"{name}.qkv", p, 0, s * heads * hd, hd))
        sp.consumers.append((f"{name}.proj", "weight", 1, 0, hd))
    out = g.fresh(node, len(_shape(node) or (0,)) - 1)
    if out.view:
        g.add(out.view, f"{name}.proj", ["weight"] + (["bias"] if m.proj.bias is not None else []),
              0, "p")
    return out


def _bert_attention(g: _Graph, node: fx.Node, m: nn.Module, name: str, x: _Info) -> _Info:
    for k in ("query", "key", "value"):
        if x.view is not None:
            g.add(x.view, f"{name}.{k}", ["weight"], 1, "c")
    heads, hd = int(m.num_attention_heads), int(m.attention_head_size)
    sid = g.new(heads, kind="head", name=name)
    if not g.heads:
        g.spaces[sid].blocked.append("heads=False")
    for k in ("query", "key", "value"):
        for p in ("weight", "bias"):
            if getattr(getattr(m, k), p, None) is not None:
                g.spaces[sid].producers.append((f"{name}.{k}", p, 0, 0, hd))
    shape = _shape(node)
    if shape is None:  # tuple output (context, ...): the context is head-major, hd per head
        return _Info([(sid, hd)], 2, poison=None)
    return _Info([(sid, hd)], len(shape) - 1)


def _function(g: _Graph, node: fx.Node, fname: str) -> _Info:
    ins = _inputs(g, node)
    first = ins[0] if ins else _Info(None, None)
    if fname in _NO_TENSOR:
        return _Info(None, None)
    if fname == "getitem":
        return _getitem(g, node, first)
    if any(i.poison for i in ins):
        return _unsupported(g, node, [i.poison for i in ins if i.poison][0])
    if fname in _PASS_FUNCS:
        return first
    if fname in _BINARY:
        return _binary(g, node, ins)
    if fname in _RESHAPE:
        return _reshape(g, node, first)
    if fname in ("transpose", "permute"):
        return _permute(g, node, first, fname)
    if fname == "expand":
        return _expand(g, node, first)
    if fname == "cat":
        return _cat(g, node)
    if fname in ("mean", "sum", "amax"):
        return _reduce(g, node, first)
    if fname == "pad":
        return _pad(g, node, first)
    if all(i.view is None and i.param is None for i in ins):
        return _Info(None, None)
    return _unsupported(g, node, f"op '{fname}'")


def _binary(g: _Graph, node: fx.Node, ins: list[_Info]) -> _Info:
    out_shape = _shape(node)
    spaced = [(a, i) for a, i in zip(_nodes(node.args), ins) if i.view is not None]
    if not spaced or out_shape is None:
        return _Info(None, None)
    base_node, base = spaced[0]
    nd = len(out_shape)
    cpos_end = nd - (base.cdim + nd - len(_shape(base_node) or ()))  # channel pos from the end
    for a, info in zip(_nodes(node.args), ins):
        if info is base:
            continue
        shape = _shape(a) or ()
        pdim = len(shape) - cpos_end
        size = shape[pdim] if 0 <= pdim < len(shape) else 1
        if info.view is not None:
            if info.cdim != pdim:
                g.mark(base.view + info.view, f"element-wise op on different dims at {_where(node)}")
            elif not _tie(g, base.view, info.view):
                g.mark(base.view + info.view, f"misaligned element-wise op at {_where(node)}")
        elif size > 1 and info.param is not None:
            g.add(base.view, info.param[0], [info.param[1]], pdim, "p")
        elif size > 1:
            g.mark(base.view, f"element-wise op with an untracked tensor at {_where(node)}")
    return _Info(base.view, nd - cpos_end)


def _tie(g: _Graph, a: list[tuple[int, int]], b: list[tuple[int, int]]) -> bool:
    if len(a) != len(b) or any(ra != rb for (_, ra), (_, rb) in zip(a, b)):
        return False
    if any(g.spaces[g.find(sa)].size != g.spaces[g.find(sb)].size for (sa, _), (sb, _) in zip(a, b)):
        return False
    for (sa, _), (sb, _) in zip(a, b):
        g.union(sa, sb)
    return True


def _reshape(g: _Graph, node: fx.Node, x: _Info) -> _Info:
    src, out = _shape(node.args[0]), _shape(node)
    if x.view is None or src is None or out is None or x.cdim is None:
        return _Info(None, None, param=x.param if x.param and src == out else None)
    before, width = prod(src[: x.cdim]), src[x.cdim]
    acc = 1
    for j, size in enumerate(out):
        if acc == before and size % width == 0 and size >= width:
            k = size // width
            if k == 1 or prod(src[x.cdim + 1:]) % k == 0:
                return _Info([(s, r * k) for s, r in x.view], j)
        acc *= size
        if acc > before:
            break
    return _unsupported(g, node, "reshape that splits the channel dim")


def _permute(g: _Graph, node: fx.Node, x: _Info, fname: str) -> _Info:
    if x.view is None or x.cdim is None:
        return _Info(None, None)
    nd = len(_shape(node.args[0]) or ())
    dims = [a for a in node.args[1:]]
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = list(dims[0])
    dims = [int(d) % nd for d in dims]
    if fname == "transpose":
        a, b = dims
        cdim = b if x.cdim == a else a if x.cdim == b else x.cdim
    else:
        cdim = dims.index(x.cdim)
    return _Info(x.view, cdim)


def _expand(g: _Graph, node: fx.Node, x: _Info) -> _Info:
    src, out = _shape(node.args[0]) or (), _shape(node) or ()
    if x.view is None:
        return _Info(None, None, param=x.param)
    cdim = x.cdim + len(out) - len(src)
    if out[cdim] != src[x.cdim]:
        return _unsupported(g, node, "expand over the channel dim")
    return _Info(x.view, cdim)


def _cat(g: _Graph, node: fx.Node) -> _Info:
    parts = list(node.args[0]) if node.args else list(node.kwargs.get("tensors", []))
    dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
    out = _shape(node)
    if out is None:
        return _Info(None, None)
    dim = int(dim) % len(out)
    infos = [g.env[p] for p in parts]
    spaced = [i for i in infos if i.view is not None]
    if not spaced:
        return _Info(None, None)
    cdim = spaced[0].cdim
    if dim == cdim:
        view: list[tuple[int, int]] = []
        for p, info in zip(parts, infos):
            if info.view is None or info.cdim != cdim:
                info = g.fresh(p, cdim, blocked=f"untracked input of cat at {_where(node)}")
                if info.view is None:
                    return _unsupported(g, node, "cat of untracked tensors")
            view.extend(info.view)
        return _Info(view, cdim)
    for p, info in zip(parts, infos):  # cat along another dim: channels must agree
        if info.view is not None and info is not spaced[0]:
            if info.cdim != cdim or not _tie(g, spaced[0].view, info.view):
                g.mark(spaced[0].view + info.view, f"cat of misaligned channels at {_where(node)}")
        elif info.param is not None:
            shape = _shape(p) or ()
            pdim = len(shape) - (len(out) - cdim)
            if 0 <= pdim and shape[pdim] > 1:
                g.add(spaced[0].view, info.param[0], [info.param[1]], pdim, "p")
        elif info.view is None:
            g.mark(spaced[0].view, f"cat with an untracked tensor at {_where(node)}")
    return _Info(spaced[0].view, cdim)


def _reduce(g: _Graph, node: fx.Node, x: _Info) -> _Info:
    if x.view is None:
        return _Info(None, None)
    src = _shape(node.args[0]) or ()
    dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
    keep = bool(node.kwargs.get("keepdim", node.args[2] if len(node.args) > 2 else False))
    if dims is None:
        return _unsupported(g, node, "reduction over all dims")
    dims = [int(d) % len(src) for d in (dims if isinstance(dims, (tuple, list)) else [dims])]
    if x.cdim in dims:
        return _unsupported(g, node, "reduction over the channel dim")
    return _Info(x.view, x.cdim if keep else x.cdim - sum(d < x.cdim for d in dims))


def _pad(g: _Graph, node: fx.Node, x: _Info) -> _Info:
    if x.view is None:
        return _Info(None, None)
    pads = list(node.args[1] if len(node.args) > 1 else node.kwargs.get("pad", ()))
    nd = len(_shape(node.args[0]) or ())
    k = nd - 1 - x.cdim  # pair index of the channel dim, counted from the last dim
    if len(pads) >= 2 * (k + 1) and (pads[2 * k] or pads[2 * k + 1]):
        return _unsupported(g, node, "op 'pad' over the channel dim")
    return x


def _getitem(g: _Graph, node: fx.Node, x: _Info) -> _Info:
    src = _shape(node.args[0])
    idx = node.args[1]
    if src is None:  # indexing a tuple (chunk/split output, or a leaf's tuple)
        if x.poison:
            return _unsupported(g, node, x.poison)
        return _Info(x.view, x.cdim) if x.view is not None and idx == 0 else _Info(None, None)
    if x.view is None:
        return _Info(None, None, param=None)
    items = list(idx) if isinstance(idx, tuple) else [idx]
    if Ellipsis in items:
        e = items.index(Ellipsis)
        items = items[:e] + [slice(None)] * (len(src) - len(items) + 1) + items[e + 1:]
    cdim, out_dim = None, 0
    for d in range(len(src)):
        it = items[d] if d < len(items) else slice(None)
        while it is None:
            out_dim += 1
            items.pop(d)
            it = items[d] if d < len(items) else slice(None)
        if d == x.cdim:
            if it != slice(None):
                return _unsupported(g, node, "indexing/slicing the channel dim")
            cdim = out_dim
        if isinstance(it, slice):
            out_dim += 1
        elif not isinstance(it, int):
            return _unsupported(g, node, "advanced indexing")
    return _Info(x.view, cdim)

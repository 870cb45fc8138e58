"""Channel rules of layout ops: transpose/permute, (un)squeeze, expand, reshape with head
splits, slice/select/split/cat/stack, index/gather/embedding, pad, copy, pixel (un)shuffle."""

from __future__ import annotations

from typing import Any

import torch

from leandl.prune._trace import Graph, Info, View, prod
from leandl.prune._rules_base import _group_view, _info, _tie, _unsupported, _where


def _transpose_like(g: Graph, name: str, args: tuple, kwargs: dict, out: Any) -> Info:
    x = _info(g, args[0])
    nd = args[0].dim()
    if name == "t":
        perm = [1, 0] if nd == 2 else list(range(nd))
    elif name in ("transpose", "swapaxes"):
        a, b = int(args[1]) % nd, int(args[2]) % nd
        perm = list(range(nd))
        perm[a], perm[b] = perm[b], perm[a]
    else:
        perm = [int(d) % nd for d in args[1]]
    if x.param is not None:
        return Info(param=(x.param[0], x.param[1], tuple(x.param[2][p] for p in perm)))
    return Info(x.view, perm.index(x.cdim))


def _unsqueeze(g: Graph, name: str, args: tuple, kwargs: dict, out: Any) -> Info:
    x = _info(g, args[0])
    d = int(args[1]) % out.dim()
    if x.param is not None:
        dims = list(x.param[2])
        dims.insert(d, None)
        return Info(param=(x.param[0], x.param[1], tuple(dims)))
    return Info(x.view, x.cdim + (d <= x.cdim))


def _squeeze(g: Graph, name: str, args: tuple, kwargs: dict, out: Any) -> Info:
    x = _info(g, args[0])
    src = args[0].shape
    kept = _squeeze_kept(src, out.shape, args[1:])
    if kept is None:
        return _reshape(g, "view", args, kwargs, out)
    if x.param is not None:
        return Info(param=(x.param[0], x.param[1], tuple(x.param[2][k] for k in kept)))
    if x.cdim not in kept:
        return Info()
    return Info(x.view, kept.index(x.cdim))


def _squeeze_kept(src: Any, dst: Any, rest: tuple) -> list[int] | None:
    dims = rest[0] if rest else None
    if dims is None:
        drop = {i for i, s in enumerate(src) if s == 1}
    else:
        dims = dims if isinstance(dims, (list, tuple)) else [dims]
        drop = {int(d) % len(src) for d in dims if src[int(d) % len(src)] == 1}
    kept = [i for i in range(len(src)) if i not in drop]
    return kept if len(kept) == len(dst) else None


def _expand(g: Graph, name: str, args: tuple, kwargs: dict, out: Any) -> Info:
    x = _info(g, args[0])
    src, dst = args[0].shape, out.shape
    lead = len(dst) - len(src)
    if x.param is not None:
        dims = [None] * lead + [d if src[i] == dst[lead + i] else None
                                for i, d in enumerate(x.param[2])]
        return Info(param=(x.param[0], x.param[1], tuple(dims)))
    if dst[lead + x.cdim] != src[x.cdim]:
        return (_unsupported(g, name, args, kwargs, out, "expand over the channel dim") or
                [Info()])[0]
    return Info(x.view, x.cdim + lead)


def _reshape(g: Graph, name: str, args: tuple, kwargs: dict, out: Any) -> Info:
    x = _info(g, args[0])
    src, dst = list(args[0].shape), list(out.shape)
    if x.param is not None:
        if src == dst:
            return Info(param=x.param)
        if tuple(dst) == g.pshape.get(x.param[:2]):  # reshaped back to the parameter's shape
            return Info(param=(x.param[0], x.param[1], tuple(range(len(dst)))))
        return Info(param=_param_reshape(x, src, dst))
    if x.view is None:
        return Info()
    cdim = x.cdim
    inner = prod(src[cdim + 1:])  # stride of the channel dim
    width = src[cdim]
    outer = inner * width
    where = _where(g, name)
    # output dims j with stride S_j; find those covering [inner, outer)
    strides = [prod(dst[j + 1:]) for j in range(len(dst))]
    for j, size in enumerate(dst):
        s = strides[j]
        if s <= inner and s * size >= outer and inner % s == 0 and (s * size) % outer == 0:
            if s * size != outer and prod(src[:cdim]) != 1:
                break  # channels merged with a non-trivial outer dim
            k = inner // s
            return Info([(sid, r * k) for sid, r in x.view], j)
    # the channels split over several output dims J (outer to inner): (H, D) heads, or
    # (P, H, D) with P fused parts (q/k/v), which must all keep the same units: tied
    J = [j for j, size in enumerate(dst) if size > 1 and strides[j] >= inner
         and strides[j] * size <= outer and strides[j] % inner == 0]
    if J and prod(dst[j] for j in J) == width and strides[J[-1]] == inner \
            and strides[J[0]] * dst[J[0]] == outer:
        while len(J) >= 3:
            n = dst[J[0]]
            parts = _split_view(g, x, [g.width(x.view) // n] * n, where)
            if any(p.view is None for p in parts):
                return Info()
            for p in parts[1:]:
                _tie(g, parts[0].view, p.view, where)
            x = Info([(g.find(s_), r) for s_, r in parts[0].view], x.cdim)
            J = J[1:]
        return _split_dim(g, x, strides[J[0]] // inner, J[0], where)
    g.mark(x.view, f"reshape that mixes the channels with other dims at {where}")
    return Info()


def _param_reshape(x: Info, src: list[int], dst: list[int]) -> tuple:
    """Dims map of a reshaped parameter: kept dims of the same size line up, others are None."""
    owner, pname, dims = x.param
    real = [(d, s) for d, s in zip(dims, src) if s != 1]
    out: list[int | None] = []
    it = iter(real)
    nxt = next(it, None)
    for s in dst:
        if s == 1:
            out.append(None)
        elif nxt is not None and nxt[1] == s:
            out.append(nxt[0])
            nxt = next(it, None)
        else:
            return (owner, pname, tuple([None] * len(dst)))
    return (owner, pname, tuple(out))


def _split_dim(g: Graph, x: Info, per: int, j: int, where: str) -> Info:
    """Channels split into (units of ``per`` indices, inner): coarsen so units match."""
    view: View = []
    off = 0
    for sid, r in list(x.view):
        w = g.sp(sid).size * r
        if r % per == 0:
            view.append((sid, r // per))
        elif per % r == 0 and off % per == 0 and w % per == 0:
            if not g.coarsen(sid, per // r, where):
                return Info()
            view.append((g.find(sid), 1))
        else:
            g.mark(x.view, f"reshape that splits channel units at {where}")
            return Info()
        off += w
    return Info(view, j)


def _slice(g: Graph, name: str, args: tuple, kwargs: dict, out: Any) -> Info:
    x = _info(g, args[0])
    nd = args[0].dim()
    dim = int(args[1] if len(args) > 1 else kwargs.get("dim", 0)) % nd
    if x.param is not None:
        if args[0].shape[dim] == out.shape[dim]:
            return Info(param=x.param)
        dims = list(x.param[2])
        dims[dim] = None
        return Info(param=(x.param[0], x.param[1], tuple(dims)))
    if dim != x.cdim:
        return Info(x.view, x.cdim)
    if out.shape[dim] == args[0].shape[dim]:
        return Info(x.view, x.cdim)
    step = int(args[4]) if len(args) > 4 and name == "slice" else 1
    if step == 1:  # a contiguous range of channels: split the spaces at its ends
        width = int(args[0].shape[dim])
        start = int(args[2]) if len(args) > 2 and args[2] is not None else 0
        start = max(0, min(width, start + width if start < 0 else start))
        if name == "narrow":
            start = int(args[2]) % width
        length = int(out.shape[dim])
        sizes = [n for n in (start, length, width - start - length) if n > 0]
        parts = _split_view(g, x, sizes, _where(g, name))
        part = parts[1] if start > 0 else parts[0]
        if part.view is not None:
            return part
    return (_unsupported(g, name, args, kwargs, out, "slicing the channel dim") or [Info()])[0]


def _select(g: Graph, name: str, args: tuple, kwargs: dict, out: Any) -> Info:
    x = _info(g, args[0])
    dim = int(args[1]) % args[0].dim()
    if x.param is not None:
        dims = list(x.param[2])
        dims.pop(dim)
        return Info(param=(x.param[0], x.param[1], tuple(dims)))
    if dim == x.cdim:
        return (_unsupported(g, name, args, kwargs, out, "selecting one channel") or [Info()])[0]
    return Info(x.view, x.cdim - (dim < x.cdim))


def _split(g: Graph, name: str, args: tuple, kwargs: dict, out: Any) -> list[Info]:
    x = _info(g, args[0])
    nd = args[0].dim()
    pos = 1 if name == "unbind" else 2
    dim = int(args[pos] if len(args) > pos else kwargs.get("dim", 0)) % nd
    outs = list(out)
    if x.view is None:
        return [Info(param=x.param) if x.param and o.shape == args[0].shape else Info()
                for o in outs]
    if dim != x.cdim:
        return [Info(x.view, x.cdim - (name == "unbind" and dim < x.cdim)) for _ in outs]
    sizes = [int(o.shape[dim]) for o in outs]
    if name == "unbind":
        return _unsupported(g, name, args, kwargs, out, "unbind of the channel dim")
    return _split_view(g, x, sizes, _where(g, name))


def _split_view(g: Graph, x: Info, sizes: list[int], where: str) -> list[Info]:
    """Cut a channel view at index boundaries ``sizes``, splitting spaces where needed."""
    segs = [(sid, r, g.sp(sid).size * r) for sid, r in x.view]
    cuts = set()
    acc = 0
    for s in sizes[:-1]:
        acc += s
        cuts.add(acc)
    result: list[View] = [[] for _ in sizes]
    part, pos, part_end = 0, 0, sizes[0]
    for sid, r, w in segs:
        inner = sorted(c - pos for c in cuts if pos < c < pos + w)
        if inner:
            if any(c % r for c in inner):
                g.mark(x.view, f"split inside a channel unit at {where}")
                return [Info() for _ in sizes]
            units = [c // r for c in inner]
            bounds = [0, *units, w // r]
            pieces = g.split(sid, [b - a for a, b in zip(bounds, bounds[1:])])
        else:
            pieces = [g.find(sid)]
        for p in pieces:
            while pos >= part_end and part < len(sizes) - 1:
                part += 1
                part_end += sizes[part]
            result[part].append((p, r))
            pos += g.sp(p).size * r
    return [Info(v, x.cdim) for v in result]


def _cat(g: Graph, name: str, args: tuple, kwargs: dict, out: Any) -> Info:
    parts = [p for p in args[0] if p.numel() > 0 or p.dim() == out.dim()]
    dim = int(args[1] if len(args) > 1 else kwargs.get("dim", 0)) % out.dim()
    infos = [_info(g, p) for p in parts]
    tracked = [(p, i) for p, i in zip(parts, infos) if i.view is not None]
    where = _where(g, name)
    if not tracked:
        return Info()
    cdim = tracked[0][1].cdim
    if dim == cdim:
        view: View = []
        for p, info in zip(parts, infos):
            if info.view is None or info.cdim != cdim:
                if p.numel() == 0:
                    continue
                sid = g.new(int(p.shape[cdim]), blocked=[f"untracked input of cat at {where}"])
                if info.param is not None and info.param[2][cdim] is not None:
                    g.add([(sid, 1)], info.param[0], [info.param[1]], info.param[2][cdim], "p")
                view.append((sid, 1))
            else:
                view.extend(info.view)
        return Info(view, cdim)
    base = tracked[0][1]
    for p, info in zip(parts, infos):  # cat along another dim: channels must agree
        if info is base:
            continue
        if info.view is not None:
            if info.cdim != cdim:
                g.mark(base.view + info.view, f"cat of misaligned channels at {where}")
            else:
                _tie(g, base.view, info.view, where)
        elif info.param is not None and info.param[2][cdim] is not None:
            g.add(base.view, info.param[0], [info.param[1]], info.param[2][cdim], "p")
        elif p.shape[cdim] > 1:
            g.mark(base.view, f"cat with an untracked tensor at {where}")
    return Info(base.view, cdim)


def _stack(g: Graph, name: str, args: tuple, kwargs: dict, out: Any) -> Info:
    parts = list(args[0])
    dim = int(args[1] if len(args) > 1 else kwargs.get("dim", 0)) % out.dim()
    infos = [_info(g, p) for p in parts if _info(g, p).view is not None]
    if not infos:
        return Info()
    for i in infos[1:]:
        if i.cdim != infos[0].cdim:
            g.mark(infos[0].view + i.view, f"stack of misaligned channels at {_where(g, name)}")
        else:
            _tie(g, infos[0].view, i.view, _where(g, name))
    return Info(infos[0].view, infos[0].cdim + (dim <= infos[0].cdim))


def _index(g: Graph, name: str, args: tuple, kwargs: dict, out: Any) -> Info:
    """Advanced indexing (``index``, ``index_select``, ``gather``, ``embedding``) off the channels."""
    x = _info(g, args[0])
    src = args[0]
    if name == "embedding":
        w = args[0]
        if x.param is not None and x.param[2][1] is not None:
            view = g.produce(int(w.shape[1]), x.param[0], [x.param[1]], x.param[2][1])
            return Info(view, out.dim() - 1)
        return Info()
    if name in ("index_select", "gather"):
        dim = int(args[1]) % src.dim()
        if x.view is None:
            return Info()
        if dim == x.cdim:
            return (_unsupported(g, name, args, kwargs, out, f"'{name}' over the channels") or [Info()])[0]
        return Info(x.view, x.cdim)
    # aten.index(x, [idx or None per dim])
    idx = list(args[1])
    if x.param is not None:  # e.g. relative position bias tables: dims before the index stay
        first = next((i for i, t in enumerate(idx) if t is not None), len(idx))
        if all(t is not None for t in idx[first:]) and first < len(idx):
            shape = torch.broadcast_shapes(*[t.shape for t in idx[first:]])
            dims = list(x.param[2][:first]) + [None] * len(shape) + list(
                x.param[2][len(idx):])
            if len(dims) == out.dim():
                return Info(param=(x.param[0], x.param[1], tuple(dims)))
        return Info()
    if x.view is None:
        return Info()
    if x.cdim < len(idx) and idx[x.cdim] is not None:
        return (_unsupported(g, name, args, kwargs, out, "indexing the channels") or [Info()])[0]
    after = x.cdim >= len(idx) or all(i is None for i in idx[x.cdim:])
    if after:  # channel dim keeps its position from the end
        return Info(x.view, out.dim() - (src.dim() - x.cdim))
    return Info(x.view, x.cdim)


def _pad(g: Graph, name: str, args: tuple, kwargs: dict, out: Any) -> Info:
    x = _info(g, args[0])
    if x.view is None:
        return Info()
    pads = list(args[1])
    nd = args[0].dim()
    k = nd - 1 - x.cdim
    if len(pads) >= 2 * (k + 1) and (pads[2 * k] or pads[2 * k + 1]):
        return (_unsupported(g, name, args, kwargs, out, "padding the channel dim") or [Info()])[0]
    return Info(x.view, x.cdim)


def _copy(g: Graph, name: str, args: tuple, kwargs: dict, out: Any) -> Info:
    dst, src = _info(g, args[0]), _info(g, args[1])
    if src.view is None:
        return Info(dst.view, dst.cdim) if dst.view is not None else Info()
    if dst.view is None:
        if args[1].dim() == args[0].dim():
            return Info(src.view, src.cdim)
        return Info(src.view, src.cdim + args[0].dim() - args[1].dim())
    _tie(g, dst.view, src.view, _where(g, name))
    return Info(dst.view, dst.cdim)


def _pixel_shuffle(g: Graph, name: str, args: tuple, kwargs: dict, out: Any) -> Info:
    x = _info(g, args[0])
    if x.view is None or x.cdim != args[0].dim() - 3:
        return (_unsupported(g, name, args, kwargs, out) or [Info()])[0]
    k = int(args[1]) ** 2
    if name == "pixel_shuffle":
        view = _group_view(g, x.view, k, _where(g, name))
        return Info([(s, r // k) for s, r in view], x.cdim) if view else Info()
    return Info([(s, r * k) for s, r in x.view], x.cdim)

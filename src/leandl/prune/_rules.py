"""Per-ATen-op channel rules for :mod:`leandl.prune._trace` (see its docstring for the model).

One function per op family; :func:`apply` dispatches on the op's name. An op with a tracked
input and no rule marks its inputs' spaces unsupported (kept whole) and names itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils._pytree import tree_flatten

from leandl.prune._trace import Graph, Info, MacTerm, View, prod

__all__ = ["apply"]

_PASS = {
    "clone", "_to_copy", "alias", "detach", "lift_fresh", "lift_fresh_copy", "contiguous",
    "native_dropout", "dropout", "feature_dropout", "_softmax", "softmax", "_log_softmax",
    "_safe_softmax",
    "log_softmax", "avg_pool1d", "avg_pool2d", "avg_pool3d", "max_pool2d_with_indices",
    "max_pool1d", "max_pool2d", "max_pool3d_with_indices", "max_pool1d_with_indices",
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "_adaptive_avg_pool2d", "adaptive_max_pool2d",
    "adaptive_avg_pool3d", "_adaptive_avg_pool3d", "adaptive_max_pool1d",
    "upsample_nearest1d", "upsample_nearest2d", "upsample_bilinear2d", "upsample_bicubic2d",
    "_upsample_nearest_exact2d", "_upsample_bilinear2d_aa", "roll", "flip", "cumsum",
    "reflection_pad1d", "reflection_pad2d", "replication_pad1d", "replication_pad2d",
    "_native_batch_norm_legit_functional", "fill", "zero", "bernoulli", "masked_fill",
    "triu", "tril", "as_strided", "resize", "hardswish", "hardsigmoid", "gelu", "silu", "mish",
    "relu", "relu6", "leaky_relu", "elu", "celu", "selu", "hardtanh", "sigmoid", "tanh",
    "softplus", "log_sigmoid_forward", "threshold", "clamp", "clamp_min", "clamp_max",
    "logit", "erf", "exp", "log", "abs", "neg", "sqrt", "rsqrt", "pow", "square",
}
_NORM_STATS = {"var", "var_mean", "std", "std_mean", "mean", "sum", "amax", "amin", "max",
               "min", "norm", "linalg_vector_norm", "logsumexp", "prod", "any", "all", "argmax"}
_VIEWS = {"view", "_unsafe_view", "reshape", "_reshape_alias", "unflatten", "flatten"}


def apply(g: Graph, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
    """Compute the infos of ``func``'s outputs from its inputs' (already in ``g.infos``)."""
    name = func._overloadpacket.__name__
    base = name[:-1] if name.endswith("_") and not name.startswith("_") else name
    outs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
    ins = [a for a in tree_flatten((args, kwargs))[0] if isinstance(a, torch.Tensor)]
    infos = [_info(g, a) for a in ins]
    if base.endswith("_like") and infos and infos[0].view is not None:
        base = "clone"  # zeros_like / empty_like (dropout masks): same layout as the input
    elif not any(i.view or i.param for i in infos) or base.endswith("_like"):
        for o in outs:  # a factory op or one on untracked tensors: untracked result
            g.infos.pop(id(o), None)
        return
    rule = _RULES.get(base)
    if rule is None and torch.Tag.pointwise in getattr(func, "tags", ()):
        rule = _pointwise
    if rule is None and base in _PASS:
        rule = _pass
    if rule is None and base in _NORM_STATS:
        rule = _reduce
    if rule is None:
        rule = _unknown
    try:
        results = rule(g, name, args, kwargs, out)
    except Exception as exc:  # noqa: BLE001 - a rule's blind spot must not break the forward
        results = _unsupported(g, name, args, kwargs, out,
                               f"op '{name}' ({type(exc).__name__} in its channel rule)")
    if not isinstance(results, list):
        results = [results]
    for o, info in zip(outs, results + [Info()] * (len(outs) - len(results))):
        g.infos[id(o)] = info
        g.keep.append(o)


def _info(g: Graph, t: Any) -> Info:
    if not isinstance(t, torch.Tensor):
        return Info()
    info = g.infos.get(id(t))
    if info is not None:
        return info
    owner = g.params.get(id(t))
    if owner is not None:
        return Info(param=(owner[0], owner[1], tuple(range(t.dim()))))
    return Info()


def _where(g: Graph, name: str) -> str:
    return g.where(name)


def _unsupported(g: Graph, name: str, args: tuple, kwargs: dict, out: Any,
                 why: str | None = None) -> list[Info]:
    reason = f"{why or 'op ' + repr(name)} at {_where(g, name)}"
    cdim = None
    for a in tree_flatten((args, kwargs))[0]:
        info = _info(g, a)
        g.mark(info.view, reason)
        cdim = info.cdim if cdim is None else cdim
    o = out if isinstance(out, torch.Tensor) else next(
        (t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)), None)
    if o is None or cdim is None or cdim >= o.dim() or o.shape[cdim] < 1:
        return []
    sid = g.new(int(o.shape[cdim]), unsupported=[reason])  # carries the reason downstream
    return [Info([(sid, 1)], cdim)]


def _unknown(g: Graph, name: str, args: tuple, kwargs: dict, out: Any) -> list[Info]:
    return _unsupported(g, name, args, kwargs, out, f"op '{name}' has no channel rule")


def _pass(g: Graph, name: str, args: tuple, kwargs: dict, out: Any) -> list[Info]:
    x = _info(g, args[0])
    o = out[0] if isinstance(out, (tuple, list)) else out
    if x.view is None or not isinstance(o, torch.Tensor) or o.dim() != args[0].dim() or \
            o.shape[x.cdim] != args[0].shape[x.cdim]:
        if x.view is not None:
            return _unsupported(g, name, args, kwargs, out, f"'{name}' changes the channel dim")
        return [Info(param=x.param)] if x.param and o.shape == args[0].shape else []
    if name in ("roll", "flip", "cumsum", "_softmax", "softmax", "_log_softmax", "log_softmax",
                "_safe_softmax"):
        dims = args[1] if len(args) > 1 else kwargs.get("dims", kwargs.get("dim", ()))
        dims = dims if isinstance(dims, (list, tuple)) else [dims]
        if name in ("roll", "flip", "cumsum") and x.cdim in [int(d) % o.dim() for d in dims]:
            return _unsupported(g, name, args, kwargs, out, f"'{name}' along the channels")
    return [Info(x.view, x.cdim)]


# -- element-wise ------------------------------------------------------------------------
def _pointwise(g: Graph, name: str, args: tuple, kwargs: dict, out: Any) -> Info:
    o = out if isinstance(out, torch.Tensor) else tree_flatten(out)[0][0]
    nd = o.dim()
    tensors = [a for a in tree_flatten((args, kwargs))[0] if isinstance(a, torch.Tensor)]
    tracked = [(a, _info(g, a)) for a in tensors if _info(g, a).view is not None]
    where = _where(g, name)
    if not tracked:  # a parameter scaled by a constant (weight standardisation) stays one
        params = [_info(g, a) for a in tensors if _info(g, a).param]
        plain = [a for a in tensors if _info(g, a).param is None and a.numel() > 1]
        if len(params) == 1 and not plain and params[0].param is not None:
            src = next(a for a in tensors if _info(g, a).param)
            if src.shape == o.shape:
                return Info(param=params[0].param)
        return Info()
    base_t, base = tracked[0]
    pos = base.cdim - base_t.dim()  # channel position counted from the end (negative)
    if o.dim() < -pos or o.shape[pos] != base_t.shape[base.cdim]:
        g.mark(base.view, f"broadcast over the channels at {where}")
        return Info()
    for a, info in ((a, _info(g, a)) for a in tensors):
        if a is base_t:
            continue
        adim = a.dim() + pos
        size = a.shape[adim] if 0 <= adim < a.dim() else 1
        if info.view is not None:
            if info.cdim != adim:
                g.mark(base.view + info.view, f"element-wise op on different dims at {where}")
            else:
                _tie(g, base.view, info.view, where)
        elif info.param is not None and size > 1:
            pdim = info.param[2][adim]
            if pdim is None:
                g.mark(base.view, f"expanded parameter over the channels at {where}")
            else:
                g.add(base.view, info.param[0], [info.param[1]], pdim, "p")
        elif size > 1:
            g.mark(base.view, f"element-wise op with an untracked tensor at {where}")
    return Info(base.view, nd + pos)


def _tie(g: Graph, a: View, b: View, where: str) -> bool:
    """Unite two views of one channel dim, coarsening the finer side where units nest."""
    if g.width(a) != g.width(b):
        g.mark(a + b, f"views of different widths meet at {where}")
        return False
    a, b = list(a), list(b)
    ia = ib = 0
    while ia < len(a) and ib < len(b):
        (sa, ra), (sb, rb) = a[ia], b[ib]
        wa, wb = g.sp(sa).size * ra, g.sp(sb).size * rb
        if wa != wb:  # one side is concatenated from parts: split the other to match
            (big, rbig, lst, i), small = ((sa, ra, a, ia), wb) if wa > wb else \
                ((sb, rb, b, ib), wa)
            if small % rbig:
                g.mark(a + b, f"misaligned channel views meet at {where}")
                return False
            head, tail = g.split(big, [small // rbig, g.sp(big).size - small // rbig])
            lst[i:i + 1] = [(head, rbig), (tail, rbig)]
            continue
        if ra < rb:
            if rb % ra or not g.coarsen(sa, rb // ra, where):
                g.mark(a + b, f"incompatible unit sizes meet at {where}")
                return False
        elif rb < ra:
            if ra % rb or not g.coarsen(sb, ra // rb, where):
                g.mark(a + b, f"incompatible unit sizes meet at {where}")
                return False
        g.union(sa, sb, where)
        ia += 1
        ib += 1
    return True


# -- parameters as operands -----------------------------------------------------------------
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


# -- reshapes -----------------------------------------------------------------------------
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
        w, ids = args[0], args[1]
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


# -- compute ops --------------------------------------------------------------------------
def _conv(g: Graph, name: str, args: tuple, kwargs: dict, out: Any) -> Info:
    x, w = _info(g, args[0]), _info(g, args[1])
    bias = _info(g, args[2]) if len(args) > 2 else Info()
    transposed = bool(args[6]) if len(args) > 6 else False
    groups = int(args[8]) if len(args) > 8 else 1
    where = _where(g, name)
    macs = float(out.numel()) * args[1].shape[1] * prod(args[1].shape[2:])
    if transposed:
        macs = float(args[0].numel()) * prod(args[1].shape[1:])
    if w.param is None:
        g.mark(x.view, f"convolution with a computed weight at {where}")
        return Info()
    owner, pname, dims = w.param
    wout, win = (dims[1], dims[0]) if transposed else (dims[0], dims[1])
    bparams = [bias.param[1]] if bias.param and bias.param[0] == owner else []
    cin, cout = int(args[0].shape[1]), int(out.shape[1])
    if groups == 1:
        if x.view is not None and x.cdim == 1:
            g.add(x.view, owner, [pname], win, "c")
        elif x.view is not None:
            g.mark(x.view, f"convolution over a non-channel dim at {where}")
        view = g.produce(cout, owner, [pname], wout)
        if bparams:
            g.add(view, owner, bparams, 0, "p")
        g.macs.append(MacTerm(macs, [v for v in (x.view if x.cdim == 1 else None, view) if v]))
        return Info(view, 1)
    cin_g, cout_g = cin // groups, cout // groups
    if x.view is None or x.cdim != 1:
        g.mark(x.view, f"grouped convolution over a non-channel dim at {where}")
        view = g.produce(cout, owner, [pname], wout)
        g.mark(view, f"grouped convolution {owner} on an untracked input", blocked=True)
        g.macs.append(MacTerm(macs, []))
        return Info(view, 1)
    xv = _group_view(g, x.view, cin_g, where)
    if xv is None:
        view = g.produce(cout, owner, [pname], wout)
        g.mark(view, f"grouped convolution {owner} with misaligned groups at {where}")
        g.macs.append(MacTerm(macs, []))
        return Info(view, 1)
    # each unit spans m groups: m*cin_g input channels, m*cout_g output channels
    view = [(sid, (r // cin_g) * cout_g) for sid, r in xv]
    g.add(view, owner, [pname], wout, "p", compute=True)
    if bparams:
        g.add(view, owner, bparams, 0, "p")
    g.macs.append(MacTerm(macs, [view]))
    return Info(view, 1)


def _group_view(g: Graph, view: View, per: int, where: str) -> View | None:
    """Coarsen ``view`` so every unit spans whole groups of ``per`` channels."""
    out: View = []
    off = 0
    for sid, r in list(view):
        w = g.sp(sid).size * r
        if r % per == 0:
            out.append((g.find(sid), r))
        elif per % r == 0 and off % per == 0 and w % per == 0:
            if not g.coarsen(sid, per // r, where):
                return None
            out.append((g.find(sid), per))
        else:
            g.mark(view, f"channel units cross conv groups at {where}")
            return None
        off += w
    return out


def _mm(g: Graph, name: str, args: tuple, kwargs: dict, out: Any) -> Info:
    """``mm``, ``bmm``, ``addmm``, ``baddbmm``, ``matmul``, ``linear``: (..., n, k) @ (..., k, m)."""
    where = _where(g, name)
    bias = None
    if name in ("addmm", "baddbmm", "addbmm"):
        bias, a, b = args[0], args[1], args[2]
    elif name == "linear":
        a, b = args[0], args[1]
        bias = args[2] if len(args) > 2 else None
        return _linear(g, a, b, bias, out, where)
    else:
        a, b = args[0], args[1]
    ia, ib = _info(g, a), _info(g, b)
    if a.dim() == 1 or b.dim() == 1:
        g.mark((ia.view or []) + (ib.view or []), f"vector matmul at {where}")
        return Info()
    na, nb, no = a.dim(), b.dim(), out.dim()
    macs = float(out.numel()) * a.shape[-1]
    terms: list[View] = []
    result = Info()
    # contraction dim: a[-1] with b[-2]
    ka = ia.view if ia.view is not None and ia.cdim == na - 1 else None
    kb = ib.view if ib.view is not None and ib.cdim == nb - 2 else None
    if ka is not None and ib.param is not None and ib.param[2][nb - 2] is not None:
        g.add(ka, ib.param[0], [ib.param[1]], ib.param[2][nb - 2], "c")
        terms.append(ka)
    elif kb is not None and ia.param is not None and ia.param[2][na - 1] is not None:
        g.add(kb, ia.param[0], [ia.param[1]], ia.param[2][na - 1], "c")
        terms.append(kb)
    elif ka is not None and kb is not None:
        _tie(g, ka, kb, where)
        terms.append(ka)
    elif ka is not None or kb is not None:
        g.mark(ka or kb, f"channels contracted with an untracked matrix at {where}")
    # output dim m from b[-1]
    if ib.param is not None and ib.param[2][nb - 1] is not None:
        view = g.produce(int(b.shape[-1]), ib.param[0], [ib.param[1]], ib.param[2][nb - 1])
        bi = _info(g, bias) if bias is not None else Info()
        if bi.param is not None and bias.dim() >= 1 and bias.shape[-1] == b.shape[-1]:
            g.add(view, bi.param[0], [bi.param[1]], bi.param[2][-1], "p")
        elif bi.view is not None:
            _tie(g, view, bi.view, where)
        result = Info(view, no - 1)
        terms.append(view)
    elif ib.view is not None and ib.cdim == nb - 1:
        result = Info(ib.view, no - 1)
        terms.append(ib.view)
    # output dim n from a[-2]
    if ia.param is not None and ia.param[2][na - 2] is not None and result.view is None:
        view = g.produce(int(a.shape[-2]), ia.param[0], [ia.param[1]], ia.param[2][na - 2])
        result = Info(view, no - 2)
        terms.append(view)
    elif ia.view is not None and ia.cdim == na - 2:
        if result.view is not None:  # rows are channels (token mixing): keep those tracked
            g.mark(result.view, f"a second channel dim in a matmul at {where}", blocked=True)
            terms.remove(result.view)
        result = Info(ia.view, no - 2)
        terms.append(ia.view)
    # batch dims (broadcast from the left of the last two)
    for info, t in ((ia, a), (ib, b)):
        if info.view is not None and info.cdim < t.dim() - 2:
            odim = no - (t.dim() - info.cdim)
            if result.view is None:
                result = Info(info.view, odim)
                terms.append(info.view)
            elif result.cdim == odim:
                _tie(g, result.view, info.view, where)
            else:
                g.mark(info.view, f"two channel dims in one matmul output at {where}")
    g.macs.append(MacTerm(macs, terms))
    return result


def _linear(g: Graph, x: Any, w: Any, bias: Any, out: Any, where: str) -> Info:
    ix, iw = _info(g, x), _info(g, w)
    macs = float(out.numel()) * w.shape[-1]
    terms: list[View] = []
    if iw.param is None:
        g.mark(ix.view, f"linear with a computed weight at {where}")
        return Info()
    owner, pname, dims = iw.param
    if ix.view is not None and ix.cdim == x.dim() - 1:
        g.add(ix.view, owner, [pname], dims[1], "c")
        terms.append(ix.view)
    elif ix.view is not None:  # token mixing (MLP-Mixer): the channels stay tracked and the
        view = g.produce(int(w.shape[0]), owner, [pname], dims[0])  # new dim is kept whole
        g.mark(view, f"linear over a non-channel dim at {where}", blocked=True)
        g.macs.append(MacTerm(macs, [ix.view]))
        return Info(ix.view, ix.cdim)
    view = g.produce(int(w.shape[0]), owner, [pname], dims[0])
    bi = _info(g, bias) if bias is not None else Info()
    if bi.param is not None:
        g.add(view, bi.param[0], [bi.param[1]], 0, "p")
    terms.append(view)
    g.macs.append(MacTerm(macs, terms))
    return Info(view, out.dim() - 1)


def _sdpa(g: Graph, name: str, args: tuple, kwargs: dict, out: Any) -> list[Info]:
    """Scaled dot-product attention: q, k, v (B, H, L, D); heads tie, D is contracted."""
    q, k, v = args[0], args[1], args[2]
    iq, ik, iv = _info(g, q), _info(g, k), _info(g, v)
    where = _where(g, name)
    o = out[0] if isinstance(out, (tuple, list)) else out
    nd = q.dim()
    heads = [i for i in (iq, ik, iv) if i.view is not None and i.cdim == nd - 3]
    other = [i for i in (iq, ik, iv) if i.view is not None and i.cdim != nd - 3]
    for i in other:
        g.mark(i.view, f"attention over a non-head dim at {where}")
    macs = float(q.shape[-2]) * k.shape[-2] * (q.shape[-1] + v.shape[-1]) * prod(q.shape[:-2])
    if not heads:
        g.macs.append(MacTerm(macs, []))
        return [Info()]
    width = max(g.width(i.view) for i in heads)
    for i in heads[1:]:
        view = i.view
        if g.width(view) != width and width % g.width(view) == 0:  # grouped-query attention:
            rep = width // g.width(view)  # one key/value head serves `rep` query heads
            view = [(s, r * rep) for s, r in view]
        base = heads[0].view
        if g.width(base) != width and width % g.width(base) == 0:
            base = [(s, r * (width // g.width(base))) for s, r in base]
        _tie(g, base, view, where)
    view = heads[0].view if iq.view is None or iq.cdim != nd - 3 else iq.view
    g.macs.append(MacTerm(macs, [iq.view if iq.view is not None and iq.cdim == nd - 3
                                 else view]))
    return [Info(view, o.dim() - 3)]


def _batch_norm(g: Graph, name: str, args: tuple, kwargs: dict, out: Any) -> list[Info]:
    x = _info(g, args[0])
    if x.param is not None and x.param[2][1] is not None:  # weight standardisation (NFNet):
        key = (x.param[0], x.param[1], x.param[2][1])  # the norm's affine slices follow it
        for t in args[1:3]:
            p = _info(g, t).param
            if p is not None and p[2][0] is not None:
                g.companions.setdefault(key, []).append((p[0], p[1], p[2][0]))
        return [Info(param=x.param)]
    if x.view is None:
        return [Info()]
    if x.cdim != 1:
        return _unsupported(g, name, args, kwargs, out, "batch norm over a non-channel dim")
    for t in args[1:5]:
        p = _info(g, t).param
        if p is not None:
            g.add(x.view, p[0], [p[1]], p[2][0], "p")
    return [Info(x.view, 1)]


def _layer_norm(g: Graph, name: str, args: tuple, kwargs: dict, out: Any) -> list[Info]:
    x = _info(g, args[0])
    shape = list(args[1])
    nd = args[0].dim()
    if x.view is None:
        return [Info()]
    if x.cdim < nd - len(shape):  # the channels are not normalised over: weights untouched
        return [Info(x.view, x.cdim)]
    if len(shape) != 1:
        return _unsupported(g, name, args, kwargs, out, "layer norm over several dims with "
                                                        "the channels")
    for t in args[2:4]:
        p = _info(g, t).param
        if p is not None:
            g.add(x.view, p[0], [p[1]], p[2][0], "p")
    return [Info(x.view, x.cdim)]


def _rms_norm(g: Graph, name: str, args: tuple, kwargs: dict, out: Any) -> list[Info]:
    return _layer_norm(g, name, (args[0], args[1], args[2] if len(args) > 2 else None, None),
                       kwargs, out)


def _group_norm(g: Graph, name: str, args: tuple, kwargs: dict, out: Any) -> list[Info]:
    x = _info(g, args[0])
    if x.view is None:
        return [Info()]
    if x.cdim != 1:
        return _unsupported(g, name, args, kwargs, out, "group norm over a non-channel dim")
    channels, groups = int(args[4]), int(args[6])
    view = x.view
    if 1 < groups < channels:
        view = _group_view(g, x.view, channels // groups, _where(g, name))
        if view is None:
            return [Info()]
    for t in args[1:3]:
        p = _info(g, t).param
        if p is not None:
            g.add(view, p[0], [p[1]], p[2][0], "p")
    return [Info(view, 1)]


def _reduce(g: Graph, name: str, args: tuple, kwargs: dict, out: Any) -> list[Info]:
    x = _info(g, args[0])
    outs = out if isinstance(out, (tuple, list)) else [out]
    if x.view is None:
        return [Info() for _ in outs]
    nd = args[0].dim()
    dims = args[1] if len(args) > 1 and not isinstance(args[1], bool) else kwargs.get("dim")
    if name in ("norm", "linalg_vector_norm"):
        dims = args[2] if len(args) > 2 else kwargs.get("dim")
    if dims is None or (isinstance(dims, (list, tuple)) and len(dims) == 0):
        return [Info() for _ in outs]  # a full reduction: a scalar
    dims = [int(d) % nd for d in (dims if isinstance(dims, (list, tuple)) else [dims])]
    o = outs[0]
    if x.cdim in dims:  # a statistic over the channels (RMS norm, channel mean): consumed
        return [Info() for _ in outs]
    keep = o.dim() == nd
    cdim = x.cdim if keep else x.cdim - sum(d < x.cdim for d in dims)
    return [Info(x.view, cdim) for _ in outs]


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


_RULES: dict[str, Callable[..., Any]] = {
    "convolution": _conv, "_convolution": _conv,
    "mm": _mm, "bmm": _mm, "addmm": _mm, "baddbmm": _mm, "matmul": _mm, "linear": _mm,
    "_native_batch_norm_legit_no_training": _batch_norm, "_native_batch_norm_legit": _batch_norm,
    "native_batch_norm": _batch_norm, "batch_norm": _batch_norm,
    "_batch_norm_with_update": _batch_norm, "_batch_norm_no_update": _batch_norm,
    "cudnn_batch_norm": _batch_norm, "native_layer_norm": _layer_norm, "layer_norm": _layer_norm,
    "rms_norm": _rms_norm, "_fused_rms_norm": _rms_norm, "native_group_norm": _group_norm,
    "t": _transpose_like, "transpose": _transpose_like, "permute": _transpose_like,
    "swapaxes": _transpose_like, "unsqueeze": _unsqueeze, "squeeze": _squeeze,
    "expand": _expand, "slice": _slice, "select": _select, "narrow": _slice,
    "split": _split, "split_with_sizes": _split, "unbind": _split, "unsafe_split": _split,
    "cat": _cat, "stack": _stack, "index": _index, "index_select": _index, "gather": _index,
    "embedding": _index, "constant_pad_nd": _pad, "copy": _copy,
    "_scaled_dot_product_flash_attention_for_cpu": _sdpa,
    "_scaled_dot_product_attention_math": _sdpa, "_scaled_dot_product_flash_attention": _sdpa,
    "_scaled_dot_product_efficient_attention": _sdpa, "scaled_dot_product_attention": _sdpa,
    "_scaled_dot_product_cudnn_attention": _sdpa,
    "pixel_shuffle": _pixel_shuffle, "pixel_unshuffle": _pixel_shuffle,
    **{v: _reshape for v in _VIEWS},
}

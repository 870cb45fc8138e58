"""Channel rules of compute ops: convolution (grouped too), matrix products, scaled dot-product
attention (grouped-query too), batch/layer/RMS/group norm and reductions."""

from __future__ import annotations

from typing import Any

from leandl.prune._trace import Graph, Info, MacTerm, View, prod
from leandl.prune._rules_base import _group_view, _info, _tie, _unsupported, _where


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

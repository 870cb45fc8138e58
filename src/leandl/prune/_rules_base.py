"""Helpers shared by the channel rules of :mod:`leandl.prune._rules`: an op's input infos,
where it ran, tying two views, and marking spaces kept whole."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils._pytree import tree_flatten

from leandl.prune._trace import Graph, Info, View


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

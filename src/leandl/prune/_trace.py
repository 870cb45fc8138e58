"""Channel-dependency tracing of a concrete forward pass at the ATen level.

The model runs once on the example inputs (eval mode, no grad) under a
``TorchDispatchMode`` that sees every ATen op actually executed, with real tensors: Python
control flow, ``ModelOutput`` dicts, data-dependent shapes and library code (timm, torchvision,
Hugging Face) no longer matter, because nothing is traced symbolically. Parameters are
recognised by identity, so a weight used through ``t()``, ``view`` or directly in ``mul``
(layer scale, position embeddings) keeps its owner's name. A second pass in train mode (batch
2, norm statistics restored) adds branches that only run in training (auxiliary heads).

Every tensor carries a *view* of one dimension (its channel dim ``cdim``): an ordered list of
segments ``(space, r)``; ``space`` is a set of coupled units (union-find) and ``r`` the number of
consecutive indices each unit occupies in that dim (1 after a conv, ``H*W`` after a flatten,
``head_dim`` after heads are merged back). Unit ``k`` of a segment at offset ``o`` owns indices
``o + k*r + arange(r)``.

Operations on spaces:

- ``union``: two tensors meet element-wise (residual add), so their units are the same.
- ``coarsen(space, k)``: the space's units are regrouped ``k`` at a time (a reshape that splits
  ``H*D`` channels into ``H`` heads of ``D``; a grouped conv's groups; grouped-query attention,
  where one key/value group serves ``k`` query heads).
- ``split(space, cuts)``: a ``split``/``chunk`` along the channels divides a space into
  independent ones (GPT-2's fused q/k/v projection, CSP blocks, GLU).

Spaces that meet an op which cannot be pruned through are *unsupported*: their channels are
kept whole and the reason (op and layer) is reported; ``strict=True`` makes it an error instead.
The per-op rules live in :mod:`leandl.prune._rules` (dispatch), ``_rules_layout`` and
``_rules_compute``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from leandl.errors import ModelError
from leandl.prune._inputs import batch2, call, output_tensors

__all__ = ["Space", "Trace", "trace_spaces", "Slice", "View", "prod"]

Slice = tuple[str, str, int, int, int]  # (module name, param name, dim, offset, r)
View = list[tuple[int, int]]  # segments (space id, r) along the channel dim


@dataclass
class Space:
    """A set of coupled units: every slice that produces or consumes them."""

    size: int
    producers: list[Slice] = field(default_factory=list)
    consumers: list[Slice] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)  # why it may not be pruned (quietly)
    unsupported: list[str] = field(default_factory=list)  # ops that make pruning unsafe
    compute: set[tuple[str, str]] = field(default_factory=set)  # conv/matmul weights producing
    coarse: int = 1  # fine units (as first created) per unit
    order: int = 0


@dataclass
class Info:
    """What is known of one tensor: its channel view, or the parameter it is (a view of)."""

    view: View | None = None
    cdim: int | None = None
    param: tuple[str, str, tuple[int | None, ...]] | None = None  # (owner, name, dims map)


@dataclass
class MacTerm:
    """A compute op's MACs and the views whose kept fractions scale them."""

    macs: float
    views: list[View]


@dataclass
class Trace:
    """Result of :func:`trace_spaces`."""

    spaces: list[Space]  # root spaces, in creation order
    roots: dict[int, int]  # root space id -> index into ``spaces``
    order: list[str]  # modules in first-call order
    first_producer: str | None  # module producing the first compute output (stem / embedding)
    macs: list[MacTerm]
    graph: Graph


class Graph:
    """Union-find over spaces, the tensor-info table and the operations on spaces."""

    def __init__(self, model: nn.Module) -> None:
        self.spaces: list[Space] = []
        self.parent: list[int] = []
        self.infos: dict[int, Info] = {}
        self.keep: list[torch.Tensor] = []  # keeps traced tensors alive so ids stay unique
        self.params: dict[int, tuple[str, str]] = {}
        self.pshape: dict[tuple[str, str], tuple[int, ...]] = {}
        for name, t in list(model.named_parameters(remove_duplicate=False)) + list(
                model.named_buffers(remove_duplicate=False)):
            owner, _, pname = name.rpartition(".")
            self.params.setdefault(id(t), (owner, pname))
            self.pshape.setdefault((owner, pname), tuple(t.shape))
        # slices that follow another slice (a weight-standardisation gain follows the weight)
        self.companions: dict[tuple[str, str, int], list[tuple[str, str, int]]] = {}
        self.produced: dict[tuple[str, str, int], int] = {}  # producer slice -> space (2nd pass)
        self.macs: list[MacTerm] = []
        self.stack: list[str] = []
        self.order: list[str] = []
        self.first_producer: str | None = None

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

    def sp(self, i: int) -> Space:
        return self.spaces[self.find(i)]

    def union(self, a: int, b: int, where: str) -> None:
        a, b = self.find(a), self.find(b)
        if a == b:
            return
        if self.spaces[a].size != self.spaces[b].size:
            self.mark([(a, 1), (b, 1)], f"element-wise op between different widths at {where}")
            return
        if self.spaces[b].order < self.spaces[a].order:
            a, b = b, a
        sa, sb = self.spaces[a], self.spaces[b]
        for attr in ("producers", "consumers"):
            have = set(getattr(sa, attr))
            getattr(sa, attr).extend(i for i in getattr(sb, attr) if i not in have)
        for attr in ("blocked", "unsupported"):
            getattr(sa, attr).extend(getattr(sb, attr))
        sa.compute |= sb.compute
        self.parent[b] = a

    def mark(self, view: View | None, reason: str, blocked: bool = False) -> None:
        for sid, _ in view or []:
            sp = self.sp(sid)
            (sp.blocked if blocked else sp.unsupported).append(reason)

    def _rewrite(self, sid: int, fn: Any) -> None:
        """Apply ``fn(r) -> list[(space, r)]`` to every live view segment of root ``sid``."""
        def redo(view: View) -> View:
            out: View = []
            for s, r in view:
                out.extend(fn(r) if self.find(s) == sid else [(s, r)])
            return out

        for info in self.infos.values():
            if info.view and any(self.find(s) == sid for s, _ in info.view):
                info.view = redo(info.view)
        for term in self.macs:
            term.views = [redo(v) if any(self.find(s) == sid for s, _ in v) else v
                          for v in term.views]

    def coarsen(self, sid: int, k: int, where: str) -> bool:
        """Regroup the units of ``sid``'s root ``k`` at a time; False (and marked) if it can't."""
        sid = self.find(sid)
        sp = self.spaces[sid]
        if k == 1:
            return True
        if sp.size % k:
            self.mark([(sid, 1)], f"{k} units per group do not divide {sp.size} at {where}")
            return False
        sp.size //= k
        sp.coarse *= k
        sp.producers = [(m, p, d, o, r * k) for m, p, d, o, r in sp.producers]
        sp.consumers = [(m, p, d, o, r * k) for m, p, d, o, r in sp.consumers]
        self._rewrite(sid, lambda r: [(sid, r * k)])
        return True

    def split(self, sid: int, sizes: list[int]) -> list[int]:
        """Divide root ``sid`` (units) into consecutive independent spaces of ``sizes``."""
        sid = self.find(sid)
        sp = self.spaces[sid]
        if len(sizes) == 1:
            return [sid]
        parts, start = [], 0
        for n in sizes:
            new = self.new(n, blocked=list(sp.blocked), unsupported=list(sp.unsupported),
                           compute=set(sp.compute), coarse=sp.coarse)
            for attr in ("producers", "consumers"):
                getattr(self.spaces[new], attr).extend(
                    (m, p, d, o + start * r, r) for m, p, d, o, r in getattr(sp, attr))
            parts.append(new)
            start += n
        sp.producers, sp.consumers = [], []
        sp.blocked.append("split into parts")
        self._rewrite(sid, lambda r: [(p, r) for p in parts])
        for key, s in list(self.produced.items()):
            if self.find(s) == sid:
                del self.produced[key]
        return parts

    def add(self, view: View, module: str, params: list[str], dim: int, role: str,
            compute: bool = False) -> None:
        """Register ``module.param`` dim ``dim`` as producer/consumer of every segment."""
        off = 0
        for sid, r in view:
            sp = self.sp(sid)
            for p in params:
                lst = sp.producers if role == "p" else sp.consumers
                for m2, p2, d2 in [(module, p, dim), *self.companions.get((module, p, dim), [])]:
                    item = (m2, p2, d2, off, r)
                    if item not in lst:
                        lst.append(item)
                if compute and role == "p":
                    sp.compute.add((module, p))
            off += sp.size * r

    def width(self, view: View) -> int:
        return sum(self.sp(s).size * r for s, r in view)

    def produce(self, size: int, module: str, params: list[str], dim: int,
                compute: bool = True) -> View:
        """A new space produced by ``module.params`` dim ``dim`` (reused on a later pass)."""
        key = (module, params[0], dim)
        sid = self.produced.get(key)
        if sid is None or self.sp(sid).size * self.sp(sid).coarse != size:
            sid = self.new(size)
            self.produced[key] = sid
            view: View = [(sid, 1)]
        else:
            view = [(self.find(sid), self.sp(sid).coarse)]
        self.add(view, module, params, dim, "p", compute=compute)
        if self.first_producer is None and compute:
            self.first_producer = module
        return view

    def where(self, op: str) -> str:
        return f"{self.stack[-1] if self.stack else 'model'} ({op})"


def prod(xs: Any) -> int:
    """Integer product (1 for an empty sequence)."""
    return int(math.prod(int(x) for x in xs))


class _Recorder(TorchDispatchMode):
    def __init__(self, graph: Graph) -> None:
        super().__init__()
        self.g = graph

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        from leandl.prune._rules import apply

        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        apply(self.g, func, args, kwargs, out)
        return out


@contextlib.contextmanager
def _module_stack(model: nn.Module, g: Graph) -> Iterator[None]:
    names = {id(m): n for n, m in model.named_modules()}

    def pre(mod: nn.Module, _args: Any) -> None:
        name = names.get(id(mod))
        if name is not None:
            g.stack.append(name)
            if name not in g.order:
                g.order.append(name)

    def post(mod: nn.Module, _args: Any, _out: Any) -> None:
        if id(mod) in names and g.stack:
            g.stack.pop()

    handles = [m.register_forward_pre_hook(pre) for m in model.modules()]
    handles += [m.register_forward_hook(post) for m in model.modules()]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _run(model: nn.Module, g: Graph, inputs: Any) -> None:
    g.infos.clear()  # model inputs stay untracked: their widths are never pruned
    g.keep.clear()
    with _module_stack(model, g), _Recorder(g):
        out = call(model, inputs)
    for t in output_tensors(out):
        info = g.infos.get(id(t))
        if info is not None:
            g.mark(info.view, "model output", blocked=True)


def trace_spaces(model: nn.Module, example_inputs: Any, train_pass: bool = True) -> Trace:
    """Run ``model`` on ``example_inputs`` and return its coupled unit spaces.

    Args:
        model: any module; its state is unchanged afterwards (norm statistics restored).
        example_inputs: a tensor, a tuple of positional inputs or a dict of keyword inputs.
        train_pass: also run once in train mode (branches that only run in training).

    Raises:
        ModelError: the model's forward pass fails on these inputs.
    """
    g = Graph(model)
    flags = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        with torch.no_grad():
            try:
                _run(model, g, example_inputs)
            except ModelError:
                raise
            except Exception as exc:  # the user's forward itself failed
                raise ModelError(f"the model's forward pass fails on the example inputs "
                                 f"({type(exc).__name__}: {exc})", where=type(model).__name__,
                                 fix="pass inputs the model accepts (a tensor, a tuple of "
                                     "positional inputs or a dict of keyword inputs)") from exc
            eval_macs = list(g.macs)
            if train_pass:
                state = [(b, b.clone()) for b in model.buffers()]
                rng = torch.get_rng_state()
                model.train()
                try:  # batch 1 first: batch 2 merges the batch into heads in some kernels
                    _run(model, g, example_inputs)
                except Exception:  # noqa: BLE001 - e.g. a norm that needs two samples
                    try:
                        _run(model, g, batch2(example_inputs))
                    except Exception:  # noqa: BLE001 - a model may not run in train mode
                        pass
                finally:
                    for b, saved in state:
                        b.copy_(saved)
                    torch.set_rng_state(rng)
            g.macs = eval_macs
    finally:
        for m, f in flags:
            m.training = f
    _tie_shared(g)
    roots = sorted({g.find(i) for i in range(len(g.spaces))})
    g.infos.clear()
    g.keep.clear()
    for term in g.macs:
        term.views = [[(g.find(s), r) for s, r in v] for v in term.views]
    return Trace(spaces=[g.spaces[i] for i in roots], roots={r: i for i, r in enumerate(roots)},
                 order=g.order, first_producer=g.first_producer, macs=g.macs, graph=g)


def _tie_shared(g: Graph) -> None:
    """Two spaces slicing the same indices of a tensor (shared weights, a second pass): unite
    them when the slices are identical, otherwise keep both whole."""
    seen: dict[tuple[str, str, int], list[tuple[int, int, int]]] = {}
    for i in range(len(g.spaces)):
        if g.find(i) != i:
            continue
        for role in ("producers", "consumers"):
            for m, p, d, o, r in list(getattr(g.spaces[i], role)):
                seen.setdefault((m, p, d), []).append((i, o, r))
    for (m, p, d), items in seen.items():
        for a in range(len(items)):
            for b in range(a + 1, len(items)):
                (i, o, r), (j, o2, r2) = items[a], items[b]
                if g.find(i) == g.find(j):
                    continue
                end, end2 = o + g.sp(i).size * r, o2 + g.sp(j).size * r2
                if end <= o2 or end2 <= o:
                    continue  # disjoint index ranges (a concatenation)
                if (o, r, end) == (o2, r2, end2):
                    g.union(i, j, f"{m}.{p} (shared tensor)")
                else:
                    g.mark([(i, 1), (j, 1)], f"tensor {m}.{p} is sliced by two groups")

"""Dependency groups for structured pruning, soft masks and physical surgery.

A :class:`ChannelGroup` is a set of units (conv channels, attention heads, MLP hidden units)
that must be removed together: every tensor slice that *produces* a unit (conv/linear weight
dim 0 and bias, BatchNorm/LayerNorm affine and statistics, every producer tied by a residual
add, a depthwise conv on the way) and every slice that *consumes* it (next conv weight dim 1,
a linear after ``flatten`` with each channel expanded over H*W, ``proj`` columns of a head).
Groups come from tracing one forward pass with ``torch.fx`` (rules in
:mod:`leandl.prune._trace`); ops that would make pruning wrong (channel padding, ``chunk``,
slicing channels) raise :class:`~leandl.errors.ModelError` naming the layer and op.

Index maps: producer ``i`` of a group owns, for unit ``k``, indices
``producer_maps[i][0] + k * r + arange(r)`` with ``r = producer_maps[i][1]`` along its dim
(``r = H*W`` for a linear after flatten, ``r = head_dim`` for heads; several entries may name
the same tensor, e.g. the q, k and v rows of one head).

Example:
    >>> m = leandl.create_model("resnet20")
    >>> x = torch.randn(1, 3, 32, 32)
    >>> g = channel_groups(m, x)[0]
    >>> model = remove_units_(m, x, {g.name: list(range(0, g.size, 2))})
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from leandl.errors import ModelError
from leandl.prune._inputs import first_batch, input_spec, inputs_from_spec
from leandl.prune._trace import Space, Trace, trace_spaces
from leandl.registry import EDITS
from leandl.spec import add_edit

__all__ = ["ChannelGroup", "channel_groups", "unit_weights", "zero_units_", "remove_units_",
           "unit_indices"]

_MATMUL = (nn.modules.conv._ConvNd, nn.Linear)


@dataclass
class ChannelGroup:
    """Coupled prunable units (see the module docstring for the index maps).

    Attributes:
        name: dotted name of the group's root module (first conv/linear producing it), or the
            attention module for heads, or the MLP module (``blocks.3.mlp``) for hidden units.
        size: current number of units.
        kind: ``"channel"``, ``"head"`` or ``"mlp_unit"``.
        producers: (module name, param/buffer name, dim) slices that produce each unit.
        consumers: (module name, param name, dim) slices that consume each unit.
        producer_maps: (offset, r) per producer; empty means (0, 1) for all.
        consumer_maps: (offset, r) per consumer; empty means (0, 1) for all.
    """

    name: str
    size: int
    kind: str
    producers: list[tuple[str, str, int]]
    consumers: list[tuple[str, str, int]]
    producer_maps: list[tuple[int, int]] = field(default_factory=list)
    consumer_maps: list[tuple[int, int]] = field(default_factory=list)
    compute: list[tuple[str, str]] = field(default_factory=list)  # conv/linear/matmul weights
    space: int = -1  # root space id in ``trace``
    unit: int = 1  # channels per unit (head_dim for heads, channels per group for groups)
    trace: Trace | None = field(default=None, repr=False, compare=False)

    def slices(self, role: str = "producers") -> list[tuple[str, str, int, int, int]]:
        """(module, param, dim, offset, r) for every producer (or consumer)."""
        items = self.producers if role == "producers" else self.consumers
        maps = self.producer_maps if role == "producers" else self.consumer_maps
        maps = maps or [(0, 1)] * len(items)
        return [(m, p, d, o, r) for (m, p, d), (o, r) in zip(items, maps)]


def unit_indices(units: torch.Tensor, offset: int, r: int) -> torch.Tensor:
    """Tensor indices owned by ``units`` in a slice: ``offset + k*r + arange(r)`` per unit k."""
    units = torch.as_tensor(units, dtype=torch.long).reshape(-1)
    return (offset + units[:, None] * r + torch.arange(r)[None, :]).reshape(-1)


def _tensor(model: nn.Module, module: str, param: str) -> torch.Tensor:
    return getattr(model.get_submodule(module) if module else model, param)


def channel_groups(model: nn.Module, example_inputs: Any, *,
                   ignored_layers: Sequence[str] = (), heads: bool = True,
                   keep_io: bool = True, strict: bool = False, hidden: bool = False,
                   kept_whole: dict[str, str] | None = None) -> list[ChannelGroup]:
    """Every prunable group of ``model`` (in forward order).

    Excluded: groups with a producer in ``ignored_layers`` (a module name or a prefix), and,
    unless ``keep_io=False``, the group produced by the first conv/linear/embedding (for a
    transformer: the residual stream); groups reaching the model's output are always excluded,
    so input and output shapes stay.

    Args:
        model: any module whose forward runs on ``example_inputs``.
        example_inputs: a tensor, a tuple of positional inputs, or a dict of keyword inputs
            (a batch of 1 is enough).
        ignored_layers: module names whose output units must not be pruned.
        heads: include attention-head groups.
        keep_io: exclude the first layer's outputs (the model output is always excluded).
        hidden: also prune widths that feed attention projections (a transformer's hidden
            size, coupled through every residual, norm and embedding); off by default, since
            attention code often derives its head size from that width.
        strict: raise on a group that passes through an op leandl cannot prune through;
            by default such a group is kept whole and listed in ``kept_whole``.
        kept_whole: filled with group name -> reason for every group kept whole that way.

    Raises:
        ModelError: (strict) an op that cannot be pruned safely touches a prunable group, or
            the forward pass fails on the example inputs.
    """
    trace = trace_spaces(model, example_inputs)
    ignored = [i for i in list(ignored_layers) if i]
    first = trace.first_producer if keep_io else None
    out: list[ChannelGroup] = []
    names: set[str] = set()
    cands = [(sp, _to_group(model, sp, root, trace))
             for root, sp in zip(sorted(trace.roots), trace.spaces)]
    if not hidden:  # widths feeding attention projections: a transformer's hidden size
        attn = {w for _, gr in cands if gr is not None and gr.kind == "head" for w in gr.compute}
        cands = [(sp, None if gr is not None and any((m, p) in attn for m, p, *_ in sp.consumers)
                  else gr) for sp, gr in cands]
    parents: dict[str, int] = defaultdict(int)
    for _, group in cands:
        if group is not None and group.kind == "mlp_unit":
            parents[group.name.rpartition(".")[0]] += 1
    for sp, group in cands:
        if group is None:
            continue
        parent = group.name.rpartition(".")[0]
        if group.kind == "mlp_unit" and parent and parents[parent] == 1 and all(
                c[0].startswith(parent + ".") for c in group.consumers):
            group.name = parent  # MLP units are named after their block ("blocks.3.mlp")
        owners = {m for m, p, *_ in sp.producers if (m, p) in sp.compute}
        if first is not None and first in owners and group.kind != "head":
            continue
        if any(m == i or m.startswith(i + ".") for m in owners for i in ignored):
            continue
        if group.kind == "head" and not heads:
            continue
        base, n = group.name, 2
        while group.name in names:
            group.name, n = f"{base}#{n}", n + 1
        names.add(group.name)
        if sp.unsupported:
            if strict:
                _refuse(group.name, sp.unsupported[0])
            if kept_whole is not None:
                kept_whole[group.name] = sp.unsupported[0]
            continue
        out.append(group)
    return out


def _refuse(name: str, reason: str) -> None:
    raise ModelError(
        f"channels of group '{name}' pass through an op leandl cannot prune safely: {reason}",
        where=reason.split(" at ")[-1],
        fix=f"drop strict=True to keep '{name}' whole, or add it to ignored_layers",
    )


def _to_group(model: nn.Module, sp: Space, root: int, trace: Trace) -> ChannelGroup | None:
    roots = [m for m, p, *_ in sp.producers if (m, p) in sp.compute]
    if sp.blocked or sp.size < 2 or not roots:
        return None
    weights = [getattr(model.get_submodule(m) if m else model, p) for m, p, *_ in sp.producers
               if (m, p) in sp.compute]
    two_d = all(w.dim() == 2 for w in weights)
    if two_d and sp.coarse > 1:
        kind, name = "head", roots[0].rpartition(".")[0] or roots[0]
    else:
        kind, name = ("mlp_unit" if two_d else "channel"), roots[0]
    return ChannelGroup(
        name=name, size=sp.size, kind=kind,
        producers=[(m, p, d) for m, p, d, _, _ in sp.producers],
        consumers=[(m, p, d) for m, p, d, _, _ in sp.consumers],
        producer_maps=[(o, r) for *_, o, r in sp.producers],
        consumer_maps=[(o, r) for *_, o, r in sp.consumers],
        compute=sorted(sp.compute), space=root, unit=sp.coarse, trace=trace,
    )


def unit_weights(model: nn.Module, group: ChannelGroup) -> torch.Tensor:
    """(size, D): each unit's producing conv/linear weights, flattened and concatenated.

    Only ``weight`` tensors of conv/linear producers count (the filters of Li et al.; for a
    head, its q, k and v rows); norms, biases and statistics are left out.
    """
    rows = []
    compute = set(group.compute) or {(m, "weight") for m, *_ in group.producers
                                     if isinstance(model.get_submodule(m), _MATMUL)}
    for m, p, d, o, r in group.slices("producers"):
        if (m, p) not in compute:
            continue
        t = _tensor(model, m, p).detach().movedim(d, 0)
        t = t[o: o + group.size * r].reshape(group.size, -1)
        rows.append(t)
    if not rows:
        raise ModelError(f"group '{group.name}' has no conv/linear producer", where=group.name)
    return torch.cat(rows, dim=1)


@torch.no_grad()
def zero_units_(model: nn.Module, group: ChannelGroup, idxs: torch.Tensor) -> None:
    """Soft mask: zero every producing parameter slice of units ``idxs`` (in place).

    BatchNorm weight *and* bias are zeroed, so a masked channel outputs exactly 0 after the
    norm (no BN-beta leak, :math:`\\mathrm{BN}(x)_c = \\gamma_c \\hat x_c + \\beta_c = 0`); running
    statistics (buffers) are left alone.
    """
    idxs = torch.as_tensor(idxs, dtype=torch.long).reshape(-1)
    if idxs.numel() == 0:
        return
    for m, p, d, o, r in group.slices("producers"):
        t = _tensor(model, m, p)
        if isinstance(t, nn.Parameter):
            t.index_fill_(d, unit_indices(idxs, o, r).to(t.device), 0.0)


def remove_units_(model: nn.Module, example_inputs: Any,
                  keep: dict[str, list[int]], *,
                  groups: Sequence[ChannelGroup] | None = None) -> nn.Module:
    """Physically keep only ``keep[name]`` units of each named group, in every coupled tensor.

    The model is traced on ``example_inputs``, sliced, then validated by a forward pass (output
    shape unchanged); one ``prune_units`` edit is recorded so a checkpoint replays it. Tensors
    are replaced by new ``nn.Parameter`` objects: rebuild any optimizer afterwards.

    Args:
        model: the model, edited in place and returned.
        example_inputs: an input batch (a batch of 1 is enough).
        keep: group name -> unit indices to keep.
        groups: the model's current groups when the caller has them (skips one trace).

    Raises:
        ModelError: unknown group name, empty/out-of-range keep set, or a failing forward.
    """
    from leandl.prune._surgery import apply_keep, forward_shape

    if not keep:
        return model
    before = forward_shape(model, example_inputs)
    if groups is None:
        groups = channel_groups(model, example_inputs, keep_io=False, strict=False, hidden=True)
    by_name = {g.name: g for g in groups}
    clean = {}
    for name, idxs in keep.items():
        if name not in by_name:
            raise ModelError(f"no prunable group named '{name}'", where=name,
                             fix=f"use a name from channel_groups(): {sorted(by_name)[:8]} ...")
        clean[name] = sorted({int(i) for i in idxs})
        if not clean[name] or clean[name][0] < 0 or clean[name][-1] >= by_name[name].size:
            raise ModelError(f"keep set of '{name}' must be non-empty indices in "
                             f"[0, {by_name[name].size})", where=name)
    apply_keep(model, [by_name[n] for n in clean], clean)
    after = forward_shape(model, example_inputs, where=", ".join(clean))
    if after != before:
        raise ModelError(f"pruning changed the output shape {before} -> {after}",
                         where=", ".join(clean), fix="add these groups to ignored_layers")
    add_edit(model, {"kind": "prune_units", "inputs": input_spec(first_batch(example_inputs)),
                     "keep": {n: clean[n] for n in clean}})
    return model


@EDITS.register("prune_units")
def _replay_prune_units(model: nn.Module, edit: dict[str, Any]) -> nn.Module:
    """Replay a ``prune_units`` edit: trace inputs of the recorded spec, apply the keep sets."""
    if "inputs" in edit:
        x = inputs_from_spec(edit["inputs"])
    else:  # format of leandl <= 0.1: one float tensor
        dtype = getattr(torch, str(edit.get("input_dtype", "float32")))
        x = torch.zeros(edit["input_shape"], dtype=dtype)
    return remove_units_(model, x, {k: list(v) for k, v in edit["keep"].items()})

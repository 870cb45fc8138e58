"""Width allocation: how many units each group keeps, and the MACs/params it costs (estimated).

The estimate is exact for conv/linear MACs and for parameter counts: a conv's MACs scale with
the kept fraction of its weight's dim 0 and dim 1, a depthwise conv's with dim 0 only, and an
attention module's own MACs (the softmax(QK^T)V products) with the kept fraction of its heads.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import torch
from torch import nn

from leandl.measure import count_macs
from leandl.prune.groups import ChannelGroup

__all__ = ["CostModel", "allocate", "normalised", "keep_sets"]


def normalised(scores: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Divide each group's scores by their mean, so groups compare in a global ranking."""
    return {k: v.double() / (v.double().abs().mean() + 1e-12) for k, v in scores.items()}


def _round_kept(kept: int, size: int, floor: int, round_to: int | None) -> int:
    kept = max(kept, floor, 1)
    if round_to and size <= round_to:
        return size  # the only multiples are 0 and the full width
    if round_to:
        kept = max(round_to, int(round(kept / round_to)) * round_to)
        while kept < floor:
            kept += round_to
        kept = min(kept, size)
    return kept


def allocate(groups: list[ChannelGroup], scores: dict[str, torch.Tensor], t: float, scope: str,
             max_ratio: float, round_to: int | None) -> dict[str, int]:
    """Kept units per group at prune strength ``t`` in [0, 1].

    ``layerwise``: every group drops ``floor(t * size)`` units. ``global``: units whose
    normalised score lies below the ``t``-quantile of all normalised scores are dropped.
    Each group keeps at least ``ceil((1 - max_ratio) * size)`` units (and 1), rounded to a
    multiple of ``round_to`` when given.
    """
    if scope == "global":
        pooled = torch.cat([scores[g.name] for g in groups])
        thr = torch.quantile(pooled, t) if t > 0 else pooled.min() - 1
    out = {}
    for g in groups:
        if scope == "global":
            drop = int((scores[g.name] < thr).sum()) if t < 1 else g.size
        else:
            drop = int(math.floor(t * g.size + 1e-9))
        floor = int(math.ceil((1 - max_ratio) * g.size - 1e-9))
        step = round_to
        if round_to and g.unit > 1:  # round_to counts channels; a unit spans g.unit of them
            step = round_to // g.unit if round_to % g.unit == 0 else 1
        out[g.name] = _round_kept(g.size - drop, g.size, floor, step if step != 1 else None)
    return out


def keep_sets(groups: list[ChannelGroup], scores: dict[str, torch.Tensor],
              kept: dict[str, int]) -> dict[str, list[int]]:
    """The ``kept[name]`` highest-scoring unit indices of each group that shrinks (sorted)."""
    out = {}
    for g in groups:
        if kept[g.name] < g.size:
            order = torch.argsort(scores[g.name], descending=True, stable=True)
            out[g.name] = sorted(order[: kept[g.name]].tolist())
    return out


class CostModel:
    """Estimated MACs and params of ``model`` after shrinking groups (see module docstring).

    MACs: every conv/matmul/attention op recorded by the trace scales with the kept fraction of
    each channel view it touches (input channels, output channels, heads); MACs the trace did
    not attribute stay as they are. Params: every sliced tensor dim scales with its kept width.

    Args:
        model: the model (unchanged).
        groups: its groups (from one :func:`~leandl.prune.groups.channel_groups` call).
        example_inputs: a batch-1 input for counting MACs.
    """

    def __init__(self, model: nn.Module, groups: list[ChannelGroup], example_inputs: Any):
        self.macs = count_macs(model, example_inputs)
        self.groups = groups
        self.trace = next((g.trace for g in groups if g.trace is not None), None)
        self.by_space = {g.space: gi for gi, g in enumerate(groups)}
        self.dims: dict[tuple[str, str, int], list[tuple[int, int]]] = defaultdict(list)
        for gi, g in enumerate(groups):
            for role in ("producers", "consumers"):
                for m, p, d, _, r in g.slices(role):
                    self.dims[(m, p, d)].append((gi, r))
        self.shapes = {}
        for name, t in list(model.named_parameters()) + list(model.named_buffers()):
            m, _, p = name.rpartition(".")
            self.shapes[(m, p)] = tuple(t.shape)
        self._buffers = {tuple(n.rpartition(".")[::2]) for n, _ in model.named_buffers()}
        self.terms = self.trace.macs if self.trace is not None else []
        traced = sum(t.macs for t in self.terms)
        self.rest = max(self.macs.total - traced, 0.0)

    def _frac(self, key: tuple[str, str, int], kept: list[int]) -> float:
        full = self.shapes[key[:2]][key[2]]
        removed = sum((self.groups[gi].size - kept[gi]) * r for gi, r in self.dims.get(key, []))
        return max(full - removed, 0) / full

    def _view_frac(self, view: list[tuple[int, int]], kept: list[int]) -> float:
        full = now = 0.0
        for sid, r in view:
            gi = self.by_space.get(sid)
            size = self.trace.graph.spaces[sid].size
            full += size * r
            now += (kept[gi] if gi is not None else size) * r
        return now / full if full else 1.0

    def estimate(self, kept_by_name: dict[str, int]) -> tuple[float, float]:
        """(MACs, params) after keeping ``kept_by_name`` units (missing groups keep all)."""
        kept = [kept_by_name.get(g.name, g.size) for g in self.groups]
        macs = self.rest
        for term in self.terms:
            value = term.macs
            for view in term.views:  # input and output dims may be one space (RepVGG stages)
                value *= self._view_frac(view, kept)
            macs += value
        params = 0.0
        for (m, p), shape in self.shapes.items():
            if (m, p) in self._buffers:
                continue
            n = float(math.prod(shape))
            for d in range(len(shape)):
                n *= self._frac((m, p, d), kept) if (m, p, d) in self.dims else 1.0
            params += n
        return macs, params

"""Cells and the macro network shared by the search supernet and the derived model.

A cell takes one input ``x``; a 1x1 ReLU-conv-BN preprocess maps it to the cell's width (when
the width changes), giving state ``s_0``. Intermediate node ``i = 1..nodes`` is the sum of its
incoming edges ``op_{j,i}(s_j)`` over ``j < i``; the cell's output is the sum of its
intermediate nodes. In a reduction cell the edges leaving ``s_0`` have stride 2 and the width
doubles (DARTS, arXiv 1806.09055; leandl's cells have one input instead of DARTS's two and sum
the nodes instead of concatenating them, which keeps the MACs of small models low).

Macro network: a stem conv (k3, width ``C``), ``cells`` cells with reductions at ``cells // 3``
and ``2 * cells // 3`` (DARTS's placement; ``cells=3`` gives normal, reduce, reduce, the
resolution plan of ``mnist1d_cnn``), then a linear classifier over the flattened map
(``pool=False``, positions matter in MNIST-1D) or over globally pooled channels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from leandl.errors import ConfigError
from leandl.models._common import Backbone, ClassifierHead
from leandl.nas.space import _layers

__all__ = ["edge_list", "reduction_plan", "Cell", "MacroNet", "out_size"]


def edge_list(nodes: int) -> list[tuple[int, int]]:
    """Every edge ``(j, i)`` of a cell with ``nodes`` intermediate nodes, ``0 <= j < i``."""
    return [(j, i) for i in range(1, nodes + 1) for j in range(i)]


def reduction_plan(cells: int) -> list[bool]:
    """Which cells reduce: DARTS places reductions at ``cells // 3`` and ``2 * cells // 3``."""
    if cells < 1:
        raise ConfigError(f"cells must be >= 1, got {cells}", where="nas.cells")
    red = {cells // 3, 2 * cells // 3} if cells >= 3 else set()
    return [k in red for k in range(cells)]


def out_size(size: int, reductions: int) -> int:
    """Spatial size after ``reductions`` stride-2 steps with 'same' padding (ceil halving)."""
    for _ in range(reductions):
        size = (size + 1) // 2
    return size


class Cell(nn.Module):
    """One cell whose edges are built by ``make_edge(j, i, stride)`` (see the module docstring)."""

    def __init__(self, c_in: int, c: int, reduction: bool, nodes: int, dims: int, affine: bool,
                 edges: Sequence[tuple[int, int]], make_edge: Callable[[int, int, int], nn.Module]) -> None:
        super().__init__()
        conv, bn, _, _ = _layers(dims)
        self.reduction, self.nodes = reduction, nodes
        self.pre = (nn.Sequential(nn.ReLU(inplace=False), conv(c_in, c, 1, bias=False), bn(c, affine=affine))
                    if c_in != c else nn.Identity())
        self.edges = [tuple(e) for e in edges]
        self.ops = nn.ModuleList(make_edge(j, i, 2 if reduction and j == 0 else 1) for j, i in self.edges)

    def forward(self, x: Tensor, weights: Tensor | None = None) -> Tensor:
        states: list[Tensor | None] = [self.pre(x)] + [None] * self.nodes
        for i in range(1, self.nodes + 1):
            acc = None
            for k, (j, dst) in enumerate(self.edges):
                if dst != i or states[j] is None:
                    continue
                y = self.ops[k](states[j]) if weights is None else self.ops[k](states[j], weights[k])
                acc = y if acc is None else acc + y
            states[i] = acc
        used = [s for s in states[1:] if s is not None]
        if not used:
            raise ConfigError("a cell has no edge into any node", where="nas.genotype")
        return torch.stack(used).sum(0)


class MacroNet(Backbone):
    """Stem, cells ``cell0..cell{n-1}``, ReLU, classifier head (see the module docstring).

    ``cell_factory(k, c_in, c, reduction)`` builds cell ``k``. The leandl model surface
    (``forward_features``, ``forward_head``, ``exit_points`` after every cell) comes from
    :class:`leandl.models._common.Backbone`.
    """

    def __init__(self, input_shape: Sequence[int], num_classes: int, width: int, cells: int, pool: bool,
                 cell_factory: Callable[[int, int, int, bool], Cell]) -> None:
        super().__init__()
        in_c, *spatial = [int(s) for s in input_shape]
        dims = len(spatial)
        conv, bn, _, _ = _layers(dims)
        if width < 2 or width % 2:
            raise ConfigError(f"width must be even and >= 2, got {width}", where="nas.width")
        self.stem = nn.Sequential(conv(in_c, width, 3, 1, 1, bias=False), bn(width))
        plan, c = reduction_plan(cells), width
        for k, red in enumerate(plan):
            c_out = 2 * c if red else c
            setattr(self, f"cell{k}", cell_factory(k, c, c_out, red))
            c = c_out
        self.num_cells = cells
        self.act = nn.ReLU(inplace=False)
        reds = sum(plan)
        flat = c if pool else c * int(torch.tensor([out_size(s, reds) for s in spatial]).prod())
        self.head = ClassifierHead(flat, num_classes, pool=("1d" if dims == 1 else "2d") if pool else "none")
        names = tuple(f"cell{k}" for k in range(cells))
        self._chain = ("stem", *names, "act")
        self.exit_points = names
        self.feature_layout = "ncl" if dims == 1 else "nchw"

    @property
    def cells(self) -> list[Cell]:
        """The cells in forward order."""
        return [getattr(self, f"cell{k}") for k in range(self.num_cells)]

    def features_weighted(self, x: Tensor, weights: Sequence[Tensor]) -> Tensor:
        """``forward_features`` with per-cell mixed-op weights (the search supernet's forward)."""
        h = self.stem(x)
        for cell, w in zip(self.cells, weights, strict=True):
            h = cell(h, w)
        return self.act(h)

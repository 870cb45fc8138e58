"""Derive the discrete cell from the architecture weights, and the model built from it.

DARTS's rule (arXiv 1806.09055): for every intermediate node keep the ``top_k`` (2) incoming
edges whose strongest operation other than ``none`` has the largest softmax weight, each with
that operation. The result is a *genotype*, plain JSON::

    {"nodes": 2,
     "normal": [["sep_conv_5", 0, 1], ["conv_3", 0, 2], ["skip", 1, 2]],
     "reduce": [["max_pool_3", 0, 1], ...]}

(one ``[op, from, to]`` per kept edge). :func:`nas_cellnet` (registry name ``nas_cellnet``)
builds the network from a genotype and a width, so a searched model is saved as its spec
(``leandl.save``: genotype, width, cells as kwargs; weights in safetensors) and rebuilt on load
without pickle. :func:`fit_width` picks the widest network whose MACs stay within a target.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from leandl.errors import ConfigError
from leandl.measure import count_macs
from leandl.models._common import check_input_shape
from leandl.nas.cell import Cell, MacroNet, edge_list
from leandl.nas.space import build_op, check_ops
from leandl.registry import MODELS

__all__ = ["DEFAULT_GENOTYPE", "derive_genotype", "check_genotype", "CellNet", "nas_cellnet", "fit_width", "cellnet_macs"]


def derive_genotype(alphas: dict[str, Tensor], ops: Sequence[str], nodes: int, top_k: int = 2) -> dict[str, Any]:
    """The discrete genotype from ``alphas`` (``{"normal": (E, O), "reduce": (E, O)}`` logits).

    Example:
        >>> a = torch.tensor([[0., 5., 0.], [0., 0., 1.], [9., 0., 2.]])  # ops none, skip, conv_3
        >>> derive_genotype({"normal": a, "reduce": a}, ["none", "skip", "conv_3"], 2)["normal"]
        [['skip', 0, 1], ['conv_3', 0, 2], ['conv_3', 1, 2]]
    """
    ops = check_ops(ops)
    edges = edge_list(nodes)
    out: dict[str, Any] = {"nodes": int(nodes)}
    for kind in ("normal", "reduce"):
        a = alphas[kind]
        if tuple(a.shape) != (len(edges), len(ops)):
            raise ConfigError(f"alphas['{kind}'] has shape {tuple(a.shape)}, expected {(len(edges), len(ops))}",
                              where="nas.alphas")
        w = torch.softmax(a.detach().float(), dim=-1)
        if "none" in ops:
            w[:, ops.index("none")] = -1.0
        kept = []
        for i in range(1, nodes + 1):
            cand = [(float(w[k].max()), k) for k, (j, dst) in enumerate(edges) if dst == i]
            for _, k in sorted(cand, key=lambda t: -t[0])[:top_k]:
                kept.append([ops[int(w[k].argmax())], edges[k][0], edges[k][1]])
        out[kind] = sorted(kept, key=lambda e: (e[2], e[1]))
    return out


def check_genotype(genotype: Any) -> dict[str, Any]:
    """Validate a genotype (from JSON): node count, known ops, edges ``0 <= from < to <= nodes``."""
    if not isinstance(genotype, dict) or not isinstance(genotype.get("nodes"), int) or genotype["nodes"] < 1:
        raise ConfigError("a genotype is a dict with 'nodes' (int >= 1), 'normal' and 'reduce'", where="genotype")
    n = genotype["nodes"]
    for kind in ("normal", "reduce"):
        edges = genotype.get(kind)
        if not isinstance(edges, list) or not edges:
            raise ConfigError(f"genotype['{kind}'] must be a non-empty list of [op, from, to]", where="genotype")
        for e in edges:
            ok = (isinstance(e, list | tuple) and len(e) == 3 and isinstance(e[1], int) and isinstance(e[2], int)
                  and 0 <= e[1] < e[2] <= n)
            if not ok:
                raise ConfigError(f"bad edge {e!r} in genotype['{kind}'] (want [op, from, to], 0 <= from < to <= {n})",
                                  where="genotype")
            check_ops([e[0]], where=f"genotype['{kind}']")
            if e[0] == "none":
                raise ConfigError(f"genotype['{kind}'] keeps a 'none' edge", where="genotype")
    return genotype


class CellNet(MacroNet):
    """The network of a derived genotype (stem, ``cells`` cells, classifier)."""

    def __init__(self, input_shape: Sequence[int], num_classes: int, genotype: dict[str, Any], width: int,
                 cells: int, pool: bool) -> None:
        g = check_genotype(genotype)
        dims = len(input_shape) - 1

        def cell(k: int, c_in: int, c: int, red: bool) -> Cell:
            spec = g["reduce" if red else "normal"]
            ops = {(e[1], e[2]): e[0] for e in spec}
            return Cell(c_in, c, red, g["nodes"], dims, True, list(ops),
                        lambda j, i, s: build_op(ops[(j, i)], c, s, dims, affine=True))

        super().__init__(input_shape, num_classes, width, cells, pool, cell)


# A hand-written cell (not a search result), used when no genotype is given.
DEFAULT_GENOTYPE: dict[str, Any] = {
    "nodes": 2,
    "normal": [["sep_conv_3", 0, 1], ["conv_3", 0, 2], ["skip", 1, 2]],
    "reduce": [["max_pool_3", 0, 1], ["sep_conv_3", 0, 2], ["skip", 1, 2]],
}


@MODELS.register("nas_cellnet")
def nas_cellnet(*, genotype: dict[str, Any] | None = None, num_classes: int = 10, input_shape: Sequence[int] = (1, 40),
                width: int = 16, cells: int = 3, pool: bool = False) -> CellNet:
    """A network of cells found by leandl's differentiable search (DARTS, arXiv 1806.09055).

    Args:
        genotype: the derived cell (see :func:`derive_genotype`), plain JSON; default
            ``DEFAULT_GENOTYPE``, a hand-written cell.
        num_classes: number of classes.
        input_shape: one sample, ``(C, L)`` or ``(C, H, W)``.
        width: channels after the stem (doubled by every reduction cell).
        cells: number of cells (reductions at ``cells // 3`` and ``2 * cells // 3``).
        pool: global average pooling before the classifier (else the map is flattened).
    """
    shape = tuple(int(s) for s in input_shape)
    check_input_shape("nas_cellnet", shape, ndim=len(shape) - 1 if len(shape) in (2, 3) else 1)
    g = copy.deepcopy(DEFAULT_GENOTYPE) if genotype is None else genotype
    return CellNet(shape, num_classes, g, int(width), int(cells), bool(pool))


def cellnet_macs(genotype: dict[str, Any], width: int, input_shape: Sequence[int], num_classes: int = 10,
                 cells: int = 3, pool: bool = False) -> int:
    """Per-sample MACs of :func:`nas_cellnet` with these settings."""
    net = CellNet(tuple(input_shape), num_classes, genotype, width, cells, pool)
    return count_macs(net, torch.zeros(1, *input_shape)).total


def fit_width(genotype: dict[str, Any], max_macs: float, input_shape: Sequence[int], num_classes: int = 10,
              cells: int = 3, pool: bool = False, step: int = 2, max_width: int = 512) -> int:
    """The largest width (a multiple of ``step``) whose network costs at most ``max_macs`` per sample.

    Raises:
        ConfigError: even width ``step`` costs more than ``max_macs``.
    """
    def macs(w: int) -> int:
        return cellnet_macs(genotype, w, input_shape, num_classes, cells, pool)

    lo, hi = step, max_width
    if macs(lo) > max_macs:
        raise ConfigError(f"the searched cell costs {macs(lo)} MACs at width {lo}, above the target of "
                          f"{max_macs:.0f}", where="nas.max_macs", fix="raise the MACs target or use fewer cells")
    while lo < hi:  # widths are multiples of step; MACs grow with the width
        mid = ((lo + hi) // 2 + step) // step * step
        mid = min(mid, hi)
        if macs(mid) <= max_macs:
            lo = mid
        else:
            hi = mid - step
    return lo

"""Differentiable cell search: DARTS's mixed operation and its alternating alpha optimisation.

What: every edge of a cell holds a *mixed op* ``o(x) = sum_o softmax(alpha)_o op_o(x)`` over
the search space (:mod:`leandl.nas.space`); normal and reduction cells share one ``alpha``
each (``(edges, ops)`` logits). Training alternates, per step, (1) an architecture step on a
batch of the *search-validation* half of the training split, ``alpha <- Adam(grad_alpha L_val)``,
and (2) a weight step on a batch of the *search-train* half, ``w <- SGD(grad_w L_train)``
(first-order DARTS: ``L_val`` is taken at the current ``w``, no unrolled step). The first
``arch_warmup`` epochs train the weights only (PC-DARTS's warm-up), so parameter-free ops
(pooling, skip) do not win merely because the convolutions have not learned anything yet.

Resource awareness (optional, ``macs_weight > 0``): the architecture loss adds
``macs_weight * E[MACs](alpha) / max_macs`` with ``E[MACs] = sum_edges sum_o softmax(alpha)_o
MACs(op_o)`` counted per op at its input shape, which steers the search towards cells that fit
a small budget (in the spirit of EoiNAS's efficiency-aware one-shot search and the
keyword-spotting NAS seed, arXiv 2009.00165, which search small cells for tiny signals).

NAS-KD (``teacher``): both losses become ``(1 - beta) CE + beta T^2 KL(teacher || net)`` (Hinton's
term, :func:`leandl.distill.kd.kd_loss`), so the architecture is chosen for how well it learns
from the teacher, not from the labels alone.

Defaults: DARTS's (arXiv 1806.09055) weight SGD lr 0.025, momentum 0.9, weight decay 3e-4,
cosine to 1e-3, gradient clip 5; architecture Adam betas (0.5, 0.999), weight decay 1e-3. The
architecture lr defaults to 3e-3, 10x DARTS's 3e-4, because a search here runs ~100x fewer
steps (minutes on a CPU, not a GPU day).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from leandl.errors import ConfigError
from leandl.measure import count_macs
from leandl.nas.cell import Cell, MacroNet, edge_list
from leandl.nas.derive import derive_genotype
from leandl.nas.space import PRIMITIVES, build_op, check_ops

__all__ = ["MixedOp", "SearchNet", "SearchConfig", "SearchResult", "darts_search"]


class MixedOp(nn.Module):
    """``sum_o w_o op_o(x)`` over the candidate ops of one edge (ops with weight 0 still run)."""

    def __init__(self, c: int, stride: int, dims: int, ops: Sequence[str]) -> None:
        super().__init__()
        self.names = list(ops)
        self.ops = nn.ModuleList(build_op(o, c, stride, dims, affine=False) for o in ops)

    def forward(self, x: Tensor, weights: Tensor) -> Tensor:
        return sum(w * op(x) for w, op in zip(weights, self.ops, strict=True))


class SearchNet(MacroNet):
    """The supernet: every cell edge a :class:`MixedOp`; ``alphas`` hold the architecture logits."""

    def __init__(self, input_shape: Sequence[int], num_classes: int, width: int = 8, cells: int = 3,
                 nodes: int = 2, ops: Sequence[str] = PRIMITIVES, pool: bool = False) -> None:
        ops, dims = check_ops(ops), len(input_shape) - 1
        edges = edge_list(nodes)

        def cell(k: int, c_in: int, c: int, red: bool) -> Cell:
            return Cell(c_in, c, red, nodes, dims, False, edges, lambda j, i, s: MixedOp(c, s, dims, ops))

        super().__init__(input_shape, num_classes, width, cells, pool, cell)
        self.op_names, self.nodes, self.input_shape = ops, nodes, tuple(input_shape)
        self.alpha_normal = nn.Parameter(1e-3 * torch.randn(len(edges), len(ops)))
        self.alpha_reduce = nn.Parameter(1e-3 * torch.randn(len(edges), len(ops)))

    def arch_parameters(self) -> list[nn.Parameter]:
        """The architecture logits (normal, reduce)."""
        return [self.alpha_normal, self.alpha_reduce]

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every parameter but the architecture logits."""
        ids = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in ids]

    def forward(self, x: Tensor) -> Tensor:
        wn, wr = F.softmax(self.alpha_normal, -1), F.softmax(self.alpha_reduce, -1)
        return self.forward_head(self.features_weighted(x, [wr if c.reduction else wn for c in self.cells]))

    def genotype(self) -> dict[str, Any]:
        """The discrete cell DARTS derives from the current alphas."""
        return derive_genotype({"normal": self.alpha_normal, "reduce": self.alpha_reduce}, self.op_names,
                               self.nodes)

    @torch.no_grad()
    def op_macs(self) -> tuple[Tensor, Tensor, int]:
        """Per-sample MACs of every (edge, op) summed over normal cells and over reduction cells
        (two ``(E, O)`` tables) and the fixed MACs (stem, preprocess, classifier)."""
        tables = {True: torch.zeros(len(edge_list(self.nodes)), len(self.op_names)),
                  False: torch.zeros(len(edge_list(self.nodes)), len(self.op_names))}
        inputs: dict[int, Tensor] = {}
        hooks = [m.register_forward_pre_hook(lambda m, a, k=id(m): inputs.__setitem__(k, a[0]))
                 for m in self.modules() if isinstance(m, MixedOp)]
        x = torch.zeros(1, *self.input_shape, device=self.alpha_normal.device)
        try:
            total = count_macs(self, x).total
        finally:
            for h in hooks:
                h.remove()
        edge_sum = 0
        for cell in self.cells:
            for e, mixed in enumerate(cell.ops):
                for o, op in enumerate(mixed.ops):
                    m = count_macs(op, inputs[id(mixed)]).total
                    tables[cell.reduction][e, o] += m
                    edge_sum += m
        return tables[False], tables[True], total - edge_sum

    def expected_macs(self, tables: tuple[Tensor, Tensor, int]) -> Tensor:
        """``fixed + sum_edges sum_o softmax(alpha)_o MACs_o`` (differentiable in the alphas)."""
        norm, red, fixed = tables
        return (fixed + (F.softmax(self.alpha_normal, -1) * norm.to(self.alpha_normal.device)).sum()
                + (F.softmax(self.alpha_reduce, -1) * red.to(self.alpha_reduce.device)).sum())


@dataclass
class SearchConfig:
    """Settings of :func:`darts_search` (defaults: see the module docstring)."""

    epochs: int = 10
    arch_warmup: int = 0
    batch_size: int = 64
    width: int = 8
    cells: int = 3
    nodes: int = 2
    ops: Sequence[str] = PRIMITIVES
    pool: bool = False
    lr: float = 0.025
    lr_min: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 3e-4
    arch_lr: float = 3e-3
    arch_weight_decay: float = 1e-3
    grad_clip: float = 5.0
    macs_weight: float = 0.0
    max_macs: float | None = None
    kd_beta: float = 0.5
    kd_temperature: float = 4.0
    seed: int = 0
    device: str = "cpu"

    def check(self) -> None:
        """Refuse out-of-range settings, naming the field."""
        checks = {"epochs": self.epochs >= 1, "arch_warmup": 0 <= self.arch_warmup < self.epochs,
                  "batch_size": self.batch_size >= 1, "width": self.width >= 2,
                  "lr": self.lr > 0, "arch_lr": self.arch_lr > 0, "macs_weight": self.macs_weight >= 0,
                  "kd_beta": 0 <= self.kd_beta <= 1, "kd_temperature": self.kd_temperature > 0}
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(f"{name}={getattr(self, name)!r} is out of range", where=f"nas.{name}")
        if self.macs_weight > 0 and not self.max_macs:
            raise ConfigError("macs_weight needs max_macs (the MACs the penalty divides by)", where="nas.max_macs")


@dataclass
class SearchResult:
    """The derived genotype, final alphas (as lists), search seconds and the per-epoch history."""

    genotype: dict[str, Any]
    alphas: dict[str, list[list[float]]]
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)


def _loss(net: nn.Module, x: Tensor, y: Tensor, teacher: nn.Module | None, cfg: SearchConfig) -> Tensor:
    z = net(x)
    ce = F.cross_entropy(z, y)
    if teacher is None:
        return ce
    from leandl.distill.kd import kd_loss

    with torch.no_grad():
        t = teacher(x)
    return (1 - cfg.kd_beta) * ce + cfg.kd_beta * kd_loss(z, t, cfg.kd_temperature)


def darts_search(train: Any, input_shape: Sequence[int], num_classes: int, cfg: SearchConfig | None = None,
                 teacher: nn.Module | None = None) -> SearchResult:
    """First-order DARTS on a dataset of ``(x, y)`` pairs; half trains weights, half the alphas.

    Args:
        train: the training split (a ``Dataset`` of ``(x, y, ...)``); it is split in two at random.
        input_shape: one sample's shape.
        num_classes: number of classes.
        cfg: search settings.
        teacher: a trained model whose KD loss the search optimises (NAS-KD); None: CE only.
    """
    from torch.utils.data import DataLoader, random_split

    cfg = cfg or SearchConfig()
    cfg.check()
    g = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    n = len(train)
    if n < 2:
        raise ConfigError(f"the search needs at least 2 training samples, got {n}", where="data")
    w_half, a_half = random_split(train, [n - n // 2, n // 2], generator=g)
    lw = DataLoader(w_half, cfg.batch_size, shuffle=True, drop_last=True, generator=g)
    la = DataLoader(a_half, cfg.batch_size, shuffle=True, drop_last=True, generator=g)
    dev = torch.device(cfg.device)
    net = SearchNet(input_shape, num_classes, cfg.width, cfg.cells, cfg.nodes, cfg.ops, cfg.pool).to(dev)
    if teacher is not None:
        teacher = teacher.to(dev).eval()
    tables = net.op_macs() if cfg.macs_weight > 0 else None
    w_opt = torch.optim.SGD(net.weight_parameters(), cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * min(len(lw), len(la))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(w_opt, max(1, steps), eta_min=cfg.lr_min)
    a_opt = torch.optim.Adam(net.arch_parameters(), cfg.arch_lr, betas=(0.5, 0.999),
                             weight_decay=cfg.arch_weight_decay)
    history, t0 = [], time.perf_counter()
    for epoch in range(cfg.epochs):
        net.train()
        tot = cnt = 0.0
        for bw, ba in zip(lw, la, strict=False):  # samples are (x, y) or leandl's (x, y, index)
            xw, yw, xa, ya = bw[0].to(dev), bw[1].to(dev), ba[0].to(dev), ba[1].to(dev)
            if epoch >= cfg.arch_warmup:
                a_opt.zero_grad(set_to_none=True)
                la_loss = _loss(net, xa, ya, teacher, cfg)
                if tables is not None:
                    la_loss = la_loss + cfg.macs_weight * net.expected_macs(tables) / float(cfg.max_macs)
                la_loss.backward()
                a_opt.step()
            w_opt.zero_grad(set_to_none=True)
            lw_loss = _loss(net, xw, yw, teacher, cfg)
            lw_loss.backward()
            nn.utils.clip_grad_norm_(net.weight_parameters(), cfg.grad_clip)
            w_opt.step()
            sched.step()
            tot, cnt = tot + float(lw_loss.detach()), cnt + 1
        history.append({"epoch": epoch + 1, "train_loss": tot / max(cnt, 1), "genotype": net.genotype(),
                        "seconds": time.perf_counter() - t0})
    alphas = {"normal": net.alpha_normal.detach().cpu().tolist(), "reduce": net.alpha_reduce.detach().cpu().tolist()}
    return SearchResult(net.genotype(), alphas, time.perf_counter() - t0, history)

"""First-order Taylor importance (Molchanov et al., CVPR 2019, arXiv 1906.10771).

The loss change from removing unit m is estimated by
:math:`I_m = \\big(\\sum_{s \\in S_m} g_s w_s\\big)^2` per minibatch, averaged over batches, where
:math:`S_m` are the unit's gate parameters. With a BatchNorm after the conv the sum over its
:math:`\\gamma_m, \\beta_m` equals the paper's best variant, a gate :math:`z_m` after BN:
:math:`\\gamma g_\\gamma + \\beta g_\\beta = \\sum_{n,hw} y\\,\\partial L/\\partial y = z\\,\\partial L/\\partial z`.
Groups without BN (heads, MLP units) use their conv/linear weights and biases. Tied residual
producers are summed (not averaged), as in the reference code. Scores are comparable across
layers, so global ranking works without normalisation (leandl still normalises by default).

Cost: one forward+backward per batch (computed once for all groups); average over >= 8 batches,
the estimate is noisy (the paper uses 30). Needs labels: ``batches`` of ``(inputs, targets)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from leandl.prune.criteria._base import Criterion, as_batches
from leandl.prune.groups import ChannelGroup, unit_indices
from leandl.registry import CRITERIA

__all__ = ["Taylor", "taylor_products"]

_BN = nn.modules.batchnorm._BatchNorm


def taylor_products(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]]
                    ) -> list[dict[str, torch.Tensor]]:
    """Per batch, ``g * w`` for every trainable parameter (eval mode, cross-entropy loss)."""
    names, params = zip(*[(n, p) for n, p in model.named_parameters() if p.requires_grad])
    was = model.training
    model.eval()
    out = []
    try:
        for x, y in batches:
            loss = F.cross_entropy(model(x), y)
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            out.append({n: (g * p).detach() for n, p, g in zip(names, params, grads)
                        if g is not None})
    finally:
        model.train(was)
    return out


@CRITERIA.register("taylor")
class Taylor(Criterion):
    """First-order Taylor gate importance, accumulated over batches (arXiv 1906.10771)."""

    needs_data = True

    def __init__(self) -> None:
        self._key: tuple[Any, ...] | None = None
        self._prods: list[dict[str, torch.Tensor]] = []

    def __call__(self, model: nn.Module, group: ChannelGroup,
                 batches: Iterable[Any] | None = None) -> torch.Tensor:
        data = as_batches(batches, "taylor")
        key = (id(model), id(batches), tuple(p.shape for p in model.parameters()))
        if key != self._key:
            self._prods, self._key = taylor_products(model, data), key
        slices = group.slices("producers")
        gates = [s for s in slices if isinstance(model.get_submodule(s[0]), _BN)
                 and s[1] in ("weight", "bias")]
        if not gates:
            gates = [s for s in slices if s[1] in ("weight", "bias")]
        units = torch.arange(group.size)
        scores = torch.zeros(len(self._prods), group.size, dtype=torch.float64)
        for b, prods in enumerate(self._prods):
            for m, p, d, o, r in gates:
                t = prods.get(f"{m}.{p}" if m else p)
                if t is None:
                    continue
                t = t.movedim(d, 0)[unit_indices(units, o, r)]
                scores[b] += t.reshape(group.size, -1).sum(1).double()
        return scores.pow(2).mean(0).float()

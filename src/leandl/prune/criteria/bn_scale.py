"""Network slimming: BatchNorm scale as channel importance (Liu et al., ICCV 2017, arXiv 1708.06519).

Importance of unit j: :math:`|\\gamma_j|` of the BatchNorm(s) producing it (mean over the tied
BNs of a residual group). Train with the ``l1_bn`` technique first, which adds the sub-gradient
of :math:`\\lambda \\sum |\\gamma|` to every BN weight gradient after backward
(:math:`\\nabla_\\gamma \\mathrel{+}= \\lambda\\,\\mathrm{sign}(\\gamma)`), so unneeded gates go to zero;
then prune globally (the scores are comparable across layers).

Hyper-parameters: ``l1_bn(lam)``: 1e-4 (VGG) or 1e-5 (ResNet/DenseNet) in the paper; too large a
lambda hurts the dense accuracy. Interactions: weight decay also shrinks gamma (keep it small
on BN), and label smoothing/KD are independent.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from leandl.errors import ModelError
from leandl.prune.criteria._base import Criterion
from leandl.prune.groups import ChannelGroup, unit_indices
from leandl.registry import CRITERIA, TECHNIQUES
from leandl.train.state import State
from leandl.train.technique import Technique

__all__ = ["BNScale", "L1BN", "add_bn_l1_grad_"]

_BN = nn.modules.batchnorm._BatchNorm


@CRITERIA.register("bn_scale")
class BNScale(Criterion):
    """|gamma| of each unit's BatchNorm (network slimming, arXiv 1708.06519)."""

    needs_data = False

    def __call__(self, model: nn.Module, group: ChannelGroup,
                 batches: Iterable[Any] | None = None) -> torch.Tensor:
        cols = []
        units = torch.arange(group.size)
        for m, p, d, o, r in group.slices("producers"):
            if p == "weight" and isinstance(model.get_submodule(m), _BN):
                w = model.get_submodule(m).weight.detach().abs()
                cols.append(w[unit_indices(units, o, r)].reshape(group.size, r).mean(1))
        if not cols:
            raise ModelError(f"group '{group.name}' has no BatchNorm, so bn_scale cannot score it",
                             where=group.name, fix="use criterion 'l1' or 'taylor'")
        return torch.stack(cols).mean(0)


def add_bn_l1_grad_(model: nn.Module, lam: float) -> int:
    """Add :math:`\\lambda\\,\\mathrm{sign}(\\gamma)` to every BN weight's gradient; returns #BNs."""
    n = 0
    for mod in model.modules():
        if isinstance(mod, _BN) and mod.weight is not None and mod.weight.grad is not None:
            mod.weight.grad.add_(torch.sign(mod.weight.detach()), alpha=lam)
            n += 1
    return n


@TECHNIQUES.register("l1_bn")
class L1BN(Technique):
    """L1 sparsity on BatchNorm scales for network slimming (arXiv 1708.06519).

    Args:
        lam: penalty weight lambda (>= 0); the gradient of lam * sum|gamma| is added.
    """

    def __init__(self, lam: float = 1e-4) -> None:
        if lam < 0:
            raise ValueError(f"l1_bn: lam must be >= 0, got {lam}")
        self.lam = float(lam)

    def after_backward(self, state: State) -> None:
        """Add lam * sign(gamma) to the BN weight gradients."""
        add_bn_l1_grad_(state.model, self.lam)

    def summary(self) -> dict[str, Any]:
        """Nothing beyond the configured lambda."""
        return {"l1_bn_lam": self.lam}

"""Discriminant-information (DI) channel importance (Hou & Kung, ICPR 2020).

For a batch of a group's feature maps flattened to :math:`X \\in R^{B \\times D}` (column-centred
:math:`\\bar X`) and centred one-hot labels :math:`\\bar Y`, DI is the ridge-regularised Fisher
ratio :math:`\\mathrm{tr}[(\\bar X^\\top \\bar X + \\rho I_D)^{-1} \\bar X^\\top \\bar Y \\bar Y^\\top \\bar X]`
(between-class scatter over regularised total scatter). With :math:`K = \\bar X \\bar X^\\top`
its kernel form is

.. math:: DI = \\mathrm{tr}\\big[\\bar Y^\\top K (K + \\rho I_B)^{-1} \\bar Y\\big]
             = \\mathrm{tr}(\\bar Y^\\top \\bar Y) - \\rho\\,\\mathrm{tr}\\big[\\bar Y^\\top (K + \\rho I_B)^{-1} \\bar Y\\big],

which grows with discriminability (features that separate the classes more, relative to
:math:`\\rho`) and never decreases when channels are added; it is bounded by
:math:`\\mathrm{tr}(\\bar Y^\\top \\bar Y)`. The reference code's kernel expression is the
second trace alone, which *falls* as discriminability rises (leandl returned it until issue 20);
its ``|dDI/dm_c|`` differs from the primal DI's only by the constant factor rho, so channel
rankings are the same either way. Unit c is scored by
the first-order "differential DI": multiply its maps by a mask :math:`m_c = 1` and take
:math:`|\\partial DI / \\partial m_c|` summed over batches; analytically
:math:`\\partial DI/\\partial m_c = 2\\rho\\,\\mathrm{tr}(M^{-1}\\bar Y\\bar Y^\\top M^{-1} \\bar X_c \\bar X_c^\\top)`
with :math:`M = K + \\rho I_B`.

Defaults: rho = 0.1 (reference code), float64 solves. Needs labels and a few batches of a few
dozen samples or more (the inverse is unstable for tiny B). Saturation: when D = C*H*W is much
larger than B (every conv layer of a small CNN at batch 64) the ridge fit interpolates the labels,
DI sits at ~99.9 % of its bound and its derivatives carry little information; on MNIST-1D DI then
prunes worse than L1 (``benchmarks/issue20_existing.py``, group ``di_pruning``). A rho on the
scale of ``tr(K) / B`` (1e4 there) or larger batches move it out of saturation. The feature map is the output of
the group's first BatchNorm (else its first conv/linear).
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

__all__ = ["DI", "discriminant_information", "di_importance"]

_BN = nn.modules.batchnorm._BatchNorm
_MATMUL = (nn.modules.conv._ConvNd, nn.Linear)


def discriminant_information(x: torch.Tensor, y: torch.Tensor, num_classes: int,
                             rho: float = 0.1) -> torch.Tensor:
    """Kernel-form DI of features ``x`` (B, D) with integer labels ``y`` (B,); higher = more discriminant.

    Example (two samples, one feature ``+-a``: ``DI = 2a^2 / (2a^2 + rho)``):
        >>> x, y = torch.tensor([[1.0], [-1.0]]), torch.tensor([0, 1])
        >>> round(float(discriminant_information(x, y, 2, rho=0.5)), 4)
        0.8
    """
    x = x.double()
    xc = x - x.mean(0, keepdim=True)
    yo = F.one_hot(y.long(), num_classes).double()
    yc = yo - yo.mean(0, keepdim=True)
    k = xc @ xc.T + rho * torch.eye(x.shape[0], dtype=x.dtype)
    return (yc * yc).sum() - rho * (yc * torch.linalg.solve(k, yc)).sum()


def di_importance(units: torch.Tensor, y: torch.Tensor, num_classes: int,
                  rho: float = 0.1) -> torch.Tensor:
    """``|dDI/dm_c|`` for features ``units`` (B, C, R): unit c's R values scaled by ``m_c``."""
    mask = torch.ones(units.shape[1], dtype=torch.float64, requires_grad=True)
    feats = (units.double() * mask[None, :, None]).reshape(units.shape[0], -1)
    (grad,) = torch.autograd.grad(discriminant_information(feats, y, num_classes, rho), mask)
    return grad.abs()


@CRITERIA.register("di")
class DI(Criterion):
    """Differential discriminant information of each unit's maps (Hou & Kung, ICPR 2020).

    Args:
        rho: ridge term of the kernel inverse.
    """

    needs_data = True

    def __init__(self, rho: float = 0.1) -> None:
        if rho <= 0:
            raise ValueError(f"di: rho must be > 0, got {rho}")
        self.rho = float(rho)

    def __call__(self, model: nn.Module, group: ChannelGroup,
                 batches: Iterable[Any] | None = None) -> torch.Tensor:
        data = as_batches(batches, "di")
        slices = group.slices("producers")
        pick = [s for s in slices if isinstance(model.get_submodule(s[0]), _BN)] or [
            s for s in slices if s[1] == "weight" and isinstance(model.get_submodule(s[0]), _MATMUL)]
        name = pick[0][0]
        mine = [s for s in pick if s[0] == name and s[1] == "weight"]
        module = model.get_submodule(name)
        cdim = -1 if isinstance(module, nn.Linear) else 1
        total = torch.zeros(group.size, dtype=torch.float64)
        captured: list[torch.Tensor] = []
        handle = module.register_forward_hook(lambda _m, _i, out: captured.append(out.detach()))
        was = model.training
        model.eval()
        try:
            with torch.no_grad():
                for x, y in data:
                    captured.clear()
                    logits = model(x)
                    feats = captured[0].movedim(cdim, 1).reshape(x.shape[0], captured[0].shape[cdim], -1)
                    units = torch.arange(group.size)
                    cols = torch.cat([feats[:, unit_indices(units, o, r)].reshape(
                        x.shape[0], group.size, r * feats.shape[2]) for *_, o, r in mine], dim=2)
                    with torch.enable_grad():
                        total += di_importance(cols, y, int(logits.shape[-1]), self.rho)
        finally:
            handle.remove()
            model.train(was)
        return total.float()

"""Norm Loss (Georgiou, Schmitt, Bäck, Chen, Lew; ICPR 2020, arXiv 2103.06583).

What: a soft constraint that steers every filter's incoming weight vector towards unit L2 norm,
i.e. the weight matrix towards the oblique manifold, instead of shrinking it to zero as L2 weight
decay does. The exact form implemented here:

    ``L_norm = lambda * sum_{l in layers} c_l * sum_{i=1..n_l} (1 - ||w_{l,i}||_2)^2``

where ``w_{l,i}`` is row ``i`` of layer ``l``'s weight flattened to ``(n_l, fan_in)`` (a conv
filter ``C_in/groups * k_h * k_w``, a linear layer's row), ``c_l = 1`` for ``reduction="sum"``
(the form in the paper's abstract-level description) or ``c_l = 1 / n_l`` for
``reduction="mean"`` (per-layer mean over filters, which makes ``lambda`` independent of the
width). Layers: every ``nn.Conv*d`` and ``nn.Linear`` (``include_head=False`` leaves out the last
linear layer, whose scale sets the logit temperature). Gradient:
``dL/dw_{l,i} = -2 lambda c_l (1 - ||w||) w / ||w||`` (zero at unit norm, pulls inwards when the
norm is above 1 and outwards when below).
When: ``after_loss`` adds the term (logged as ``loss_norm_loss``). The paper uses it in place of
L2 weight decay: set ``weight_decay: 0`` for conv/linear weights when following it.
Cost: one norm per filter per step (negligible next to the forward).
Hyper-parameters: ``weight`` (lambda; the paper's values were not verified: 1e-3 to 1e-2 with
``sum`` on CIFAR ResNets is a reasonable start), ``reduction``, ``include_head``.
Interactions: pruning by weight magnitude becomes less informative (all filters pulled to norm 1).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from leandl.registry import LOSSES, TECHNIQUES
from leandl.train.state import State
from leandl.train.technique import Technique

__all__ = ["norm_loss", "norm_loss_layers", "NormLoss"]

_REDUCTIONS = ("sum", "mean")


@LOSSES.register("norm_loss")
def norm_loss(weights: list[Tensor], reduction: str = "sum") -> Tensor:
    """``sum_l c_l sum_i (1 - ||w_{l,i}||_2)^2`` over weight tensors ``(n_l, ...)`` (no lambda).

    Example:
        >>> norm_loss([torch.tensor([[3.0, 4.0], [0.0, 1.0]])])
        tensor(16.)
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if not weights:
        return torch.zeros(())
    terms = []
    for w in weights:
        dev = (1.0 - w.flatten(1).norm(dim=1)).pow(2)  # (n_l,)
        terms.append(dev.mean() if reduction == "mean" else dev.sum())
    return torch.stack(terms).sum()


def norm_loss_layers(model: nn.Module, include_head: bool = True) -> list[nn.Module]:
    """The conv and linear layers whose weights Norm Loss constrains, in registration order."""
    layers = [m for m in model.modules() if isinstance(m, nn.modules.conv._ConvNd | nn.Linear)]
    if not include_head and layers and isinstance(layers[-1], nn.Linear):
        layers = layers[:-1]
    return layers


@TECHNIQUES.register("norm_loss")
class NormLoss(Technique):
    """Soft oblique-manifold regulariser ``lambda * sum (1 - ||w_i||)^2`` (arXiv 2103.06583)."""

    name = "norm_loss"

    def __init__(self, weight: float = 1e-3, reduction: str = "sum", include_head: bool = True) -> None:
        if weight < 0:
            raise ValueError(f"weight must be >= 0, got {weight}")
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        self.weight, self.reduction, self.include_head = weight, reduction, include_head
        self.layers: list[nn.Module] = []
        self.last_value = 0.0

    def fit_start(self, state: State) -> None:
        self.layers = norm_loss_layers(state.model, self.include_head)

    def after_loss(self, state: State) -> None:
        if not self.layers or self.weight == 0.0:
            return
        value = norm_loss([m.weight for m in self.layers], self.reduction)
        self.last_value = float(value.detach())
        state.add_loss_term("norm_loss", self.weight * value)

    def summary(self) -> dict[str, Any]:
        return {"norm_loss_layers": len(self.layers), "norm_loss_final": self.last_value}

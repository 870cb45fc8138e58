"""IMAE: improved MAE (Wang, Hua, Kodirov, Robertson; arXiv 1903.12141).

What: MAE's logit gradient ``2 p_y (p - q)`` has weight ``||dL/dz||_1 = 4 p_y (1 - p_y)``:
robust (hard and easy samples get little weight) but the weights hardly vary, so MAE underfits.
IMAE keeps MAE's direction and emphasis centre (``p_y = 0.5``) and widens the spread
exponentially: the weight becomes ``w = exp(T p_y (1 - p_y))``, i.e. the logit gradient is
``(p - q) * w / (2 (1 - p_y))`` (``||.||_1 = w``). The implied loss is not elementary, so IMAE
is a gradient rule: exactly gradient rescaling with ``lam = 1, beta = T``
(:func:`leandl.techniques.gradient_rescaling.rescaled_cross_entropy`), with the batch
normalisation ``/ sum_j w_j`` (``normalize=False``: the trainer's ``1/N``). The logged loss
value is CE.
When: replaces the loss at ``fit_start``. Cost: negligible.
Hyper-parameters: ``temperature`` T = 8 (paper's CIFAR-10 40 % setting; ablation 0 to 16, peak
weight ``e^{T/4}``; T = 16 trains slowly on clean data). Interactions: one loss-replacing
technique per stage.
"""

from __future__ import annotations

from torch import Tensor

from leandl.registry import LOSSES, TECHNIQUES
from leandl.techniques.gradient_rescaling import emphasis_weights, rescaled_cross_entropy
from leandl.techniques.mae import RobustLoss

__all__ = ["imae_weights", "imae_loss", "IMAE"]


def imae_weights(p_y: Tensor, temperature: float = 8.0) -> Tensor:
    """IMAE's per-sample gradient weight ``exp(T p_y (1 - p_y))``."""
    return emphasis_weights(p_y, temperature, 1.0)


@LOSSES.register("imae")
def imae_loss(logits: Tensor, targets_soft: Tensor, temperature: float = 8.0, normalize: bool = True) -> Tensor:
    """Per-sample CE values whose gradient is IMAE's ``(p - q) exp(T p_y (1 - p_y)) / (2 (1 - p_y))``."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    return rescaled_cross_entropy(logits, targets_soft, temperature, 1.0, normalize)


@TECHNIQUES.register("imae")
class IMAE(RobustLoss):
    """Improved MAE: exponentially widened MAE emphasis (arXiv 1903.12141)."""

    name = "imae"

    def __init__(self, temperature: float = 8.0, normalize: bool = True) -> None:
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        self.temperature, self.normalize = float(temperature), bool(normalize)

    def loss(self, logits: Tensor, targets_soft: Tensor) -> Tensor:
        return imae_loss(logits, targets_soft, self.temperature, self.normalize)

"""MAE: mean absolute error between the prediction and the target distribution, as a loss.

What: ``L = ||p - q||_1 = sum_k |p_k - q_k|``; for a one-hot ``q`` this is ``2 (1 - p_y)``
(Ghosh, Kumar, Sastry, AAAI 2017: symmetric, hence noise-tolerant under symmetric noise).
Its logit gradient is ``2 p_y (p - q)``: CE's direction ``p - q`` scaled by ``p_y``, so the
weight ``||dL/dz||_1 = 4 p_y (1 - p_y)`` peaks at ``p_y = 0.5`` and is small for both very hard
(likely mislabelled) and very easy samples. Known weakness (IMAE, arXiv 1903.12141): the
weights vary little, so MAE underfits, badly on many classes (CIFAR-100 ~8 % in IMAE's runs).
When: replaces the per-sample loss at ``fit_start`` (``state.loss_fn``); the trainer keeps
weighting and averaging. Cost: none. Hyper-parameters: ``scale`` (multiplies the loss; MAE's
gradients are smaller than CE's, a larger learning rate or scale helps).
Interactions: only one loss-replacing technique per stage (a second one raises ConfigError);
target revisers before it feed it their revised ``q``.
This module also holds :class:`RobustLoss`, the base of the loss-replacing techniques.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor

from leandl.errors import ConfigError
from leandl.registry import LOSSES, TECHNIQUES
from leandl.train.state import State
from leandl.train.technique import Technique

__all__ = ["mae_loss", "RobustLoss", "MAE"]


@LOSSES.register("mae")
def mae_loss(logits: Tensor, targets_soft: Tensor) -> Tensor:
    """Per-sample ``sum_k |softmax(z)_k - q_k|`` (``2 (1 - p_y)`` for one-hot), shape ``(B,)``."""
    p = F.softmax(logits.float(), dim=-1)
    return (p - targets_soft.float()).abs().sum(dim=-1)


class RobustLoss(Technique):
    """Base class: a technique that installs ``self.loss`` as ``state.loss_fn`` at ``fit_start``."""

    def loss(self, logits: Tensor, targets_soft: Tensor) -> Tensor:
        """Per-sample loss ``(B,)``; subclasses override."""
        return mae_loss(logits, targets_soft)

    def fit_start(self, state: State) -> None:
        if state.loss_fn is not None:
            owner = getattr(state.loss_fn, "__self__", None)
            other = getattr(owner, "name", getattr(state.loss_fn, "__name__", "another technique"))
            raise ConfigError(
                f"'{self.name}' replaces the loss, but '{other}' already did",
                where=f"techniques ({self.name})",
                fix="keep one loss-replacing technique (mae, imae, gradient_rescaling, gce, sce) per stage")
        state.loss_fn = self.loss

    def describe(self) -> dict[str, Any]:
        """The hyper-parameters (for logs)."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}


@TECHNIQUES.register("mae")
class MAE(RobustLoss):
    """Mean absolute error loss ``||p - q||_1`` (Ghosh et al. 2017)."""

    name = "mae"

    def __init__(self, scale: float = 1.0) -> None:
        if scale <= 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        self.scale = float(scale)

    def loss(self, logits: Tensor, targets_soft: Tensor) -> Tensor:
        return self.scale * mae_loss(logits, targets_soft)

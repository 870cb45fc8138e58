"""SCE: symmetric cross entropy (Wang, Ma, Chen, Luo, Yi, Bailey; ICCV 2019, arXiv 1908.06112).

What: ``L = alpha * H(q, p) + beta * H(p, q)``. The reverse term needs ``log 0`` for the zero
entries of a one-hot ``q``; it is replaced by a constant ``A`` (paper: ``A = -4``), i.e.
``RCE = -sum_k p_k max(log q_k, A)``, which for one-hot ``q`` is ``-A (1 - p_y) = 4 (1 - p_y)``,
a scaled MAE. Logit gradient (one-hot): ``alpha (p - q) + beta (-A) p_y (p - q)``: CE's fast
fitting plus MAE's robustness. (The official code clips ``q`` at 1e-4, i.e. ``A = log 1e-4``.)
When: replaces the loss at ``fit_start``. Cost: none. Hyper-parameters: ``alpha`` / ``beta``
(CIFAR-10 0.1 / 1.0 = defaults; CIFAR-100 6.0 / 0.1; MNIST 0.01 / 1.0), ``log_zero`` A < 0.
Interactions: one loss-replacing technique per stage; with soft targets the reverse term uses
``max(log q_k, A)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from leandl.registry import LOSSES, TECHNIQUES
from leandl.techniques.mae import RobustLoss

__all__ = ["reverse_cross_entropy", "sce_loss", "SCE"]


def reverse_cross_entropy(logits: Tensor, targets_soft: Tensor, log_zero: float = -4.0) -> Tensor:
    """Per-sample ``-sum_k p_k max(log q_k, A)`` (``-A (1 - p_y)`` for one-hot), shape ``(B,)``."""
    p = F.softmax(logits.float(), dim=-1)
    t = targets_soft.float()
    log_q = torch.where(t > 0, t.clamp_min(1e-30).log(), torch.full_like(t, log_zero)).clamp_min(log_zero)
    return -(p * log_q).sum(dim=-1)


@LOSSES.register("sce")
def sce_loss(logits: Tensor, targets_soft: Tensor, alpha: float = 0.1, beta: float = 1.0,
             log_zero: float = -4.0) -> Tensor:
    """Per-sample ``alpha * CE(q, p) + beta * RCE(p, q)``, shape ``(B,)``."""
    if log_zero >= 0:
        raise ValueError(f"log_zero (A) must be < 0, got {log_zero}")
    ce = -(targets_soft.float() * F.log_softmax(logits.float(), dim=-1)).sum(dim=-1)
    return alpha * ce + beta * reverse_cross_entropy(logits, targets_soft, log_zero)


@TECHNIQUES.register("sce")
class SCE(RobustLoss):
    """Symmetric cross entropy ``alpha CE + beta RCE`` (arXiv 1908.06112)."""

    name = "sce"

    def __init__(self, alpha: float = 0.1, beta: float = 1.0, log_zero: float = -4.0) -> None:
        if alpha < 0 or beta < 0:
            raise ValueError(f"alpha and beta must be >= 0, got alpha={alpha}, beta={beta}")
        if log_zero >= 0:
            raise ValueError(f"log_zero (A) must be < 0, got {log_zero}")
        self.alpha, self.beta, self.log_zero = float(alpha), float(beta), float(log_zero)

    def loss(self, logits: Tensor, targets_soft: Tensor) -> Tensor:
        return sce_loss(logits, targets_soft, self.alpha, self.beta, self.log_zero)

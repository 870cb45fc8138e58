"""GCE: generalized cross entropy (Zhang & Sabuncu, NeurIPS 2018, arXiv 1805.07836).

What: the negative Box-Cox transform of ``p_y``: ``L_q = (1 - p_y^q) / q``, ``q`` in (0, 1];
``q -> 0`` recovers CE, ``q = 1`` is MAE / 2. For soft targets ``L = sum_k q_k (1 - p_k^q) / q``.
Logit gradient ``p_y^q (p - q_vec)``: CE's gradient down-weighted for low-confidence
(likely mislabelled) samples; weight ``2 p_y^q (1 - p_y)``. ``p^q`` is computed as
``exp(q log p)``. Truncated variant (``truncate = k``): samples with ``p_y <= k`` get the
constant ``L_q(k)`` (no gradient), applied per batch (the paper prunes such samples every few
epochs instead).
When: replaces the loss at ``fit_start``. Cost: none. Hyper-parameters: ``q`` = 0.7 (paper,
SCE code), ``truncate`` None or k in (0, 1) (paper: 0.5). Interactions: one loss-replacing
technique per stage.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from leandl.registry import LOSSES, TECHNIQUES
from leandl.techniques.mae import RobustLoss

__all__ = ["gce_loss", "GCE"]


@LOSSES.register("gce")
def gce_loss(logits: Tensor, targets_soft: Tensor, q: float = 0.7, truncate: float | None = None) -> Tensor:
    """Per-sample ``sum_k q_k (1 - p_k^q) / q`` (``(1 - p_y^q)/q`` for one-hot), shape ``(B,)``.

    Args:
        logits: ``(B, K)``.
        targets_soft: ``(B, K)``.
        q: exponent in (0, 1].
        truncate: optional ``k``: samples with ``p_y <= k`` get ``(1 - k^q)/q`` (no gradient).
    """
    if not 0.0 < q <= 1.0:
        raise ValueError(f"q must be in (0, 1], got {q}")
    logp = F.log_softmax(logits.float(), dim=-1)
    t = targets_soft.float()
    loss = (t * (1.0 - torch.exp(q * logp))).sum(dim=-1) / q
    if truncate is None:
        return loss
    p_y = (t * logp.exp()).sum(dim=-1)
    const = torch.full_like(loss, (1.0 - truncate**q) / q)
    return torch.where(p_y.detach() <= truncate, const, loss)


@TECHNIQUES.register("gce")
class GCE(RobustLoss):
    """Generalized cross entropy ``(1 - p_y^q)/q`` (arXiv 1805.07836)."""

    name = "gce"

    def __init__(self, q: float = 0.7, truncate: float | None = None) -> None:
        if not 0.0 < q <= 1.0:
            raise ValueError(f"q must be in (0, 1], got {q}")
        if truncate is not None and not 0.0 < truncate < 1.0:
            raise ValueError(f"truncate must be in (0, 1), got {truncate}")
        self.q, self.truncate = float(q), truncate

    def loss(self, logits: Tensor, targets_soft: Tensor) -> Tensor:
        return gce_loss(logits, targets_soft, self.q, self.truncate)

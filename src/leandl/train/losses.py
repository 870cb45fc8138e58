"""The default loss: cross-entropy against soft targets, per sample."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["soft_cross_entropy", "one_hot"]


def one_hot(targets: Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """One-hot encode integer targets ``(B,)`` -> ``(B, K)``."""
    return F.one_hot(targets.long(), num_classes).to(dtype)


def soft_cross_entropy(logits: Tensor, targets_soft: Tensor) -> Tensor:
    """Per-sample cross-entropy ``-sum_k q_k log softmax(z)_k``.

    Args:
        logits: ``(B, K)`` unnormalised scores.
        targets_soft: ``(B, K)`` target distributions (rows sum to 1).

    Returns:
        ``(B,)`` losses. Equals ``F.cross_entropy(logits, y, reduction="none")`` for one-hot q.
    """
    return -(targets_soft * F.log_softmax(logits, dim=-1)).sum(dim=-1)

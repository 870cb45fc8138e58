"""Pseudo-Label with a warm-up (Lee, ICML-W 2013), as hard self label correction.

What: Lee's loss on a sample with label ``q`` and pseudo-label ``y^ = onehot(argmax p)`` is
``L = H(q, p) + alpha(t) H(y^, p)``. With ``alpha(t)`` = 0 during the warm-up (progress below
``start``), then rising linearly to ``alpha_final`` at ``end`` and constant after (Lee: T1 = 100,
T2 = 600 epochs, alpha_f = 3). We apply it to the labelled (possibly noisy) samples as a target
``q~ = (q + alpha y^) / (1 + alpha) = (1 - eps) q + eps y^`` with ``eps = alpha / (1 + alpha)``,
i.e. Lee's loss divided by ``1 + alpha`` (a per-step constant, equivalent to a learning-rate
scale), so ``targets_soft`` stays a distribution and composes with other revisers. Pseudo-labels
whose confidence ``max p`` is below ``threshold`` are not used (``eps = 0`` for that sample).
In ProSelfLC's terms this is hard label correction with a time-only trust.
When: ``before_loss`` (final output's prediction). Cost: one softmax. Hyper-parameters: ``start``
and ``end`` (fractions of training), ``alpha_final`` >= 0, ``threshold`` in [0, 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from leandl.registry import TECHNIQUES
from leandl.train.state import State
from leandl.train.technique import Technique

__all__ = ["pseudo_label_alpha", "pseudo_label_targets", "PseudoLabel"]


def pseudo_label_alpha(progress: float, start: float = 0.2, end: float = 0.6, alpha_final: float = 3.0) -> float:
    """Lee's ramp: 0 before ``start``, linear to ``alpha_final`` at ``end``, constant after."""
    if progress < start:
        return 0.0
    if progress >= end or end <= start:
        return float(alpha_final)
    return float(alpha_final) * (progress - start) / (end - start)


def pseudo_label_targets(targets_soft: Tensor, logits: Tensor, alpha: float, threshold: float = 0.0) -> Tensor:
    """``(q + alpha * m * y^) / (1 + alpha * m)``, ``y^ = onehot(argmax p)``, ``m = [max p >= threshold]``."""
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    with torch.no_grad():
        p = F.softmax(logits.detach().float(), dim=-1)
        conf, pred = p.max(dim=-1)
        a = alpha * (conf >= threshold).to(targets_soft.dtype)[:, None]
        y_hat = F.one_hot(pred, logits.shape[-1]).to(targets_soft.dtype)
    return (targets_soft + a * y_hat) / (1.0 + a)


@TECHNIQUES.register("pseudo_label")
class PseudoLabel(Technique):
    """Hard pseudo-label targets with Lee's warm-up ramp (Lee 2013)."""

    name = "pseudo_label"

    def __init__(self, start: float = 0.2, end: float = 0.6, alpha_final: float = 3.0,
                 threshold: float = 0.0) -> None:
        if not 0.0 <= start <= end <= 1.0:
            raise ValueError(f"need 0 <= start <= end <= 1, got start={start}, end={end}")
        if alpha_final < 0:
            raise ValueError(f"alpha_final must be >= 0, got {alpha_final}")
        if not 0.0 <= threshold < 1.0:
            raise ValueError(f"threshold must be in [0, 1), got {threshold}")
        self.start, self.end, self.alpha_final, self.threshold = start, end, alpha_final, threshold

    def before_loss(self, state: State) -> None:
        alpha = pseudo_label_alpha(state.progress, self.start, self.end, self.alpha_final)
        if alpha > 0:
            state.targets_soft = pseudo_label_targets(state.targets_soft, state.final_outputs, alpha,
                                                      self.threshold)

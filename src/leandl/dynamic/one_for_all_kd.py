"""One-for-all knowledge distillation (OFA): the deepest exit teaches every earlier exit.

What: ``L = CE(z_K, y) + sum_{k<K} [(1 - gamma) CE(z_k, y) + gamma T^2 KL(softmax(z_K/T) ||
softmax(z_k/T))]`` with the teacher logits ``z_K`` detached. The soft term reuses
``leandl.distill.kd.kd_loss`` (Hinton's ``T^2 KL``).

When: multi-exit training; IMTA trains the heads with it in a second stage with the backbone
frozen, the GE network's last exit as the teacher.

Cost: one softmax and KL per early exit; no extra forward pass.

Hyper-parameters: ``gamma`` in [0, 1] (IMTA default 0.1), ``temperature`` T > 0 (default 1.0).

Interactions: multiplies existing ``output_weights`` (from ``exit_loss_weights``) of early exits
by ``1 - gamma``; with ``gradient_equilibrium`` the KD gradient is rescaled like the CE one.

Paper: Li et al., "Improved Techniques for Training Adaptive Deep Networks", arXiv 1908.09294.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from leandl.distill.kd import kd_loss
from leandl.dynamic._exits_only import ExitsOnly
from leandl.registry import LOSSES, TECHNIQUES
from leandl.train.state import State
from leandl.train.technique import Technique

__all__ = ["one_for_all_kd_loss", "ofa_kd_term", "OneForAllKD"]


def ofa_kd_term(logits: list[Tensor], temperature: float = 1.0) -> Tensor:
    """``sum_{k<K} T^2 KL(softmax(z_K/T) || softmax(z_k/T))`` (batch mean), teacher detached."""
    teacher = logits[-1].detach()
    total = logits[-1].new_zeros(())
    for z in logits[:-1]:
        total = total + kd_loss(z, teacher, temperature)
    return total


@LOSSES.register("one_for_all_kd")
def one_for_all_kd_loss(logits: list[Tensor], targets: Tensor, gamma: float = 0.1,
                        temperature: float = 1.0) -> Tensor:
    """The full OFA loss for a list of exit logits ``[(B, C)] * K`` and integer targets ``(B,)``.

    Example:
        >>> z = [torch.zeros(2, 3), torch.zeros(2, 3)]
        >>> one_for_all_kd_loss(z, torch.tensor([0, 1]))  # CE only: 2 * log 3 * 0.9 + ...
    """
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must lie in [0, 1], got {gamma}")
    ce = [F.cross_entropy(z, targets) for z in logits]
    early = torch.stack(ce[:-1]).sum() if len(ce) > 1 else ce[-1].new_zeros(())
    return ce[-1] + (1 - gamma) * early + gamma * ofa_kd_term(logits, temperature)


@TECHNIQUES.register("one_for_all_kd")
class OneForAllKD(ExitsOnly, Technique):
    """IMTA one-for-all KD: the last exit distils into every earlier exit (arXiv 1908.09294).

    Args:
        gamma: weight of the distillation term, in [0, 1].
        temperature: softmax temperature T > 0.
    """

    name = "one_for_all_kd"

    def __init__(self, gamma: float = 0.1, temperature: float = 1.0) -> None:
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must lie in [0, 1], got {gamma}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.gamma, self.temperature = float(gamma), float(temperature)
        self._last = 0.0

    def before_loss(self, state: State) -> None:
        """Scale the early exits' CE weights by ``1 - gamma``."""
        outs = state.outputs
        if not isinstance(outs, list | tuple) or len(outs) < 2:
            return
        w = state.output_weights or [1.0] * len(outs)
        state.output_weights = [x * (1 - self.gamma) for x in w[:-1]] + [w[-1]]

    def after_loss(self, state: State) -> None:
        """Add ``gamma * sum_k T^2 KL(teacher || exit k)``."""
        outs = state.outputs
        if not isinstance(outs, list | tuple) or len(outs) < 2:
            return
        term = self.gamma * ofa_kd_term(list(outs), self.temperature)
        state.add_loss_term("one_for_all_kd", term)
        self._last = float(term.detach())

    def summary(self) -> dict[str, Any]:
        """The last KD term value."""
        return {"one_for_all_kd_last": self._last}

"""Be Your Own Teacher: self-distillation from the deepest exit (Zhang, Song, Gao, Chen, Bao, Ma,
ICCV 2019, arXiv 1905.08094).

What: in a network with several classifiers (early exits), the deepest classifier teaches the
shallower ones. For each shallow output ``q_i``:
``(1 - alpha) CE(q_i, y) + alpha T^2 KL(q_C^T || q_i^T)`` with the deepest output ``q_C`` detached;
the deepest output is trained with CE only. Implemented form: the logit terms only; BYOT's
third term ``lambda ||F_i - F_C||^2`` (feature hints from the deepest stage through bottlenecks)
is left to :mod:`leandl.distill.fitnet`, since exit features differ in shape per model.
Mechanics in leandl: works with any model whose forward returns a list of logits ordered
shallow -> deep (leandl.dynamic's early-exit wrapper, or your own); this technique sets
``state.output_weights = [1 - alpha, ..., 1 - alpha, 1]`` for the trainer's CE and adds the KL
terms; accuracy during training reads the last (deepest) output.
When: multi-exit / anytime networks; also improves the deepest classifier (regularisation).
Cost: none beyond the exits' own. Hyper-parameters: ``alpha`` (0.1 unofficial code, ~0.3 paper),
``temperature`` (3).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from leandl.distill._common import as_list, tempered_kl
from leandl.registry import TECHNIQUES
from leandl.train.state import State
from leandl.train.technique import Technique

__all__ = ["self_distill_loss", "SelfDistillation"]


def self_distill_loss(outputs: Sequence[Tensor], temperature: float = 3.0) -> Tensor:
    """``sum_{i < last} T^2 KL(q_last^T || q_i^T)`` (batch means, deepest output detached)."""
    outs = list(outputs)
    if len(outs) < 2:
        raise ValueError(f"self-distillation needs at least two outputs, got {len(outs)}")
    teacher = outs[-1].detach()
    return torch.stack([tempered_kl(z, teacher, temperature).mean() for z in outs[:-1]]).sum()


@TECHNIQUES.register("self")
class SelfDistillation(Technique):
    """BYOT: deepest output teaches the shallower exits (arXiv 1905.08094)."""

    name = "self"

    def __init__(self, alpha: float = 0.3, temperature: float = 3.0) -> None:
        if not 0.0 <= alpha <= 1.0 or temperature <= 0:
            raise ValueError("need alpha in [0, 1] and temperature > 0")
        self.alpha, self.temperature = float(alpha), float(temperature)

    def before_loss(self, state: State) -> None:
        outs = as_list(state.outputs, self.name)
        base = state.output_weights or [1.0] * len(outs)
        state.output_weights = [w * (1.0 - self.alpha) for w in base[:-1]] + [base[-1]]

    def after_loss(self, state: State) -> None:
        loss = self_distill_loss(as_list(state.outputs, self.name), self.temperature)
        state.add_loss_term("self", self.alpha * loss)

"""Online subclass knowledge distillation, OSKD (Tzelepi, Passalis, Tefas, ICPR 2020).

The paper states the idea (reveal the similarities *within* a class, "subclasses", and use
them as extra targets, online, with the model as its own teacher) but not one closed form
usable here, so this is the exact form leandl implements:

For a batch with tempered probabilities ``p_i = softmax(z_i / T)`` and labels ``y_i``, let
``N_k(i)`` be the ``k`` nearest other samples of the *same class* in the batch, by Euclidean
distance between the detached ``p``'s. The subclass term is::

    L_sub = mean_{i : N_k(i) != {}} mean_{j in N_k(i)} || p_i - sg(p_j) ||_2^2

(``sg`` = stop-gradient: the neighbours act as the teacher), and the loss is
``CE + weight * L_sub``. A sample is thus pulled towards its closest same-class neighbours -
its subclass - rather than towards the whole class; samples with no same-class neighbour in
the batch add nothing. With ``k = 1`` it is nearest-neighbour self-distillation.
When: single model, no teacher, classes with internal structure. Cost: a ``B x B`` distance
matrix per step. Hyper-parameters: ``k`` (3), ``temperature`` (2), ``weight`` (1).
For multi-output models the last output is used.
"""

from __future__ import annotations

import torch
from torch import Tensor

from leandl.distill._common import final_logits
from leandl.registry import LOSSES, TECHNIQUES
from leandl.train.state import State
from leandl.train.technique import Technique

__all__ = ["subclass_loss", "SubclassDistillation"]


@LOSSES.register("subclass")
def subclass_loss(logits: Tensor, targets: Tensor, k: int = 3, temperature: float = 2.0) -> Tensor:
    """``mean_i mean_{j in kNN_same(i)} ||p_i - sg(p_j)||^2`` over samples with a neighbour.

    Args:
        logits: ``(B, C)``.
        targets: ``(B,)`` integer labels.
        k: neighbours per sample (fewer when the class has fewer other samples in the batch).
        temperature: T of the softmax.

    Returns:
        A scalar (0 when no sample has a same-class neighbour).
    """
    if k < 1 or temperature <= 0:
        raise ValueError("need k >= 1 and temperature > 0")
    p = torch.softmax(logits / temperature, dim=-1)
    pd = p.detach()
    b = p.shape[0]
    with torch.no_grad():
        dist = torch.cdist(pd, pd)
        same = targets[:, None] == targets[None, :]
        same.fill_diagonal_(False)
        dist = dist.masked_fill(~same, float("inf"))
        kk = min(k, max(b - 1, 1))
        nd, nidx = dist.topk(kk, dim=1, largest=False)
        valid = torch.isfinite(nd)  # (B, kk)
    if not bool(valid.any()):
        return logits.new_zeros(())
    sq = (p[:, None, :] - pd[nidx]).pow(2).sum(dim=-1)  # (B, kk)
    per = (sq * valid).sum(dim=1) / valid.sum(dim=1).clamp_min(1)
    has = valid.any(dim=1)
    return per[has].mean()


@TECHNIQUES.register("subclass")
class SubclassDistillation(Technique):
    """Online subclass self-distillation to same-class nearest neighbours (OSKD, ICPR 2020)."""

    name = "subclass"

    def __init__(self, k: int = 3, temperature: float = 2.0, weight: float = 1.0) -> None:
        if k < 1 or temperature <= 0 or weight < 0:
            raise ValueError("need k >= 1, temperature > 0 and weight >= 0")
        self.k, self.temperature, self.weight = int(k), float(temperature), float(weight)

    def after_loss(self, state: State) -> None:
        loss = subclass_loss(final_logits(state.outputs), state.targets, self.k, self.temperature)
        state.add_loss_term("subclass", self.weight * loss)

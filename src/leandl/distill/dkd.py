"""Decoupled knowledge distillation (Zhao, Cui, Song, Qiu, Liang, CVPR 2022, arXiv 2203.08679).

What: split the KD term into a target-class part (TCKD, binary ``[p_y, 1 - p_y]``) and a
non-target part (NCKD, the distribution renormalised over the other classes). With
``b = [p_y, 1 - p_y]`` and ``p^`` over classes ``j != y``, per sample at temperature T::

    KL(p_t || p_s) = KL(b_t || b_s) + (1 - p_t,y) KL(p^_t || p^_s)   (= TCKD + (1 - p_t,y) NCKD)

KD therefore couples NCKD to the teacher's non-target mass; DKD decouples the weights:
``DKD = T^2 (alpha TCKD + beta NCKD)``; loss ``CE + min(epoch / warmup, 1) DKD``.
When: like KD; stronger when the teacher is confident (small ``1 - p_t,y`` hides NCKD in KD).
Cost: as KD. Hyper-parameters [mdistiller]: alpha = 1, beta = 8 / 2 / 6 by pair (CIFAR-100),
T = 4, warm-up 20 epochs (here ``warmup`` is a fraction of training, default 0.1).
Interactions: the hard-label loss is left as is (DKD adds to CE, unlike KD's 1 - alpha).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from leandl.distill._base import TeacherTechnique
from leandl.distill._common import final_logits
from leandl.distill.teachers import TeacherLike, TeacherSet
from leandl.registry import LOSSES, TECHNIQUES
from leandl.train.state import State

__all__ = ["dkd_parts", "dkd_loss", "DecoupledKD"]


def _binary_log_probs(logits: Tensor, mask: Tensor) -> Tensor:
    """``log [p_y, 1 - p_y]`` computed stably from logits, shape ``(B, 2)``."""
    lse_all = torch.logsumexp(logits, dim=-1)
    log_py = logits.gather(1, mask.long().argmax(dim=1, keepdim=True)).squeeze(1) - lse_all
    log_rest = torch.logsumexp(logits.masked_fill(mask, float("-inf")), dim=-1) - lse_all
    return torch.stack([log_py, log_rest], dim=1)


def dkd_parts(student_logits: Tensor, teacher_logits: Tensor, target: Tensor,
              temperature: float = 4.0) -> tuple[Tensor, Tensor, Tensor]:
    """Per-sample ``(TCKD, NCKD, 1 - p_t,y)`` at temperature T (no ``T^2``), each ``(B,)``.

    ``TCKD + (1 - p_t,y) * NCKD`` equals ``KL(softmax(z_t/T) || softmax(z_s/T))`` per sample.
    The non-target softmax subtracts 1000 from the target logit (mdistiller's trick).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    s, t = student_logits / temperature, teacher_logits.detach() / temperature
    mask = F.one_hot(target.long(), s.shape[-1]).bool()
    bs, bt = _binary_log_probs(s, mask), _binary_log_probs(t, mask)
    tckd = (bt.exp() * (bt - bs)).sum(dim=1)
    ls_hat = F.log_softmax(s - 1000.0 * mask, dim=-1)
    lt_hat = F.log_softmax(t - 1000.0 * mask, dim=-1)
    nckd = (lt_hat.exp() * (lt_hat - ls_hat)).masked_fill(mask, 0.0).sum(dim=1)
    return tckd, nckd, -torch.expm1(bt[:, 0])


@LOSSES.register("dkd")
def dkd_loss(student_logits: Tensor, teacher_logits: Tensor, target: Tensor, alpha: float = 1.0,
             beta: float = 8.0, temperature: float = 4.0) -> Tensor:
    """``T^2 mean_b (alpha TCKD + beta NCKD)`` (arXiv 2203.08679, eq. 4 with T^2 as in mdistiller)."""
    tckd, nckd, _ = dkd_parts(student_logits, teacher_logits, target, temperature)
    return temperature**2 * (alpha * tckd + beta * nckd).mean()


@TECHNIQUES.register("dkd")
class DecoupledKD(TeacherTechnique):
    """Decoupled KD: alpha TCKD + beta NCKD with warm-up (arXiv 2203.08679)."""

    name = "dkd"

    def __init__(self, teacher: TeacherLike | TeacherSet | None = None, alpha: float = 1.0, beta: float = 8.0,
                 temperature: float = 4.0, warmup: float = 0.1, teachers: list[TeacherLike] | None = None,
                 weights: Sequence[float] | None = None,
                 weighting: Literal["fixed", "confidence"] = "fixed", cache: bool | None = None) -> None:
        if temperature <= 0 or alpha < 0 or beta < 0:
            raise ValueError("need temperature > 0, alpha >= 0 and beta >= 0")
        if not 0.0 <= warmup <= 1.0:
            raise ValueError(f"warmup is a fraction of training in [0, 1], got {warmup}")
        self.alpha, self.beta, self.temperature, self.warmup = float(alpha), float(beta), float(temperature), warmup
        super().__init__(teacher, teachers, weights, weighting, cache)

    def after_loss(self, state: State) -> None:
        ramp = 1.0 if self.warmup <= 0 else min(state.progress / self.warmup, 1.0)
        loss = dkd_loss(final_logits(state.outputs), self.teacher_logits, state.targets,
                        self.alpha, self.beta, self.temperature)
        state.add_loss_term("dkd", ramp * loss)

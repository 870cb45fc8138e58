"""Knowledge distillation (Hinton, Vinyals, Dean, "Distilling the Knowledge in a Neural Network",
arXiv 1503.02531).

What: train the student on a mix of the hard labels and the teacher's softened outputs,
``L = (1 - alpha) CE(y, p_s) + alpha T^2 KL(softmax(z_t / T) || softmax(z_s / T))``.
The gradient of the soft term w.r.t. a student logit is ``T (p_s^T - p_t^T)`` (per sample),
so ``T^2`` keeps it on the scale of the hard-label gradient as ``T`` changes.
When: compressing a trained teacher into a smaller student; also as a label-noise regulariser
(the teacher's soft targets correct wrong labels).
Cost: one teacher forward per step (none after the first epoch when the data is not augmented:
teacher logits are cached by sample index).
Hyper-parameters: ``temperature`` T > 0 (4 on CIFAR-100, 1 on ImageNet), ``alpha`` in [0, 1]
(0.9 on CIFAR-100 in RepDistiller / mdistiller).
Interactions: the hard-label part is the trainer's loss at ``after_loss`` scaled by ``1 - alpha``,
so target revisers (label smoothing) still act on it; for multi-output students the last
output is distilled.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from torch import Tensor

from leandl.distill._base import TeacherTechnique
from leandl.distill._common import final_logits, tempered_kl
from leandl.distill.teachers import TeacherLike, TeacherSet
from leandl.registry import LOSSES, TECHNIQUES
from leandl.train.state import State

__all__ = ["kd_loss", "KnowledgeDistillation"]


@LOSSES.register("kd")
def kd_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 4.0,
            reduction: Literal["mean", "none"] = "mean") -> Tensor:
    """Hinton's soft-target term ``T^2 KL(softmax(z_t/T) || softmax(z_s/T))``.

    Args:
        student_logits: ``(B, C)``.
        teacher_logits: ``(B, C)``, treated as constants (detached here).
        temperature: T > 0.
        reduction: ``mean`` over the batch or ``none`` (per sample, ``(B,)``).

    Returns:
        The loss; its gradient w.r.t. ``student_logits`` (mean reduction) is
        ``T (softmax(z_s/T) - softmax(z_t/T)) / B``.

    Example:
        >>> kd_loss(torch.zeros(1, 2), torch.zeros(1, 2))
        tensor(0.)
    """
    per = tempered_kl(student_logits, teacher_logits.detach(), temperature)
    return per.mean() if reduction == "mean" else per


@TECHNIQUES.register("kd")
class KnowledgeDistillation(TeacherTechnique):
    """Hinton KD (arXiv 1503.02531); several teachers: DLAD weighting simplified to max-prob confidence."""

    name = "kd"

    def __init__(self, teacher: TeacherLike | TeacherSet | None = None, temperature: float = 4.0,
                 alpha: float = 0.9, teachers: list[TeacherLike] | None = None,
                 weights: Sequence[float] | None = None,
                 weighting: Literal["fixed", "confidence"] = "fixed", cache: bool | None = None) -> None:
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        self.temperature, self.alpha = float(temperature), float(alpha)
        super().__init__(teacher, teachers, weights, weighting, cache)

    def after_loss(self, state: State) -> None:
        state.loss = state.loss * (1.0 - self.alpha)
        soft = kd_loss(final_logits(state.outputs), self.teacher_logits, self.temperature)
        state.add_loss_term("kd", self.alpha * soft)

"""Base class of the teacher-based techniques (kd, dkd, fitnet, attention, rkd).

Wiring shared by every offline distillation technique:

* ``fit_start``: resolve the teacher(s) (see :mod:`leandl.distill.teachers`), decide caching;
* ``after_forward``: run the teacher(s) under ``no_grad`` (or read cached logits) and keep the
  combined teacher logits in ``self.teacher_logits`` (and ``state.extras["teacher_logits"]``);
* ``after_loss``: the subclass adds its term with ``state.add_loss_term``;
* ``fit_end``: remove feature hooks.

Subclasses that read the teacher's features set ``needs_teacher_features = True``: the
teacher then runs every step (caching is for logits only).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from torch import Tensor

from leandl.distill.teachers import TeacherLike, TeacherSet, as_teacher_set
from leandl.train.state import State
from leandl.train.technique import Technique

__all__ = ["TeacherTechnique"]


class TeacherTechnique(Technique):
    """Runs the teacher(s) at ``after_forward``; subclasses add a loss at ``after_loss``.

    Args:
        teacher: one teacher (module, checkpoint dir, mapping) or a prepared :class:`TeacherSet`.
        teachers: more teachers (combined with ``weights`` / ``weighting``).
        weights: fixed weight per teacher.
        weighting: ``fixed`` or ``confidence``.
        cache: cache teacher logits by sample index (None: when the data is not augmented).
    """

    needs_teacher_features: ClassVar[bool] = False
    temperature: float = 1.0

    def __init__(self, teacher: TeacherLike | TeacherSet | None = None,
                 teachers: Sequence[TeacherLike] | None = None, weights: Sequence[float] | None = None,
                 weighting: str = "fixed", cache: bool | None = None) -> None:
        self.teacher_set = as_teacher_set(teacher, teachers, weights, weighting, cache, self.name)
        self.teacher_logits: Tensor | None = None
        self.teacher_all: list[Tensor] = []

    def fit_start(self, state: State) -> None:
        self.teacher_set.setup(state, allow_cache=not self.needs_teacher_features)
        self.setup_features(state)

    def setup_features(self, state: State) -> None:
        """Subclass hook: install feature taps once the teacher is resolved."""

    def after_forward(self, state: State) -> None:
        ts = self.teacher_set
        self.teacher_all = ts.logits(state.inputs, state.indices, state)
        self.teacher_logits = ts.combined(self.teacher_all, self.temperature)
        state.extras["teacher_logits"] = self.teacher_logits

    def fit_end(self, state: State) -> None:
        self.teacher_logits, self.teacher_all = None, []
        self.remove_features()

    def remove_features(self) -> None:
        """Subclass hook: remove feature taps."""

    def summary(self) -> dict[str, Any]:
        return self.teacher_set.summary()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(teachers={len(self.teacher_set.specs)})"



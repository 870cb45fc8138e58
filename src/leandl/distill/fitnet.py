"""FitNets hints (Romero, Ballas, Kahou, Chassang, Gatta, Bengio, ICLR 2015, arXiv 1412.6550).

What: make a student's intermediate ("guided") layer predict the teacher's "hint" layer through
a learned regressor ``r``: ``L_hint = ||u_h(x) - r(v_g(x))||^2`` (mean squared error here,
as in RepDistiller's single-stage variant; total loss ``CE + weight * L_hint``).
Regressor: a 1x1 convolution (``Conv1d``/``Conv2d``) from the student's to the teacher's
channels for feature maps, a ``Linear`` layer for vectors or when one side is a vector (the
map is flattened); the larger spatial map is average-pooled to the smaller one.
Training the regressor: it is owned by the technique, not the student (the student's
checkpoint stays the student), and stepped at ``before_step`` by its own optimizer of the
trainer's class and hyper-parameters with the trainer's current learning rate (see
:class:`leandl.distill._common.AuxParams`); its state is part of the technique's resume state.
When: students much thinner or deeper than the teacher; combine with ``kd`` for stage 2.
Cost: one teacher forward per step (features are not cached), the regressor's MACs.
Hyper-parameters: ``student_layer`` / ``teacher_layer`` (module names; default the middle
exit point of each leandl model), ``weight`` (RepDistiller: 100).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from leandl.distill._base import TeacherTechnique
from leandl.distill._common import AuxParams
from leandl.distill._taps import FeatureTap, check_batch, default_layers, match_spatial
from leandl.distill.teachers import TeacherLike, TeacherSet
from leandl.errors import ModelError
from leandl.registry import LOSSES, TECHNIQUES
from leandl.train.state import State

__all__ = ["build_regressor", "hint_loss", "FitNet", "probe_features"]


def build_regressor(student_shape: Sequence[int], teacher_shape: Sequence[int]) -> nn.Module:
    """The regressor mapping a student feature ``(B, Cs, *S)`` onto a teacher one ``(B, Ct, *T)``.

    Raises:
        ModelError: the ranks cannot be matched (a 1-D map against a 2-D map).
    """
    s, t = list(student_shape), list(teacher_shape)
    if len(s) == len(t) == 3:
        return nn.Conv1d(s[1], t[1], 1, bias=False)
    if len(s) == len(t) == 4:
        return nn.Conv2d(s[1], t[1], 1, bias=False)
    if len(s) == 2 or len(t) == 2:
        return nn.Sequential(nn.Flatten(1), nn.Linear(math.prod(s[1:]), math.prod(t[1:])))
    raise ModelError(f"cannot match feature shapes {tuple(s)} (student) and {tuple(t)} (teacher)",
                     where="fitnet layers", fix="tap layers that are both 1-D maps, both 2-D maps, or vectors")


@LOSSES.register("fitnet")
def hint_loss(student_feat: Tensor, teacher_feat: Tensor, regressor: nn.Module) -> Tensor:
    """Mean squared error between ``regressor(student_feat)`` and ``teacher_feat`` (detached).

    Feature maps of different spatial size are average-pooled to the smaller; a vector side
    compares against the other side flattened.
    """
    check_batch(student_feat, teacher_feat, "fitnet layers")
    pred = regressor(student_feat)
    target = teacher_feat.detach()
    if pred.dim() == 2 or target.dim() == 2:
        return F.mse_loss(pred.flatten(1), target.flatten(1))
    pred, target = match_spatial(pred, target)
    return F.mse_loss(pred, target)


@torch.no_grad()
def probe_features(model: nn.Module, names: Sequence[str], inputs: Tensor, role: str) -> dict[str, Tensor]:
    """Outputs of ``names`` for ``inputs`` from an eval-mode pass (BN statistics untouched)."""
    tap = FeatureTap(model, names, role)
    was = model.training
    model.eval()
    try:
        model(inputs)
        return {n: tap.get(n) for n in names}
    finally:
        model.train(was)
        tap.remove()


def probe_batch(state: State, n: int = 8) -> Tensor:
    """A few training inputs on the state's device (for shape probing)."""
    ds = state.train_loader.dataset
    k = min(n, len(ds))
    try:
        x = ds[list(range(k))][0]
    except Exception:  # a per-sample dataset
        x = torch.stack([ds[i][0] for i in range(k)])
    return x.to(state.device)


@TECHNIQUES.register("fitnet")
class FitNet(TeacherTechnique):
    """FitNets hint loss with a learned 1x1-conv / linear regressor (arXiv 1412.6550)."""

    name = "fitnet"
    needs_teacher_features = True

    def __init__(self, teacher: TeacherLike | TeacherSet | None = None, student_layer: str | None = None,
                 teacher_layer: str | None = None, weight: float = 100.0,
                 teachers: list[TeacherLike] | None = None, weights: Sequence[float] | None = None,
                 weighting: Literal["fixed", "confidence"] = "fixed") -> None:
        if weight < 0:
            raise ValueError(f"weight must be >= 0, got {weight}")
        self.student_layer, self.teacher_layer, self.weight = student_layer, teacher_layer, float(weight)
        self.aux: AuxParams | None = None
        self._pending: dict[str, Any] | None = None
        self._state: State | None = None
        super().__init__(teacher, teachers, weights, weighting, cache=False)

    def setup_features(self, state: State) -> None:
        self._state = state
        sl = self.student_layer or default_layers(state.model, "student", "middle")[0]
        tl = self.teacher_layer or default_layers(self.teacher_set.first, "teacher", "middle")[0]
        self.student_layer, self.teacher_layer = sl, tl
        x = probe_batch(state)
        s = probe_features(state.model, [sl], x, "student")[sl]
        t = probe_features(self.teacher_set.first, [tl], x, "teacher")[tl]
        if self.aux is None:
            self.aux = AuxParams([build_regressor(s.shape, t.shape).to(state.device)])
        hint_loss(s, t, self.aux.modules[0])  # shapes checked now, not at the first step
        self.s_tap = FeatureTap(state.model, [sl], "student")
        self.t_tap = FeatureTap(self.teacher_set.first, [tl], "teacher")
        if self._pending is not None:
            self.aux.load_state_dict(self._pending, state.optimizer)
            self._pending = None

    def after_loss(self, state: State) -> None:
        loss = hint_loss(self.s_tap.get(self.student_layer), self.t_tap.get(self.teacher_layer),
                         self.aux.modules[0])
        state.add_loss_term("fitnet", self.weight * loss)
        self.s_tap.clear()
        self.t_tap.clear()

    def before_step(self, state: State) -> None:
        self.aux.step(state.optimizer)

    def remove_features(self) -> None:
        for tap in (getattr(self, "s_tap", None), getattr(self, "t_tap", None)):
            if tap is not None:
                tap.remove()

    def state_dict(self) -> dict[str, Any]:
        return {"regressor": self.aux.state_dict()} if self.aux is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "regressor" not in state:
            return
        if self.aux is not None and self._state is not None:
            self.aux.load_state_dict(state["regressor"], self._state.optimizer)
        else:
            self._pending = state["regressor"]

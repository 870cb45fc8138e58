"""Relational knowledge distillation (Park, Kim, Lu, Cho, CVPR 2019, arXiv 1904.05068).

What: transfer the *structure* of the teacher's embedding space over a batch, not the
individual outputs. On penultimate embeddings ``t_i`` (teacher) and ``s_i`` (student):

* distance: ``psi_D(i, j) = ||e_i - e_j||_2 / mu`` with ``mu`` the mean non-zero pairwise
  distance of the batch (each network normalised by its own mu);
  ``L_D = Huber(psi_D^S, psi_D^T)`` (smooth-L1, delta 1, mean over pairs);
* angle: ``psi_A(i, j, k) = <u_ij, u_kj>`` with ``u_ij = (e_i - e_j) / ||e_i - e_j||`` (the cosine
  of the angle at j); ``L_A = Huber(psi_A^S, psi_A^T)`` over all triplets (O(B^3) memory);
* ``L = w_d L_D + w_a L_A`` with ``w_d = 25``, ``w_a = 50`` [code].

Embedding dimensions of student and teacher may differ (only distances and angles are compared).
When: any pair of networks with an embedding; complements KD. Cost: one teacher forward per
step and ``B^3`` angle terms. Layers: ``student_layer`` / ``teacher_layer`` (default
``head.flatten``, the pooled penultimate vector of every leandl model).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from leandl.distill._base import TeacherTechnique
from leandl.distill._taps import FeatureTap, check_batch, default_layers
from leandl.distill.fitnet import probe_batch, probe_features
from leandl.distill.teachers import TeacherLike, TeacherSet
from leandl.registry import LOSSES, TECHNIQUES
from leandl.train.state import State

__all__ = ["rkd_distance_loss", "rkd_angle_loss", "rkd_loss", "RelationalKD"]


def _normalised_distances(e: Tensor) -> Tensor:
    d = torch.cdist(e, e)
    mu = d[d > 0].mean() if bool((d > 0).any()) else d.new_ones(())
    return d / mu


def rkd_distance_loss(student: Tensor, teacher: Tensor) -> Tensor:
    """Smooth-L1 between mean-normalised pairwise distance matrices ``(B, B)``."""
    with torch.no_grad():
        td = _normalised_distances(teacher.flatten(1))
    return F.smooth_l1_loss(_normalised_distances(student.flatten(1)), td)


def _angles(e: Tensor) -> Tensor:
    diff = e.unsqueeze(0) - e.unsqueeze(1)  # (B, B, D): diff[j, i] = e_i - e_j
    unit = F.normalize(diff, p=2, dim=2)
    return torch.bmm(unit, unit.transpose(1, 2))  # (B, B, B): [j, i, k] = <u_ij, u_kj>


def rkd_angle_loss(student: Tensor, teacher: Tensor) -> Tensor:
    """Smooth-L1 between the cosines of every triplet's angle ``(B, B, B)``."""
    with torch.no_grad():
        ta = _angles(teacher.flatten(1))
    return F.smooth_l1_loss(_angles(student.flatten(1)), ta)


@LOSSES.register("rkd")
def rkd_loss(student: Tensor, teacher: Tensor, distance_weight: float = 25.0, angle_weight: float = 50.0) -> Tensor:
    """``w_d L_D + w_a L_A`` on embeddings ``(B, Ds)`` and ``(B, Dt)``."""
    check_batch(student, teacher, "rkd layers")
    teacher = teacher.detach()
    return distance_weight * rkd_distance_loss(student, teacher) + angle_weight * rkd_angle_loss(student, teacher)


@TECHNIQUES.register("rkd")
class RelationalKD(TeacherTechnique):
    """Relational KD: distance-wise and angle-wise structure of the batch (arXiv 1904.05068)."""

    name = "rkd"
    needs_teacher_features = True

    def __init__(self, teacher: TeacherLike | TeacherSet | None = None, student_layer: str | None = None,
                 teacher_layer: str | None = None, distance_weight: float = 25.0, angle_weight: float = 50.0,
                 teachers: list[TeacherLike] | None = None, weights: Sequence[float] | None = None,
                 weighting: Literal["fixed", "confidence"] = "fixed") -> None:
        if distance_weight < 0 or angle_weight < 0:
            raise ValueError("distance_weight and angle_weight must be >= 0")
        self.student_layer, self.teacher_layer = student_layer, teacher_layer
        self.distance_weight, self.angle_weight = float(distance_weight), float(angle_weight)
        super().__init__(teacher, teachers, weights, weighting, cache=False)

    def setup_features(self, state: State) -> None:
        sl = self.student_layer or default_layers(state.model, "student", "embedding")[0]
        tl = self.teacher_layer or default_layers(self.teacher_set.first, "teacher", "embedding")[0]
        self.student_layer, self.teacher_layer = sl, tl
        x = probe_batch(state)
        s = probe_features(state.model, [sl], x, "student")[sl]
        t = probe_features(self.teacher_set.first, [tl], x, "teacher")[tl]
        check_batch(s, t, "rkd layers")
        self.s_tap = FeatureTap(state.model, [sl], "student")
        self.t_tap = FeatureTap(self.teacher_set.first, [tl], "teacher")

    def after_loss(self, state: State) -> None:
        loss = rkd_loss(self.s_tap.get(self.student_layer), self.t_tap.get(self.teacher_layer),
                        self.distance_weight, self.angle_weight)
        state.add_loss_term("rkd", loss)
        self.s_tap.clear()
        self.t_tap.clear()

    def remove_features(self) -> None:
        for tap in (getattr(self, "s_tap", None), getattr(self, "t_tap", None)):
            if tap is not None:
                tap.remove()

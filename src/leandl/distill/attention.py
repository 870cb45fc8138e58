"""Attention transfer (Zagoruyko & Komodakis, "Paying More Attention to Attention", ICLR 2017,
arXiv 1612.03928).

What: make the student's spatial attention maps match the teacher's. For a feature map
``A`` of shape ``(B, C, *S)``: ``Q = vec(mean_c |A_c|^p)`` (p = 2), L2-normalised per sample;
loss per pair of layers ``mean((Q_s / ||Q_s|| - Q_t / ||Q_t||)^2)``, summed over the pairs
(RepDistiller / mdistiller form); a spatial mismatch is fixed by adaptive average pooling.
Channel counts may differ (the map averages channels away).
When: conv students and teachers with comparable stages (ResNet -> ResNet); not for vector
features (an MLP has no spatial attention: a :class:`ModelError` says so).
Cost: one teacher forward per step. Hyper-parameters: ``p`` (2), ``weight`` beta (1000),
``student_layers`` / ``teacher_layers`` (module names; default: the exit points of each leandl
model, paired from the deepest).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch.nn.functional as F
from torch import Tensor

from leandl.distill._base import TeacherTechnique
from leandl.distill._taps import FeatureTap, check_batch, default_layers, match_spatial
from leandl.distill.fitnet import probe_batch, probe_features
from leandl.distill.teachers import TeacherLike, TeacherSet
from leandl.errors import ModelError
from leandl.registry import LOSSES, TECHNIQUES
from leandl.train.state import State

__all__ = ["attention_map", "attention_loss", "AttentionTransfer"]


def attention_map(feat: Tensor, p: float = 2.0) -> Tensor:
    """``normalize(vec(mean_c |A_c|^p))``: ``(B, C, *S)`` -> ``(B, prod(S))`` with unit rows."""
    if feat.dim() < 3:
        raise ModelError(f"attention transfer needs feature maps (B, C, L) or (B, C, H, W), got {tuple(feat.shape)}",
                         where="attention layers", fix="tap convolutional layers, or use fitnet/rkd for vectors")
    return F.normalize(feat.abs().pow(p).mean(dim=1).flatten(1), dim=1)


@LOSSES.register("attention")
def attention_loss(student_feats: Sequence[Tensor], teacher_feats: Sequence[Tensor], p: float = 2.0) -> Tensor:
    """Sum over layer pairs of ``mean((Q_s - Q_t)^2)`` (teacher detached)."""
    if len(student_feats) != len(teacher_feats) or not student_feats:
        raise ModelError(f"attention transfer pairs layers one to one; got {len(student_feats)} student and "
                         f"{len(teacher_feats)} teacher layers", where="attention layers")
    total = student_feats[0].new_zeros(())
    for s, t in zip(student_feats, teacher_feats, strict=True):
        check_batch(s, t, "attention layers")
        if s.dim() < 3 or t.dim() < 3:
            attention_map(s if s.dim() < 3 else t, p)  # raises the explanatory error
        s, t = match_spatial(s, t.detach())
        total = total + (attention_map(s, p) - attention_map(t, p)).pow(2).mean()
    return total


@TECHNIQUES.register("attention")
class AttentionTransfer(TeacherTechnique):
    """Attention transfer between paired feature maps (arXiv 1612.03928)."""

    name = "attention"
    needs_teacher_features = True

    def __init__(self, teacher: TeacherLike | TeacherSet | None = None,
                 student_layers: list[str] | None = None, teacher_layers: list[str] | None = None,
                 p: float = 2.0, weight: float = 1000.0, teachers: list[TeacherLike] | None = None,
                 weights: Sequence[float] | None = None,
                 weighting: Literal["fixed", "confidence"] = "fixed") -> None:
        if p <= 0 or weight < 0:
            raise ValueError("need p > 0 and weight >= 0")
        self.student_layers, self.teacher_layers = student_layers, teacher_layers
        self.p, self.weight = float(p), float(weight)
        super().__init__(teacher, teachers, weights, weighting, cache=False)

    def setup_features(self, state: State) -> None:
        sl = list(self.student_layers or default_layers(state.model, "student", "all"))
        tl = list(self.teacher_layers or default_layers(self.teacher_set.first, "teacher", "all"))
        if not (self.student_layers and self.teacher_layers):
            n = min(len(sl), len(tl))
            sl, tl = sl[-n:], tl[-n:]
        self.student_layers, self.teacher_layers = sl, tl
        x = probe_batch(state)
        s = probe_features(state.model, sl, x, "student")
        t = probe_features(self.teacher_set.first, tl, x, "teacher")
        attention_loss([s[n] for n in sl], [t[n] for n in tl], self.p)  # shapes checked now
        self.s_tap = FeatureTap(state.model, sl, "student")
        self.t_tap = FeatureTap(self.teacher_set.first, tl, "teacher")

    def after_loss(self, state: State) -> None:
        loss = attention_loss([self.s_tap.get(n) for n in self.student_layers],
                              [self.t_tap.get(n) for n in self.teacher_layers], self.p)
        state.add_loss_term("attention", self.weight * loss)
        self.s_tap.clear()
        self.t_tap.clear()

    def remove_features(self) -> None:
        for tap in (getattr(self, "s_tap", None), getattr(self, "t_tap", None)):
            if tap is not None:
                tap.remove()

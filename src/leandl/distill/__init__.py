"""Knowledge distillation: logit (KD, DKD), feature (FitNets, attention), relational (RKD),
online (mutual learning, FFL fusion), self (BYOT, subclass) and multi-teacher.

Every method is a pure loss function (usable in a plain PyTorch loop) plus a technique
registered in ``TECHNIQUES`` under its name: ``kd``, ``dkd``, ``fitnet``, ``attention``, ``rkd``,
``mutual``, ``fusion``, ``self``, ``subclass``. Teacher-based techniques take a ``teacher``
(module, checkpoint directory, ``{model: ...}`` or ``{factory: ..., trust: true}``) and optional
extra ``teachers`` with fixed or confidence weights; see :mod:`leandl.distill.teachers`.
Online methods train a multi-output model: :class:`Cohort` (mutual), :class:`FusionCohort`
(fusion) or any model returning a list of logits (self). The recipe stage is ``distill``.

Example (plain loop):
    >>> from leandl.distill import kd_loss
    >>> loss = ce + 0.9 * kd_loss(student(x), teacher(x).detach(), temperature=4.0)  # doctest: +SKIP
"""

from __future__ import annotations

from leandl.distill.attention import AttentionTransfer, attention_loss, attention_map
from leandl.distill.dkd import DecoupledKD, dkd_loss, dkd_parts
from leandl.distill.fitnet import FitNet, build_regressor, hint_loss
from leandl.distill.fusion import FusionCohort, FusionLearning, FusionModule, build_fusion_cohort, fusion_loss
from leandl.distill.kd import KnowledgeDistillation, kd_loss
from leandl.distill.mutual import Cohort, MutualLearning, build_cohort, mutual_loss
from leandl.distill.rkd import RelationalKD, rkd_angle_loss, rkd_distance_loss, rkd_loss
from leandl.distill.self_distill import SelfDistillation, self_distill_loss
from leandl.distill.subclass import SubclassDistillation, subclass_loss
from leandl.distill.teachers import TeacherSet, combine_teachers, confidence_weights, load_teacher

__all__ = [
    "kd_loss", "KnowledgeDistillation", "dkd_loss", "dkd_parts", "DecoupledKD",
    "hint_loss", "build_regressor", "FitNet", "attention_map", "attention_loss", "AttentionTransfer",
    "rkd_distance_loss", "rkd_angle_loss", "rkd_loss", "RelationalKD",
    "mutual_loss", "Cohort", "build_cohort", "MutualLearning",
    "fusion_loss", "FusionModule", "FusionCohort", "FusionLearning", "build_fusion_cohort",
    "self_distill_loss", "SelfDistillation", "subclass_loss", "SubclassDistillation",
    "TeacherSet", "load_teacher", "combine_teachers", "confidence_weights",
]

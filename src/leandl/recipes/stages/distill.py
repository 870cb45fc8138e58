"""The ``distill`` stage: train a student against one or more frozen teachers.

Recipe keys (plus every training default, like a ``train`` stage)::

    - kind: distill
      teacher: {stage: 0}                 # or {checkpoint: DIR} | {model: NAME, kwargs: {}} |
                                          #    {factory: "pkg.mod:fn", trust: true}
      teachers: [{checkpoint: A, weight: 2}, {checkpoint: B}]   # optional, more teachers
      weighting: fixed                    # or confidence (DLAD-style per-sample weights)
      student: {name: mlp, kwargs: {hidden: [64]}}              # optional
      loss: kd                            # kd | dkd | fitnet | attention | rkd (teacher losses)
                                          # mutual | fusion | self | subclass (online, no teacher)
      loss_kwargs: {temperature: 4, alpha: 0.9}
      cache: null                         # teacher-logit cache; null = on when data is not augmented
      epochs: 20
      techniques: [...]                   # any other techniques

Teacher from this run: ``{stage: i}`` is the checkpoint written by stage ``i`` (0-based
position in ``stages``, directory ``stages/{i+1:02d}-KIND/model``) of the same run; it must
come before this stage. The usual pattern is ``train`` (the big model, from ``model:``) then
``distill`` with ``teacher: {stage: 0}`` and a fresh ``student``.

Student: ``student`` builds a fresh registry model sized to the data (seeded with the recipe
seed); without it the student is the current model (``ctx.model``: e.g. the pruned model of
an earlier ``prune`` stage, distilled from the unpruned ``{stage: 0}``). The stage's output
(checkpoint, measurements, next stage's model) is the student.

Online losses train without a teacher (giving one is an error): ``mutual`` (DML) needs a
cohort student (``student: {name: cohort, kwargs: {model: mlp, k: 2}}``), ``fusion`` (FFL) a
fusion cohort (``{name: fusion_cohort, kwargs: {model: mnist1d_cnn, k: 2}}``), ``self`` (BYOT)
a multi-exit student (the model of an earlier ``exits`` stage), ``subclass`` (OSKD) any model.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field, model_validator

from leandl.errors import ConfigError
from leandl.recipes.context import RunContext
from leandl.recipes.schema import Strict, TechniqueEntry, TrainOverrides
from leandl.recipes.stage import Stage, StageResult
from leandl.registry import STAGES, TECHNIQUES
from leandl.train.trainer import Trainer

__all__ = ["DistillStage", "DistillOptions", "TeacherConfig", "StudentConfig"]

_TEACHER_LOSSES = ("kd", "dkd", "fitnet", "attention", "rkd")
_ONLINE_LOSSES = ("mutual", "fusion", "self", "subclass")
_LOSSES = _TEACHER_LOSSES + _ONLINE_LOSSES


class TeacherConfig(Strict):
    """One teacher: exactly one of ``stage``, ``checkpoint``, ``model``, ``factory``."""

    stage: int | None = Field(None, ge=0)
    checkpoint: str | None = None
    model: str | None = None
    factory: str | None = None
    kwargs: dict[str, Any] = Field(default_factory=dict)
    trust: bool = False
    weight: float = Field(1.0, ge=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _one_source(self) -> TeacherConfig:
        given = [k for k in ("stage", "checkpoint", "model", "factory") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of stage / checkpoint / model / factory, got {given or 'none'}")
        return self


class StudentConfig(Strict):
    """A fresh student: a registry name (or trusted import path) with kwargs."""

    name: str
    kwargs: dict[str, Any] = Field(default_factory=dict)


class DistillOptions(TrainOverrides):  # type: ignore[misc, valid-type]
    """Options of a ``distill`` stage (see the module docstring)."""

    name: str | None = None
    teacher: TeacherConfig | None = None
    teachers: list[TeacherConfig] = Field(default_factory=list)
    weighting: Literal["fixed", "confidence"] = "fixed"
    student: StudentConfig | None = None
    loss: Literal["kd", "dkd", "fitnet", "attention", "rkd", "mutual", "fusion", "self", "subclass"] = "kd"
    loss_kwargs: dict[str, Any] = Field(default_factory=dict)
    cache: bool | None = None
    techniques: list[TechniqueEntry] = Field(default_factory=list)

    @model_validator(mode="after")
    def _has_teacher(self) -> DistillOptions:
        online = self.loss in _ONLINE_LOSSES
        if online and (self.teacher is not None or self.teachers):
            raise ValueError(f"loss '{self.loss}' is online distillation (no teacher): remove 'teacher'/'teachers'")
        if not online and self.teacher is None and not self.teachers:
            raise ValueError(f"loss '{self.loss}' needs 'teacher' (or 'teachers'); online losses "
                             f"({', '.join(_ONLINE_LOSSES)}) need none")
        return self


def teacher_spec(ctx: RunContext, cfg: TeacherConfig, where: str) -> dict[str, Any]:
    """The :mod:`leandl.distill.teachers` mapping of one teacher entry (``stage`` resolved)."""
    if cfg.stage is None:
        return cfg.model_dump(exclude={"stage"}, exclude_none=True)
    from leandl.recipes.rundir import stage_dir_name

    if cfg.stage >= ctx.stage_index:
        raise ConfigError(f"teacher stage {cfg.stage} does not come before this stage ({ctx.stage_index})",
                          where=f"{where}.stage", fix="name an earlier stage (0-based position in stages)")
    kind = ctx.recipe.stages[cfg.stage].kind
    path = ctx.out_dir / "stages" / stage_dir_name(cfg.stage, kind) / "model"
    if not path.exists():
        raise ConfigError(f"stage {cfg.stage} ({kind}) wrote no checkpoint at {path}", where=f"{where}.stage")
    return {"checkpoint": str(path), "trust": cfg.trust or ctx.recipe.model.trust, "weight": cfg.weight}


def build_student(ctx: RunContext, cfg: StudentConfig | None) -> torch.nn.Module:
    """A fresh student sized to the data, or the current model."""
    if cfg is None:
        return ctx.model
    from leandl.models import create_model

    torch.manual_seed(ctx.recipe.seed)
    kwargs = {"num_classes": ctx.data.num_classes, "input_shape": list(ctx.data.input_shape), **cfg.kwargs}
    return create_model(cfg.name, **kwargs).to(ctx.device)


def build_distill_technique(ctx: RunContext, opts: DistillOptions) -> Any:
    """The loss technique with its :class:`~leandl.distill.teachers.TeacherSet`."""
    from leandl.distill.teachers import TeacherSet
    from leandl.recipes.techniques import check_technique

    where = f"stages[{ctx.stage_index}]"
    check_technique({"name": opts.loss, **opts.loss_kwargs}, f"{where}.loss_kwargs")
    if opts.loss in _ONLINE_LOSSES:
        try:
            return TECHNIQUES.get(opts.loss)(**opts.loss_kwargs)
        except (TypeError, ValueError) as exc:
            raise ConfigError(str(exc), where=f"{where}.loss_kwargs", fix="correct the loss's arguments") from None
    entries = ([opts.teacher] if opts.teacher is not None else []) + list(opts.teachers)
    specs = [teacher_spec(ctx, t, f"{where}.teacher" if i == 0 and opts.teacher else f"{where}.teachers[{i}]")
             for i, t in enumerate(entries)]
    cache = opts.cache if opts.cache is not None else not bool(getattr(ctx.data, "augmented", False))
    tset = TeacherSet(specs, [t.weight for t in entries], opts.weighting, cache)
    try:
        return TECHNIQUES.get(opts.loss)(teacher=tset, **opts.loss_kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc), where=f"{where}.loss_kwargs", fix="correct the loss's arguments") from None


@STAGES.register("distill")
class DistillStage(Stage):
    """Train a student (fresh or the current model) against frozen teacher(s)."""

    kind = "distill"
    Options = DistillOptions
    trains = True

    def run(self, ctx: RunContext) -> StageResult:
        opts: DistillOptions = self.options
        cfg = ctx.train_config(opts)
        student = build_student(ctx, opts.student)
        techniques = [build_distill_technique(ctx, opts), *ctx.build_techniques(opts.techniques)]
        if getattr(ctx.data, "noise", None) is not None and "noise_monitor" in TECHNIQUES:
            techniques.append(TECHNIQUES.get("noise_monitor")(ctx.data))
        trainer = Trainer(
            student, cfg, train_data=ctx.data.train, val_data=ctx.data.val, num_classes=ctx.data.num_classes,
            techniques=techniques, device=ctx.device, run_dir=ctx.stage_dir if ctx.is_main else None,
            logger=ctx.stage_logger(), resume=ctx.resume, rank=ctx.rank, world_size=ctx.world_size,
            description=opts.name or f"distill ({opts.loss})",
        )
        result = trainer.fit()
        if result.metrics.get("teacher_cache"):
            ctx.stage_logger().log({"event": "teacher_cache", "hit_samples": result.metrics.get(
                "teacher_cache_hit_samples"), "forward_samples": result.metrics.get("teacher_forward_samples")})
        return StageResult(model=result.model, metrics=result.metrics,
                           artifacts={"teachers": [s.get("checkpoint") for s in _specs_of(techniques[0])]})


def _specs_of(tech: Any) -> list[dict[str, Any]]:
    tset = getattr(tech, "teacher_set", None)  # online losses have none
    return [s for s in tset.specs if isinstance(s, dict)] if tset is not None else []

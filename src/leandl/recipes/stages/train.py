"""The ``train`` stage: train (or fine-tune) the current model with techniques."""

from __future__ import annotations

from pydantic import Field

from leandl.recipes.context import RunContext
from leandl.recipes.schema import TechniqueEntry, TrainOverrides
from leandl.recipes.stage import Stage, StageResult
from leandl.registry import STAGES
from leandl.train.trainer import Trainer

__all__ = ["TrainStage", "TrainOptions"]


class TrainOptions(TrainOverrides):  # type: ignore[misc, valid-type]
    """Options of a ``train`` stage: any training default to override, plus techniques."""

    name: str | None = None
    techniques: list[TechniqueEntry] = Field(default_factory=list)


def run_training(ctx: RunContext, options: TrainOptions, description: str = "train") -> StageResult:
    """Train ``ctx.model`` with the stage's settings and techniques; shared by stage kinds."""
    cfg = ctx.train_config(options)
    techniques = ctx.build_techniques(options.techniques)
    if getattr(ctx.data, "noise", None) is not None:
        # label noise is on: report clean-train accuracy, memorisation and correction
        from leandl.registry import TECHNIQUES

        techniques.append(TECHNIQUES.get("noise_monitor")(ctx.data))
    trainer = Trainer(
        ctx.model, cfg, train_data=ctx.data.train, val_data=ctx.data.val,
        num_classes=ctx.data.num_classes, techniques=techniques, device=ctx.device,
        run_dir=ctx.stage_dir, logger=ctx.stage_logger(),
        resume=ctx.resume, rank=ctx.rank, world_size=ctx.world_size, description=description,
    )
    result = trainer.fit()
    keep = result.metrics.pop("early_bird_keep", None)  # an early-bird ticket for the next prune stage
    artifacts = {"prune_keep": keep} if keep else {}
    return StageResult(model=result.model, metrics=result.metrics, artifacts=artifacts)


@STAGES.register("train")
class TrainStage(Stage):
    """Train or fine-tune the current model (techniques hook into the loop)."""

    kind = "train"
    Options = TrainOptions
    trains = True

    def run(self, ctx: RunContext) -> StageResult:
        return run_training(ctx, self.options, description=self.options.name or "train")

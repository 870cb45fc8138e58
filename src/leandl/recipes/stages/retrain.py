"""The ``retrain`` stage: lottery-ticket rewinding and from-scratch baselines for a pruned model.

Options (besides every training setting a ``train`` stage takes):

* ``init: rewind`` — reset the survivors to the dense weights stored by the ``rewind_point``
  technique of an earlier ``train`` stage (IMP with rewinding), then retrain for ``epochs``.
* ``init: scratch`` — re-initialise the pruned architecture and train it for Scratch-E
  (``budget: E``, the stage's epochs) or Scratch-B (``budget: B``: epochs x MACs_full /
  MACs_pruned, at most ``cap`` x epochs; MACs_full is the dense model rebuilt from the spec).

Exact zeros of an unstructured-pruned model are held at zero while retraining. See
:mod:`leandl.prune.schedules.lottery` for the method card.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from leandl.errors import ConfigError
from leandl.recipes.context import RunContext
from leandl.recipes.stage import Stage, StageResult
from leandl.recipes.stages.train import TrainOptions, run_training
from leandl.registry import STAGES

__all__ = ["RetrainOptions", "RetrainStage"]


class RetrainOptions(TrainOptions):
    """Options of a ``retrain`` stage (see the module docstring)."""

    init: Literal["rewind", "scratch"] = "scratch"
    budget: Literal["E", "B"] = "E"
    cap: float = Field(2.0, ge=1.0, le=1000.0)
    hold_zeros: bool = True


def _dense_macs(ctx: RunContext) -> int:
    from leandl.measure import count_macs
    from leandl.models import create_model
    from leandl.spec import get_spec

    spec = get_spec(ctx.model)
    if spec is None:
        raise ConfigError("budget B needs the dense model's MACs, but the model has no build spec",
                          where=f"stages[{ctx.stage_index}].budget", fix="use budget: E")
    return count_macs(create_model(spec["name"], **spec["kwargs"]), ctx.example_input(1).cpu()).total


@STAGES.register("retrain")
class RetrainStage(Stage):
    """Retrain a pruned model from rewound weights or from scratch (Scratch-E / Scratch-B)."""

    kind = "retrain"
    Options = RetrainOptions
    trains = True
    needs_trained_model = True

    def run(self, ctx: RunContext) -> StageResult:
        import torch

        from leandl.measure import count_macs
        from leandl.prune.schedules.lottery import (
            REWIND_ATTR, HoldZeros, reinitialize_, rewound_model_state, scratch_epochs, zero_masks,
        )

        opts: RetrainOptions = self.options
        model = ctx.model
        masks = zero_masks(model) if opts.hold_zeros else {}
        epochs = ctx.train_config(opts).epochs
        metrics: dict[str, object] = {"retrain_init": opts.init}
        if opts.init == "rewind":
            stored = getattr(model, REWIND_ATTR, None)
            if stored is None:
                raise ConfigError(
                    "init: rewind needs weights stored by the rewind_point technique in an earlier train stage "
                    "of this run (they are kept in memory, so a resumed run cannot rewind)",
                    where=f"stages[{ctx.stage_index}].init",
                    fix="add {name: rewind_point, step: K} to the dense train stage's techniques and rerun")
            with torch.no_grad():
                model.load_state_dict(rewound_model_state(model, stored["weights"]))
            metrics["rewind_step"] = stored["step"]
        else:
            reinitialize_(model, seed=ctx.recipe.seed)
            if opts.budget == "B":
                pruned = count_macs(model, ctx.example_input(1)).total
                epochs = scratch_epochs(epochs, _dense_macs(ctx), pruned, "B", opts.cap)
            metrics["scratch_budget"] = opts.budget
        if masks:
            from leandl.prune.unstructured import apply_masks_

            apply_masks_(model, masks)
        metrics["retrain_epochs"] = epochs
        ctx.model = model
        train_opts = opts.model_copy(update={"epochs": epochs})
        result = _train(ctx, train_opts, [HoldZeros(masks)] if masks else [])
        result.metrics.update(metrics)
        return result


def _train(ctx: RunContext, opts: RetrainOptions, extra: list) -> StageResult:
    """``run_training`` with extra technique objects appended to the stage's own."""
    original = ctx.build_techniques

    def build(entries):  # type: ignore[no-untyped-def]
        return original(entries) + list(extra)

    ctx.build_techniques = build  # type: ignore[method-assign]
    try:
        return run_training(ctx, opts, description="retrain")
    finally:
        del ctx.build_techniques

"""The ``mixed_precision`` stage: per-layer weight bits under a size budget, then QAT.

Sensitivity of each layer to b-bit weights (output MSE on validation inputs, or loss increase)
is measured with :func:`leandl.quantize.mixed_precision.choose_bits`; an exact knapsack picks the
bits that minimise the summed sensitivity within ``budget`` x the 8-bit weight size (HAWQ-style
allocation, arXiv 1905.03696); then the model is fine-tuned with the ``qat`` technique at those
bits. The chosen bits land in the stage metrics and, through the ``qat_swap`` edit, in the
checkpoint.
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import Field

from leandl.recipes.context import RunContext
from leandl.recipes.schema import TechniqueEntry
from leandl.recipes.stage import Stage, StageResult
from leandl.recipes.stages.train import TrainOptions, run_training
from leandl.registry import STAGES

__all__ = ["MixedPrecisionStage", "MixedPrecisionOptions"]


class MixedPrecisionOptions(TrainOptions):  # type: ignore[misc, valid-type]
    """Budget and allocation settings, plus the QAT fine-tune's training overrides."""

    budget: float = Field(0.5, gt=0.0, le=1.0)
    candidates: list[Annotated[int, Field(ge=1, le=16)]] = Field(default_factory=lambda: [1, 2, 3, 4, 6, 8],
                                                                 min_length=1, max_length=16)
    metric: Literal["mse", "loss"] = "mse"
    calibration_samples: int = Field(512, ge=8, le=1 << 20)
    act_bits: int | None = Field(8, ge=2, le=8)


def _calibration(ctx: RunContext, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    data = ctx.data.val if len(ctx.data.val) else ctx.data.train
    idx = range(min(n, len(data)))
    xs, ys = zip(*[(data[i][0], data[i][1]) for i in idx], strict=True)
    return torch.stack(xs).to(ctx.device), torch.stack([torch.as_tensor(y) for y in ys]).to(ctx.device)


@STAGES.register("mixed_precision")
class MixedPrecisionStage(Stage):
    """Allocate per-layer weight bits under a size budget, then QAT fine-tune at those bits."""

    kind = "mixed_precision"
    Options = MixedPrecisionOptions
    trains = True
    needs_trained_model = True

    def run(self, ctx: RunContext) -> StageResult:
        from leandl.quantize.mixed_precision import choose_bits

        o = self.options
        x, y = _calibration(ctx, o.calibration_samples)
        ctx.model.eval()
        bits, info = choose_bits(ctx.model, x, o.budget, candidates=o.candidates, targets=y, metric=o.metric)
        qat = TechniqueEntry(name="qat", bits=bits, first_last_bits=None, act_bits=o.act_bits,
                             weight_bits=max(bits.values()))
        train_opts = o.model_copy(update={"techniques": [qat, *o.techniques]})
        result = run_training(ctx, train_opts, description=o.name or "mixed precision QAT")
        result.metrics.update({
            "mp_bits": bits, "mp_budget_fraction": o.budget, "mp_weight_bytes": info["weight_bytes"],
            "mp_budget_bytes": info["budget_bytes"], "mp_reference_8bit_bytes": info["reference_bytes"],
        })
        return result

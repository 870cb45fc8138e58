"""The ``export`` stage: write the current model as ``model.onnx`` (and optionally int8).

Recipe keys::

    {kind: export, format: onnx, int8: false, calibration_batches: 8, opset: 17}

Metrics: ``onnx_size_bytes``, ``onnx_max_abs_diff`` and ``onnx_top1_agreement`` (the file
checked against eager PyTorch on a test batch), and with ``int8: true`` ``int8_onnx_size_bytes`` and
``int8_top1_agreement``. A QAT model's int8 file is quantised from its float twin
(:func:`leandl.quantize.convert.float_twin`), which ONNX Runtime runs on int8 kernels.
Artifacts: ``onnx`` (and ``int8_onnx``) paths inside the stage directory.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

from pydantic import Field

from leandl.deploy.calibration import calibration_batches
from leandl.deploy.onnx_export import check_onnx, export_onnx
from leandl.deploy.ort_quantize import quantize_static_onnx
from leandl.quantize.convert import float_twin, has_fake_quant
from leandl.recipes.context import RunContext
from leandl.recipes.schema import Strict
from leandl.recipes.stage import Stage, StageResult
from leandl.registry import STAGES

__all__ = ["ExportOptions", "ExportStage"]


class ExportOptions(Strict):
    """Options of an ``export`` stage."""

    name: str | None = None
    format: Literal["onnx"] = "onnx"
    int8: bool = False
    calibration_batches: int = Field(8, ge=1, le=100_000)
    opset: int = Field(17, ge=13, le=21)


@STAGES.register("export")
class ExportStage(Stage):
    """Export the current model to ONNX (checked against eager), optionally static int8 too."""

    kind = "export"
    Options = ExportOptions

    def run(self, ctx: RunContext) -> StageResult:
        o = self.options
        if not ctx.is_main:
            return StageResult(model=ctx.model, measure=False)
        model = copy.deepcopy(ctx.model).cpu().eval()
        path = export_onnx(model, ctx.example_input(2).cpu(), ctx.stage_dir / "model.onnx", opset=o.opset)
        check_x = ctx.example_input(64).cpu()
        check = check_onnx(model, path, check_x)
        metrics: dict[str, Any] = {"onnx_size_bytes": path.stat().st_size, "onnx_max_abs_diff": check.max_abs_diff,
                                   "onnx_top1_agreement": check.top1_agreement}
        artifacts = {"onnx": str(path)}
        if o.int8:
            cal = calibration_batches(ctx.data.train, o.calibration_batches, ctx.recipe.data.batch_size,
                                      seed=ctx.recipe.seed)
            src = path
            if has_fake_quant(model):  # QAT: its float twin is what ORT can run on int8 kernels
                src = export_onnx(float_twin(model), ctx.example_input(2).cpu(), ctx.stage_dir / "float_twin.onnx",
                                  opset=o.opset)
            q = quantize_static_onnx(src, ctx.stage_dir / "model.int8.onnx", cal)
            metrics["int8_onnx_size_bytes"] = q.stat().st_size
            metrics["int8_top1_agreement"] = check_onnx(model, q, check_x).top1_agreement
            artifacts["int8_onnx"] = str(q)
        return StageResult(model=ctx.model, metrics=metrics, artifacts=artifacts)

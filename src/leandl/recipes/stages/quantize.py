"""The ``quantize`` stage: post-training int8 quantization into an ONNX Runtime model.

Recipe keys::

    {kind: quantize, method: ptq, backend: onnxruntime, calibration_batches: 8,
     calibrate_method: minmax, bias_correction: true, per_channel: true}

``method: ptq`` = static int8 QDQ calibrated on ``calibration_batches`` batches of real
training inputs (after BN folding and, by default, bias correction); ``method: dynamic`` =
dynamic int8 on MatMul/Gemm only (for Linear-heavy models; conv layers stay fp32).

Metrics: ``accuracy`` / ``size_bytes`` / ``latency_ms`` describe the int8 ONNX model (run by
ONNX Runtime on the test split), plus ``fp32_accuracy`` (the torch model),
``onnx_fp32_accuracy``, ``accuracy_drop`` (fp32 - int8, in points of fraction), ``fp32_onnx_size_bytes``,
``int8_onnx_size_bytes`` and ``size_ratio`` (fp32 / int8 file bytes). Artifacts: ``int8_onnx``
and ``fp32_onnx`` paths inside the stage directory. The stage's model stays the torch fp32
model, so later stages (bench, export) keep working.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

from pydantic import Field

from leandl.deploy.calibration import calibration_batches
from leandl.deploy.ort_session import OrtModule, evaluate_onnx
from leandl.deploy.ptq import ptq_onnx
from leandl.quantize.convert import has_fake_quant
from leandl.recipes.context import RunContext
from leandl.recipes.measure_stage import test_accuracy
from leandl.recipes.schema import Strict
from leandl.recipes.stage import Stage, StageResult
from leandl.registry import STAGES

__all__ = ["QuantizeOptions", "QuantizeStage", "onnx_latency"]


class QuantizeOptions(Strict):
    """Options of a ``quantize`` stage."""

    name: str | None = None
    method: Literal["ptq", "dynamic"] = "ptq"
    backend: Literal["onnxruntime"] = "onnxruntime"
    calibration_batches: int = Field(8, ge=1)
    calibration_batch_size: int | None = Field(None, ge=1)
    calibrate_method: Literal["minmax", "percentile", "entropy"] = "minmax"
    bias_correction: bool = True
    per_channel: bool = True
    reduce_range: bool = False


def onnx_latency(ctx: RunContext, path: Any) -> dict[str, Any]:
    """Median latency (ms) per batch size of an ONNX file, with the recipe's measure settings."""
    from leandl.measure import measure_latency

    m = ctx.recipe.measure
    if not m.latency:
        return {}
    run = OrtModule(path, threads=m.threads)
    stats = {b: measure_latency(run, ctx.example_input(b).cpu(), warmup=m.warmup, repeats=m.repeats,
                                threads=m.threads) for b in m.batch_sizes}
    return {"latency_ms": {str(b): s.median_ms for b, s in stats.items()},
            "latency": {str(b): s.to_dict() for b, s in stats.items()}}


@STAGES.register("quantize")
class QuantizeStage(Stage):
    """Post-training int8 (static QDQ or dynamic) into ONNX Runtime; accuracy before/after."""

    kind = "quantize"
    Options = QuantizeOptions
    needs_trained_model = True

    def run(self, ctx: RunContext) -> StageResult:
        from leandl.data import make_loader

        o = self.options
        if not ctx.is_main:
            return StageResult(model=ctx.model)
        model = copy.deepcopy(ctx.model).cpu().eval()
        qat = has_fake_quant(model)  # ptq_onnx quantises its float twin, never bias-corrected
        bs = o.calibration_batch_size or ctx.recipe.data.batch_size
        cal = calibration_batches(ctx.data.train, o.calibration_batches, bs, seed=ctx.recipe.seed) \
            if o.method == "ptq" else []
        res = ptq_onnx(model, ctx.example_input(2).cpu(), ctx.stage_dir / "onnx", method=o.method,
                       calibration=cal, calibrate_method=o.calibrate_method, per_channel=o.per_channel,
                       bias_correction=o.bias_correction, reduce_range=o.reduce_range)
        loader = make_loader(ctx.data.test, ctx.recipe.data.eval_batch_size, shuffle=False)
        int8 = evaluate_onnx(res.int8_path, loader, threads=ctx.recipe.measure.threads)
        fp32 = evaluate_onnx(res.fp32_path, loader, threads=ctx.recipe.measure.threads)
        torch_acc = test_accuracy(ctx, ctx.model)["accuracy"]
        metrics: dict[str, Any] = {
            "accuracy": int8["accuracy"], "test_loss": int8["loss"], "fp32_accuracy": torch_acc,
            "onnx_fp32_accuracy": fp32["accuracy"], "accuracy_drop": torch_acc - int8["accuracy"],
            "size_bytes": res.int8_size_bytes, "int8_onnx_size_bytes": res.int8_size_bytes,
            "fp32_onnx_size_bytes": res.fp32_size_bytes, "size_ratio": res.size_ratio,
            "quantization": {"method": o.method, "backend": o.backend, "calibrate_method": o.calibrate_method,
                             "calibration_batches": len(cal), "per_channel": o.per_channel,
                             "bias_correction": o.bias_correction and o.method == "ptq" and not qat,
                             "from_qat_float_twin": qat,
                             "reduce_range": o.reduce_range, "weights": "int8 symmetric",
                             "activations": "uint8 asymmetric, static" if o.method == "ptq" else "dynamic"},
            "bias_shift_max": max(res.bias_shifts.values(), default=0.0),
            "backend": "onnxruntime-int8" if o.method == "ptq" else "onnxruntime-dynamic-int8",
        }
        metrics.update(onnx_latency(ctx, res.int8_path))
        artifacts = {"int8_onnx": str(res.int8_path), "fp32_onnx": str(res.fp32_path)}
        return StageResult(model=ctx.model, metrics=metrics, artifacts=artifacts)

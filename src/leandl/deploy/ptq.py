"""Post-training int8 quantization of a torch model into ONNX files, in one call.

Pipeline of :func:`ptq_onnx` (reference B6):

1. export the fp32 model to ``model.onnx`` (the baseline file and its size);
2. static: fold BN into the convs and, when asked, apply empirical bias correction on a copy
   of the torch model (:mod:`leandl.deploy.bias_correction`), export that copy, then
   ``quantize_static`` (QDQ, per-channel int8 weights, uint8 activations calibrated on N
   batches of real training inputs); dynamic: ``quantize_dynamic`` on MatMul/Gemm only;
3. report both file sizes and their ratio.

A QAT model (fake-quant layers) is first turned into its float twin
(:func:`leandl.quantize.convert.float_twin`: trained quantised weights, trained clamps below 8
bits) and never bias-corrected (its weights already sit on their grid), so ONNX Runtime runs it
on int8 kernels; its exact QDQ graph (:mod:`leandl.quantize.export`) does not.

The torch model passed in is never modified.
"""

from __future__ import annotations


import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from torch import nn

from leandl.deploy.bias_correction import bias_correct_, fold_batchnorm
from leandl.deploy.calibration import random_calibration as random_calibration_batches
from leandl.deploy.onnx_export import export_onnx, validate_onnx
from leandl.deploy.ort_quantize import CalibrateMethod, onnx_file_bytes, quantize_dynamic_onnx, quantize_static_onnx
from leandl.errors import ConfigError
from leandl.memory import release_memory
from leandl.quantize.convert import float_twin, has_fake_quant

__all__ = ["PtqResult", "ptq_onnx", "PtqMethod"]

PtqMethod = Literal["ptq", "dynamic"]


@dataclass
class PtqResult:
    """Files and sizes of a PTQ run.

    Attributes:
        fp32_path / int8_path: the float and int8 ONNX files.
        fp32_size_bytes / int8_size_bytes: their sizes in bytes.
        size_ratio: ``fp32_size_bytes / int8_size_bytes`` (> 1: the int8 file is smaller).
        bias_shifts: per layer, ``max |delta|`` applied by bias correction (empty when off).
        calibration: where the static calibration batches came from: ``"N given batches"`` or
            ``"random (N batches, asked for)"``; empty for dynamic quantization.
        stem_padding: what input-channel padding of the stem did (static only; see
            :func:`leandl.deploy.ort_quantize.quantize_static_onnx`).
        op_types: the op types quantized (``"all"``, or e.g. ``"MatMul, Gemm, Conv"`` on a
            transformer; see ``op_types`` of :func:`leandl.deploy.ort_quantize.quantize_static_onnx`).
    """

    fp32_path: Path
    int8_path: Path
    fp32_size_bytes: int
    int8_size_bytes: int
    size_ratio: float
    bias_shifts: dict[str, float] = field(default_factory=dict)
    calibration: str = ""
    stem_padding: str = ""
    op_types: str = ""


def ptq_onnx(
    model: nn.Module,
    example_inputs: Any,
    out_dir: str | Path,
    *,
    method: PtqMethod = "ptq",
    calibration: Sequence[Any] = (),
    calibrate_method: CalibrateMethod = "minmax",
    per_channel: bool = True,
    bias_correction: bool = True,
    reduce_range: bool = False,
    fp32_name: str = "model.onnx",
    int8_name: str = "model.int8.onnx",
    opset: int = 17,
    random_calibration: bool = False,
) -> PtqResult:
    """Export ``model`` to fp32 ONNX and to int8 ONNX in ``out_dir``.

    Args:
        model: the float model (unchanged).
        example_inputs: an input batch in any form :func:`leandl.deploy.export_onnx` accepts
            (tensor, tuple, dict of keyword inputs; token ids as integers); batch >= 2 is used
            for export.
        out_dir: folder for the two files.
        method: ``"ptq"`` static QDQ int8, or ``"dynamic"`` (MatMul/Gemm only).
        calibration: real input batches for static calibration and bias correction, shaped
            like ``example_inputs`` (see :func:`leandl.deploy.calibration_from_loader`).
        calibrate_method: ``minmax``, ``percentile`` or ``entropy``.
        per_channel: per-output-channel weight scales.
        bias_correction: shift biases by the measured mean quantization error (static only;
            never for a QAT model).
        reduce_range: 7-bit weights (see :mod:`leandl.deploy.ort_quantize`).
        fp32_name / int8_name: the file names.
        opset: ONNX opset of the exported graphs.
        random_calibration: with no ``calibration`` given, calibrate on random inputs shaped
            like ``example_inputs`` (:func:`leandl.deploy.calibration.random_calibration`; it
            warns, and :attr:`PtqResult.calibration` says so). Never done unless asked.
    """
    if method not in ("ptq", "dynamic"):
        raise ConfigError(f"unknown quantization method '{method}'", where="method", fix="use ptq or dynamic")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if has_fake_quant(model):
        model, bias_correction = float_twin(model), False
    fp32 = export_onnx(model, example_inputs, out / fp32_name, opset=opset)
    shifts: dict[str, float] = {}
    source = ""
    op_types: Any = "MatMul, Gemm (dynamic)" if method == "dynamic" else ""
    qinfo: dict[str, Any] = {}
    if method == "dynamic":
        int8 = quantize_dynamic_onnx(fp32, out / int8_name, per_channel=per_channel)
    else:
        calibration = list(calibration)
        if calibration:
            source = f"{len(calibration)} given batches"
        elif random_calibration:
            calibration = random_calibration_batches(example_inputs)
            source = f"random ({len(calibration)} batches, asked for)"
        else:
            raise ConfigError("static PTQ needs calibration batches", where="calibration_batches",
                              fix="pass real input batches (calibration=...), or random_calibration=True")
        folded = fold_batchnorm(model)
        if bias_correction:
            shifts = bias_correct_(folded, calibration, per_channel=per_channel, reduce_range=reduce_range)
        with tempfile.TemporaryDirectory() as tmp:
            src = export_onnx(folded, example_inputs, Path(tmp) / "corrected.onnx", opset=opset)
            del folded  # a model-sized copy, not needed past export (ViT-H/14's int8 ran out of 24 GB)
            release_memory()
            qinfo = {}
            int8 = quantize_static_onnx(src, out / int8_name, calibration, calibrate_method=calibrate_method,
                                        per_channel=per_channel, reduce_range=reduce_range, info=qinfo)
            op_types = qinfo.get("op_types", "")
    validate_onnx(int8, example_inputs)
    f_size, q_size = onnx_file_bytes(fp32), int8.stat().st_size  # fp32 past 2 GB keeps external data
    return PtqResult(fp32_path=fp32, int8_path=int8, fp32_size_bytes=f_size, int8_size_bytes=q_size,
                     size_ratio=f_size / q_size, bias_shifts=shifts, calibration=source,
                     stem_padding=str(qinfo.get("stem_padding", "")),
                     op_types=op_types if isinstance(op_types, str) else ", ".join(op_types))

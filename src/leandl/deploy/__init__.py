"""Deployment: ONNX export, ONNX Runtime fp32/int8 sessions, post-training quantization, backends.

- :func:`export_onnx` / :func:`check_onnx`: torch -> ONNX (dynamic batch, opset 17), inputs and
  outputs of any structure (token ids, keyword inputs, dict / ``ModelOutput`` outputs;
  :mod:`leandl.deploy.io`), every file run once by ONNX Runtime (:func:`validate_onnx`), checked
  against eager (max abs diff, top-1 agreement, cosine).
- :class:`OrtModule`, :func:`make_session`, :func:`evaluate_onnx`: ONNX Runtime sessions with a
  stated intra-op thread count.
- :func:`ptq_onnx`: static int8 QDQ (calibrated, per-channel, bias-corrected) or dynamic int8
  (MatMul/Gemm only) ONNX files; :func:`bias_correct_` is the torch-side bias correction.
- backends in :data:`leandl.registry.BACKENDS` (``eager``, ``torchscript``, ``compile``,
  ``onnxruntime``, ``onnxruntime-int8``, ``onnxruntime-dynamic-int8``, ``torchao-x86``, ``openvino``,
  ``openvino-int8``) and
  :func:`bench_backends`, the engine of ``leandl bench``.
"""

from __future__ import annotations

from leandl.deploy.backend import Backend, BackendUnavailable, BuiltBackend
from leandl.deploy.bench import ROW_KEYS, bench_backends, format_rows
from leandl.deploy.bias_correction import bias_correct_, bias_correction_shifts, fold_batchnorm, quantize_weight_symmetric
from leandl.deploy.calibration import TensorDataReader, calibration_batches, calibration_from_loader, random_calibration
from leandl.deploy.onnx_export import ExportCheck, check_onnx, compare_outputs, export_onnx, validate_onnx
from leandl.deploy.ort_quantize import op_counts, quantize_dynamic_onnx, quantize_static_onnx
from leandl.deploy.ort_session import OrtModule, evaluate_onnx, make_session
from leandl.deploy.ptq import PtqResult, ptq_onnx

__all__ = [
    "Backend", "BackendUnavailable", "BuiltBackend", "ROW_KEYS", "bench_backends", "format_rows", "bias_correct_",
    "bias_correction_shifts", "fold_batchnorm", "quantize_weight_symmetric", "TensorDataReader",
    "calibration_batches", "calibration_from_loader", "random_calibration", "ExportCheck", "check_onnx",
    "compare_outputs", "export_onnx", "validate_onnx", "op_counts",
    "quantize_dynamic_onnx", "quantize_static_onnx", "OrtModule", "evaluate_onnx", "make_session",
    "PtqResult", "ptq_onnx",
]

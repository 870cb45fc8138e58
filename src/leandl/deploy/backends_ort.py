"""ONNX Runtime backends: ``onnxruntime`` (fp32), ``onnxruntime-int8`` (static QDQ int8,
calibrated, bias-corrected) and ``onnxruntime-dynamic-int8`` (MatMul/Gemm only).

Artifacts are the ``.onnx`` files; sizes are their bytes. Each ``runner(threads)`` opens a new
session with ``intra_op_num_threads = threads`` (see :mod:`leandl.deploy.ort_session`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from leandl.deploy.backend import Backend, BackendUnavailable, BuiltBackend, built_from_file
from leandl.deploy.onnx_export import export_onnx
from leandl.deploy.ort_session import OrtModule
from leandl.deploy.ptq import ptq_onnx
from leandl.registry import BACKENDS

__all__ = ["OrtBackend", "OrtStaticInt8Backend", "OrtDynamicInt8Backend"]


def _built(name: str, path: Path, notes: str = "") -> BuiltBackend:
    return built_from_file(name, path, lambda p, t: OrtModule(p, threads=t, outputs="all"), notes)


@BACKENDS.register("onnxruntime")
class OrtBackend(Backend):
    """ONNX export + ONNX Runtime, fp32."""

    name = "onnxruntime"

    def build(self, model: nn.Module, example_inputs: Any, calibration: Sequence[Any], workdir: Path) -> BuiltBackend:
        path = export_onnx(model, example_inputs, Path(workdir) / "model.onnx")
        return _built(self.name, path)


@BACKENDS.register("onnxruntime-int8")
class OrtStaticInt8Backend(Backend):
    """ONNX Runtime static int8 (QDQ, per-channel weights, MinMax calibration, bias correction)."""

    name = "onnxruntime-int8"
    needs_calibration = True

    def build(self, model: nn.Module, example_inputs: Any, calibration: Sequence[Any], workdir: Path) -> BuiltBackend:
        if not calibration:
            raise BackendUnavailable("static int8 needs calibration batches (real inputs; or ask for random "
                                     "ones, e.g. leandl bench --random-calibration)")
        res = ptq_onnx(model, example_inputs, Path(workdir) / "static", method="ptq", calibration=list(calibration))
        return _built(self.name, res.int8_path, notes=f"calibrated on {res.calibration}")


@BACKENDS.register("onnxruntime-dynamic-int8")
class OrtDynamicInt8Backend(Backend):
    """ONNX Runtime dynamic int8 on MatMul/Gemm only (convs stay fp32: no ConvInteger)."""

    name = "onnxruntime-dynamic-int8"

    def build(self, model: nn.Module, example_inputs: Any, calibration: Sequence[Any], workdir: Path) -> BuiltBackend:
        res = ptq_onnx(model, example_inputs, Path(workdir) / "dynamic", method="dynamic")
        return _built(self.name, res.int8_path)

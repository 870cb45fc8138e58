"""Export a QAT (fake-quant) model to an int8 QDQ ONNX graph and run it with ONNX Runtime.

In export mode every quantiser's forward becomes ``torch.fake_quantize_per_tensor_affine`` /
``torch.fake_quantize_per_channel_affine`` with its ``export_qparams()``, which the TorchScript
ONNX exporter writes as ``QuantizeLinear -> DequantizeLinear`` pairs (opset >= 13).

Quantisers narrower than 8 bits still export as int8/uint8 QDQ with the same scale and zero
point: weights are fake-quantised first (their codes already lie in the narrow range), and
activations are clipped to ``[(q_min - z) s, (q_max - z) s]`` before the 8-bit QDQ, which
gives the same values as ``clamp(round(x / s) + z, q_min, q_max)``. So the ONNX model computes
the same function as the fake-quant model up to float rounding in the convolutions.

This graph is for checking a QAT model, not for deploying it: ONNX Runtime only fuses a
convolution into an int8 ``QLinearConv`` when its output is quantised too, so here every
convolution stays float and the Q/DQ pairs add work. On ResNet-56 (32x32, batch 64, 2 threads)
it ran about half as fast as the fp32 ONNX model, and its weights are stored as float. Deploy
with :func:`leandl.deploy.ptq_onnx` (or ``leandl export CKPT --int8``), which quantises the
model's float twin (:mod:`leandl.quantize.convert`) and runs on int8 kernels.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from leandl.errors import ModelError
from leandl.quantize.fake_quant import FAKE_QUANT_TYPES

__all__ = ["qdq", "export_mode", "export_int8_onnx", "run_onnx", "count_qdq_nodes"]

_FAKE = tuple(FAKE_QUANT_TYPES.values())


def qdq(x: Tensor, scale: Tensor, zero_point: Tensor, qmin: int, qmax: int, axis: int | None) -> Tensor:
    """Exportable fake quantisation on the 8-bit grid holding ``[qmin, qmax]``.

    Codes are carried as int8 when ``qmin < 0`` and as uint8 otherwise; a narrower range is
    enforced by clipping ``x`` first.
    """
    lo8, hi8 = (-128, 127) if qmin < 0 else (0, 255)
    if qmin < lo8 or qmax > hi8:
        raise ModelError(f"code range [{qmin}, {qmax}] does not fit 8 bits")
    zp = zero_point.to(torch.int32)
    if (qmin, qmax) != (lo8, hi8):
        s = scale if axis is None else scale.reshape([-1] + [1] * (x.dim() - 1 - axis))
        z = zp.to(x.dtype) if axis is None else zp.to(x.dtype).reshape(s.shape)
        x = torch.clamp(x, min=(qmin - z) * s, max=(qmax - z) * s) if axis is not None \
            else torch.clamp(x, float((qmin - z) * s), float((qmax - z) * s))
    if axis is None:
        return torch.fake_quantize_per_tensor_affine(x, scale.float().reshape(()), zp.reshape(()), lo8, hi8)
    return torch.fake_quantize_per_channel_affine(x, scale.float(), zp, axis, lo8, hi8)


def _export_forward(self: nn.Module, x: Tensor) -> Tensor:
    if self.act_quant is not None:
        s, z, lo, hi = self.act_quant.export_qparams()
        x = qdq(x, s, z, lo, hi, None)
    w = self.weight
    if self.weight_quant is not None:
        with torch.no_grad():
            w = self.weight_quant(self.weight).detach()  # on the grid; a constant in the graph
        s, z, lo, hi = self.weight_quant.export_qparams()
        w = qdq(w, s, z, lo, hi, 0 if s.dim() > 0 else None)
    if isinstance(self, nn.Linear):
        return torch.nn.functional.linear(x, w, self.bias)
    return self._conv_forward(x, w, self.bias)


@contextlib.contextmanager
def export_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Temporarily make every fake-quant layer use exportable ``torch.fake_quantize_*`` ops."""
    layers = [m for m in model.modules() if isinstance(m, _FAKE)]
    try:
        for m in layers:
            m.forward = _export_forward.__get__(m)
        yield model
    finally:
        for m in layers:
            del m.forward


def export_int8_onnx(model: nn.Module, example: Tensor, path: str | Path, opset: int = 17) -> Path:
    """Write ``model`` (eval mode, fake-quant layers) as a QDQ ONNX file; return the path.

    Raises:
        ModelError: the model has no fake-quant layer (run QAT or ``prepare_qat`` first).
    """
    if not any(isinstance(m, _FAKE) for m in model.modules()):
        raise ModelError("the model has no fake-quant layer to export as int8",
                         fix="quantise it first (technique 'qat' or leandl.quantize.qat.prepare_qat)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    try:
        with export_mode(model), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter is intended here
            torch.onnx.export(model, (example,), str(path), dynamo=False, opset_version=opset,
                              input_names=["input"], output_names=["logits"],
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    finally:
        model.train(was_training)
    return path


def run_onnx(path: str | Path, x: Tensor | np.ndarray, threads: int = 1) -> np.ndarray:
    """Run an ONNX model on ``x`` with ONNX Runtime (CPU) and return the first output."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    arr = x.detach().cpu().numpy() if isinstance(x, Tensor) else x
    return sess.run(None, {sess.get_inputs()[0].name: arr.astype(np.float32)})[0]


def count_qdq_nodes(path: str | Path) -> dict[str, int]:
    """Counts of QuantizeLinear / DequantizeLinear nodes in an ONNX file."""
    import onnx

    graph = onnx.load(str(path)).graph
    ops = [n.op_type for n in graph.node]
    return {"QuantizeLinear": ops.count("QuantizeLinear"), "DequantizeLinear": ops.count("DequantizeLinear")}

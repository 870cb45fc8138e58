"""Quantisation: primitives, observers, fake-quant modules, QAT, BN folding, mixed precision, int8 ONNX export.

Quantisation-aware training (technique ``qat``) swaps Conv/Linear layers for fake-quant versions
with learned (LSQ) or observed step sizes; :mod:`leandl.quantize.mixed_precision` picks per-layer
bit widths under a size budget; :mod:`leandl.quantize.export` writes the exact fake-quant QDQ
ONNX graph (for checking); :mod:`leandl.quantize.convert` makes the float twin that
:func:`leandl.deploy.ptq_onnx` turns into an int8 model ONNX Runtime runs on int8 kernels.
"""

from __future__ import annotations

from leandl.quantize.primitives import (
    choose_qparams,
    dequantize,
    fake_quantize,
    qrange,
    quantize,
)

__all__ = ["qrange", "choose_qparams", "quantize", "dequantize", "fake_quantize"]

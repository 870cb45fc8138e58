"""Turn a QAT (fake-quant) model into a plain float model that ONNX Runtime can quantise to int8.

A fake-quant graph exported as it is (:func:`leandl.quantize.export.export_int8_onnx`) computes
the fake-quant model exactly, but ONNX Runtime cannot run it on int8 kernels: a convolution only
becomes a ``QLinearConv`` when its *output* is quantised too, and QAT quantises layer inputs and
weights only. Measured on ResNet-56 (32x32, batch 64, 2 threads, ``benchmarks/qat.py``) that
exact graph ran at 0.52x the speed of the fp32 ONNX model (179 vs 93 ms) and its file was larger
(3.9 vs 3.4 MB: weights stored as float and quantised at run time); the int8 model made from
the float twin ran 1.69x faster than fp32 (55 ms) from a 0.92 MB file.

:func:`float_twin` makes the deployable copy instead: each fake-quant layer becomes its float
layer holding the already-quantised weight ``weight_quant(W)`` (on the trained grid, so int8
re-quantisation of it is exact at 8 bits when the grid's largest code is used and within
``1/2`` of an int8 step otherwise), and, where the layer's input quantiser has fewer than 8
bits, a clamp to the trained activation range ``[(q_min - z) s, (q_max - z) s]`` before it (the
range the network was trained under; int8 then holds that range on a finer grid). Static
calibration over real inputs then gives every tensor (layer outputs and residual adds included)
its int8 scale, and ONNX Runtime runs the whole graph on int8 kernels:
:func:`leandl.deploy.ptq_onnx` does this for any model with fake-quant layers. On digits_cnn (3
seeds) the int8 models agreed with their fake-quant models on 99.6 % (W8A8), 99.1 % (W4A4) and
99.7 % (W2A8) of the test set, at equal or higher test accuracy. Weights below 8 bits are
stored as int8 codes: ONNX Runtime has no narrower convolution kernel, so they save no bytes.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from leandl.quantize.fake_quant import FAKE_QUANT_TYPES

__all__ = ["float_twin", "has_fake_quant"]

_FAKE = {fake: plain for plain, fake in FAKE_QUANT_TYPES.items()}


def has_fake_quant(model: nn.Module) -> bool:
    """Whether ``model`` holds any fake-quant (QAT) layer."""
    return any(type(m) in _FAKE for m in model.modules())


def _plain_copy(m: nn.Module) -> nn.Module:
    plain_type = _FAKE[type(m)]
    if plain_type is nn.Linear:
        new: nn.Module = nn.Linear(m.in_features, m.out_features, m.bias is not None)
    else:
        new = plain_type(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation,
                         m.groups, m.bias is not None, m.padding_mode)
    with torch.no_grad():
        new.weight.copy_(m.quantized_weight())
        if m.bias is not None:
            new.bias.copy_(m.bias)
    new = new.to(m.weight.device)
    act = m.act_quant
    if act is None or act.bits >= 8:
        return new
    s, z, lo, hi = act.export_qparams()  # activations are per tensor
    s, z = float(s.reshape(-1)[0]), float(z.reshape(-1)[0])
    return nn.Sequential(nn.Hardtanh((lo - z) * s, (hi - z) * s), new)


@torch.no_grad()
def float_twin(model: nn.Module) -> nn.Module:
    """A float copy of ``model`` (eval mode) in which every fake-quant layer is plain again.

    Weights are the fake-quantised ones; inputs of layers quantised below 8 bits are clamped
    to their trained range (a ``Hardtanh``, an ONNX ``Clip``). Layers that are not fake-quant
    are copied unchanged; ``model`` itself is not modified.
    """
    twin = copy.deepcopy(model).eval()
    for name, m in list(twin.named_modules()):
        if type(m) not in _FAKE:
            continue
        if not name:  # the model is a single fake-quant layer
            return _plain_copy(m).eval()
        parent_name, _, child = name.rpartition(".")
        setattr(twin.get_submodule(parent_name), child, _plain_copy(m))
    return twin

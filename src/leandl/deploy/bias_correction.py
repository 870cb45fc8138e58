"""Empirical bias correction for post-training weight quantization (Nagel et al., DFQ, 2019).

What: rounding the weights, ``W~ = Q(W) = W + eps``, shifts each output channel's mean by
``E[eps x]``: a biased error that accumulates through the network (worst for layers with few
input channels and for inputs with a non-zero mean, e.g. after ReLU). Bias correction removes
it by moving the bias::

    delta_c = E_x[ (W~ x)_c - (W x)_c ]      (mean over calibration samples and positions)
    b_c    <- b_c - delta_c

so that ``E[W~ x + b'] = E[W x + b]``. ``delta`` is measured with the layer's fp32 inputs
captured from calibration data ("empirical" variant; the paper's data-free variant derives
``E[x]`` from the preceding BN instead).

When: static PTQ (int8 and below) of conv nets, before export. Cost: one forward pass over the
calibration batches. ``Q`` here is symmetric int8 with ``scale = max|W_c| / q_max`` per output
channel (``q_max = 127``, or 64 with ``reduce_range``): exactly what ONNX Runtime's static
quantizer applies to weights, so the shift matches the rounding it will do. BatchNorm must be
folded into the convs first (:func:`fold_batchnorm`), because ONNX Runtime quantizes the folded
weights.

Paper: Markus Nagel, Mart van Baalen, Tijmen Blankevoort, Max Welling, "Data-Free Quantization
Through Weight Equalization and Bias Correction", ICCV 2019, arXiv 1906.04721.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from leandl.deploy.io import call_model

__all__ = ["quantize_weight_symmetric", "fold_batchnorm", "bias_correction_shifts", "bias_correct_"]

_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def quantize_weight_symmetric(weight: torch.Tensor, bits: int = 8, per_channel: bool = True,
                              reduce_range: bool = False) -> torch.Tensor:
    """Fake-quantize a weight: ``s * clamp(round(W / s), -q_max, q_max)``, ``s = max|W| / q_max``.

    Args:
        weight: the weight, output channels on dim 0.
        bits: bit width (2..8); ``q_max = 2^(bits-1) - 1`` (127 for int8).
        per_channel: one scale per output channel (dim 0), else one for the tensor.
        reduce_range: use one bit less (ONNX Runtime's 7-bit range, ``q_max = 64`` at 8 bits).

    Returns:
        The dequantized weight, same shape and dtype.
    """
    if not 2 <= bits <= 8:
        raise ValueError(f"bits must be in 2..8, got {bits}")
    qmax = float(2 ** (bits - 2) if reduce_range else 2 ** (bits - 1) - 1)
    w = weight.detach()
    if per_channel and w.dim() > 1:
        absmax = w.abs().reshape(w.shape[0], -1).amax(dim=1).reshape(-1, *[1] * (w.dim() - 1))
    else:
        absmax = w.abs().amax()
    scale = torch.where(absmax > 0, absmax / qmax, torch.ones_like(absmax))
    return torch.clamp(torch.round(w / scale), -qmax, qmax) * scale


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (eval mode) with every Conv -> BatchNorm pair fused into the conv.

    Uses ``torch.fx`` tracing (``torch.fx.experimental.optimization.fuse``); a model fx cannot
    trace is returned as an unfused copy.
    """
    from torch.fx.experimental.optimization import fuse

    model = copy.deepcopy(model).eval()
    try:
        return fuse(model)
    except Exception:  # untraceable control flow: bias correction still works, unfolded
        return model


def _delta(module: nn.Module, x: torch.Tensor, dw: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Sum over samples/positions of ``F(x; dW)`` per output channel, and the count."""
    if isinstance(module, nn.Linear):
        y = F.linear(x, dw)
        flat = y.reshape(-1, y.shape[-1])
        return flat.sum(0), flat.shape[0]
    y = module._conv_forward(x, dw, None)  # type: ignore[operator]
    flat = y.transpose(0, 1).reshape(y.shape[1], -1)
    return flat.sum(1), flat.shape[1]


@torch.no_grad()
def bias_correction_shifts(model: nn.Module, batches: Sequence[Any], *, bits: int = 8, per_channel: bool = True,
                           reduce_range: bool = False) -> dict[str, torch.Tensor]:
    """Per layer, ``delta_c = E[(W~ - W) x]_c`` over the calibration batches (fp32 inputs).

    Args:
        model: the float model (BN folded); it is not changed.
        batches: input batches (tensors, argument tuples or keyword dicts; :mod:`leandl.deploy.io`).
        bits, per_channel, reduce_range: the weight quantizer (see :func:`quantize_weight_symmetric`).

    Returns:
        Layer name -> shift per output channel.
    """
    layers = {n: m for n, m in model.named_modules() if isinstance(m, _LAYERS)}
    dws = {n: quantize_weight_symmetric(m.weight, bits, per_channel, reduce_range) - m.weight for n, m in layers.items()}
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = dict.fromkeys(layers, 0)

    def hook(name: str) -> Any:
        def _h(module: nn.Module, inputs: tuple[Any, ...], _out: Any) -> None:
            s, c = _delta(module, inputs[0], dws[name])
            sums[name] = sums[name] + s if name in sums else s
            counts[name] += c
        return _h

    handles = [m.register_forward_hook(hook(n)) for n, m in layers.items()]
    was_training = model.training
    model.eval()
    try:
        for batch in batches:
            call_model(model, batch)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return {n: sums[n] / counts[n] for n in sums if counts[n] > 0}


@torch.no_grad()
def bias_correct_(model: nn.Module, batches: Sequence[Any], *, bits: int = 8, per_channel: bool = True,
                  reduce_range: bool = False) -> dict[str, float]:
    """Apply ``b <- b - delta`` to every Conv/Linear of ``model`` in place (a missing bias is added).

    Returns:
        Layer name -> ``max_c |delta_c|`` (how much each bias moved).
    """
    shifts = bias_correction_shifts(model, batches, bits=bits, per_channel=per_channel, reduce_range=reduce_range)
    modules = dict(model.named_modules())
    moved: dict[str, float] = {}
    for name, delta in shifts.items():
        layer = modules[name]
        if layer.bias is None:
            layer.bias = nn.Parameter(torch.zeros_like(delta))
        layer.bias.sub_(delta.to(layer.bias.dtype))
        moved[name] = float(delta.abs().max())
    return moved

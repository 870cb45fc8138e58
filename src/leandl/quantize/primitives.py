"""Uniform affine quantisation primitives: ranges, parameters, quantise, dequantise, fake quant.

A ``b``-bit quantiser maps a real ``x`` to an integer code ``q`` in ``[q_min, q_max]``:

    q = clamp(round(x / s) + z, q_min, q_max),      x_hat = s * (q - z)

with step (scale) ``s > 0`` and zero point ``z``. ``round`` is round-half-to-even
(``torch.round``), which is what ONNX ``QuantizeLinear`` and ``torch.fake_quantize_*`` use, so
these functions agree bit for bit with an exported QDQ graph.

* Asymmetric (affine): the range is first widened to contain 0, then
  ``s = (x_max - x_min) / (q_max - q_min)`` and ``z = clamp(round(q_min - x_min / s))``;
  codes are unsigned ``[0, 2^b - 1]``.
* Symmetric: ``z = 0``, ``s = max(|x_min|, |x_max|) / ((q_max - q_min) / 2)``; codes are
  signed ``[-2^(b-1), 2^(b-1) - 1]``. Used for weights (no zero-point cross terms).
* Per-channel: ``x_min``/``x_max`` (hence ``s``, ``z``) are 1-D, one entry per slice of ``x``
  along ``axis`` (axis 0 of a weight = output channels).

Every value of ``[x_min, x_max]`` is reproduced within half a step, ``|x_hat - x| <= s / 2``.

Reference: Jacob et al., "Quantization and Training of Neural Networks for Efficient
Integer-Arithmetic-Only Inference", CVPR 2018 (arXiv 1712.05877).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "qrange",
    "choose_qparams",
    "quantize",
    "dequantize",
    "fake_quantize",
    "broadcast_to_axis",
]

_MIN_SCALE = 1e-8


def qrange(bits: int, symmetric: bool, signed: bool | None = None) -> tuple[int, int]:
    """Integer code range ``(q_min, q_max)`` of a ``bits``-bit quantiser.

    Args:
        bits: number of bits, 1..16.
        symmetric: symmetric quantisers default to signed codes, asymmetric ones to unsigned.
        signed: force signed ``[-2^(b-1), 2^(b-1)-1]`` (True) or unsigned ``[0, 2^b-1]`` (False).

    Returns:
        ``(q_min, q_max)``, e.g. ``(-128, 127)`` for signed 8-bit, ``(0, 255)`` unsigned.

    Raises:
        ValueError: ``bits`` outside 1..16.
    """
    if not 1 <= int(bits) <= 16:
        raise ValueError(f"bits must be in 1..16, got {bits}")
    is_signed = symmetric if signed is None else signed
    if is_signed:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def choose_qparams(
    x_min: Tensor, x_max: Tensor, bits: int = 8, symmetric: bool = False
) -> tuple[Tensor, Tensor]:
    """Scale and zero point covering ``[x_min, x_max]`` with ``bits``-bit codes.

    The code range is :func:`qrange` ``(bits, symmetric)``: signed for symmetric, unsigned for
    asymmetric. Shapes follow ``x_min`` (0-d for per-tensor, ``(C,)`` for per-channel).

    Args:
        x_min: observed minimum (any shape).
        x_max: observed maximum (same shape).
        bits: number of bits.
        symmetric: symmetric (``z = 0``) or asymmetric (affine) quantisation.

    Returns:
        ``(scale, zero_point)``: float32 scale (``>= 1e-8``) and int32 zero point.

    Example:
        >>> s, z = choose_qparams(torch.tensor(-1.0), torch.tensor(3.0), bits=8)
        >>> round(float(s) * 255, 4), int(z)
        (4.0, 64)
    """
    q_min, q_max = qrange(bits, symmetric)
    x_min = torch.minimum(x_min.detach().float(), torch.zeros_like(x_min, dtype=torch.float32))
    x_max = torch.maximum(x_max.detach().float(), torch.zeros_like(x_max, dtype=torch.float32))
    if symmetric:
        amax = torch.maximum(-x_min, x_max)
        scale = (amax / ((q_max - q_min) / 2)).clamp_min(_MIN_SCALE)
        zero_point = torch.zeros_like(scale, dtype=torch.int32)
        return scale, zero_point
    scale = ((x_max - x_min) / (q_max - q_min)).clamp_min(_MIN_SCALE)
    zero_point = torch.clamp(torch.round(q_min - x_min / scale), q_min, q_max).to(torch.int32)
    return scale, zero_point


def broadcast_to_axis(p: Tensor, x: Tensor, axis: int | None) -> Tensor:
    """Reshape a per-channel parameter ``p`` of shape ``(C,)`` to broadcast along ``x``'s ``axis``.

    Per-tensor parameters (``axis=None`` or ``p`` with one element) are returned as they are.
    """
    if axis is None or p.dim() == 0:
        return p
    shape = [1] * x.dim()
    shape[axis] = -1
    return p.reshape(shape)


def quantize(
    x: Tensor,
    scale: Tensor,
    zero_point: Tensor,
    qmin: int,
    qmax: int,
    axis: int | None = None,
) -> Tensor:
    """Integer codes ``q = clamp(round(x / s) + z, qmin, qmax)``.

    Args:
        x: real tensor.
        scale: step, 0-d or ``(C,)`` with ``axis``.
        zero_point: zero point, same shape as ``scale``.
        qmin: smallest code.
        qmax: largest code.
        axis: channel axis of ``x`` for per-channel parameters.

    Returns:
        The codes as a float tensor holding integers (cast with ``.to(torch.int8)`` etc.).
    """
    s = broadcast_to_axis(scale, x, axis)
    z = broadcast_to_axis(zero_point, x, axis).to(x.dtype)
    return torch.clamp(torch.round(x / s) + z, qmin, qmax)


def dequantize(q: Tensor, scale: Tensor, zero_point: Tensor, axis: int | None = None) -> Tensor:
    """Real values ``x_hat = s * (q - z)`` of integer codes ``q`` (any numeric dtype)."""
    s = broadcast_to_axis(scale, q, axis)
    z = broadcast_to_axis(zero_point, q, axis)
    return s * (q.to(s.dtype) - z.to(s.dtype))


def fake_quantize(
    x: Tensor,
    scale: Tensor,
    zero_point: Tensor,
    qmin: int,
    qmax: int,
    axis: int | None = None,
) -> Tensor:
    """Quantise then dequantise, with the clipped straight-through gradient.

    Forward: ``x_hat = s * (clamp(round(x / s) + z, qmin, qmax) - z)``.
    Backward (clipped STE, Bengio et al. 2013): ``d x_hat / d x = 1`` where the unclamped code
    ``round(x / s) + z`` lies in ``[qmin, qmax]``, else 0. ``scale`` and ``zero_point`` get no
    gradient here; use :class:`leandl.quantize.fake_quant.LSQQuantizer` for a learned step.

    Args:
        x: real tensor.
        scale: step, 0-d or ``(C,)`` with ``axis``.
        zero_point: zero point, same shape as ``scale``.
        qmin: smallest code.
        qmax: largest code.
        axis: channel axis of ``x`` for per-channel parameters.

    Returns:
        Tensor shaped like ``x`` whose values lie on the quantisation grid.
    """
    s = broadcast_to_axis(scale, x, axis).detach()
    z = broadcast_to_axis(zero_point, x, axis).detach().to(x.dtype)
    code = torch.round(x.detach() / s) + z
    inside = (code >= qmin) & (code <= qmax)
    x_hat = s * (torch.clamp(code, qmin, qmax) - z)
    # value = x_hat; gradient = 1 inside the range, 0 outside
    return torch.where(inside, x + (x_hat - x).detach(), x_hat)

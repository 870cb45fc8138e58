"""Fake-quantisation quantisers and the Conv1d/Conv2d/Linear modules that use them.

Quantisers (``nn.Module``; call on a tensor, get it back on the quantisation grid):

* :class:`ObserverQuantizer`: scale/zero point from an observer (min-max, EMA, percentile,
  MSE) while training and not frozen; clipped straight-through estimator (STE) gradient.
* :class:`LSQQuantizer`: learned step size ``s`` (Esser et al., ICLR 2020, arXiv 1902.08153),
  ``v_hat = round(clamp(v / s, -Q_N, Q_P)) * s``;
  ``d v_hat / d s = round(v/s) - v/s`` inside, ``-Q_N`` below, ``Q_P`` above, scaled by
  ``g = 1 / sqrt(N * Q_P)`` (``N`` = elements per step: weights of the layer, per output channel
  when per-channel, features of one sample for activations). Init ``s = 2 mean|v| / sqrt(Q_P)``.
  ``bits=1`` (signed) is binary: ``v_hat = s * sign(v)``, init ``s = mean|v|``.
* :class:`PACTQuantizer`: learned clip ``alpha`` for non-negative activations (Choi et al.,
  arXiv 1805.06085), ``y = clamp(x, 0, alpha)``, ``y_q = round(y / s) s``, ``s = alpha / (2^k - 1)``;
  ``d y_q / d alpha = 1[x >= alpha]``, ``d y_q / d x = 1[0 <= x < alpha]``.

Every quantiser has ``export_qparams() -> (scale, zero_point, qmin, qmax)`` so that its output
equals ``scale * (clamp(round(x / scale) + zero_point, qmin, qmax) - zero_point)``; this is
what :mod:`leandl.quantize.export` turns into ONNX QuantizeLinear/DequantizeLinear.

Modules :class:`FakeQuantConv1d`, :class:`FakeQuantConv2d`, :class:`FakeQuantLinear` subclass
their float layer (so MAC counters and pruning still see a Conv/Linear), share its parameters,
and compute ``layer(act_quant(x), weight_quant(W))``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from leandl.quantize.config import QuantConfig
from leandl.quantize.observers import make_observer
from leandl.quantize.primitives import broadcast_to_axis, fake_quantize, qrange

__all__ = [
    "grad_scale",
    "round_ste",
    "lsq_quantize",
    "pact_quantize",
    "ObserverQuantizer",
    "LSQQuantizer",
    "PACTQuantizer",
    "make_quantizer",
    "FakeQuantConv1d",
    "FakeQuantConv2d",
    "FakeQuantLinear",
    "FAKE_QUANT_TYPES",
]


def grad_scale(x: Tensor, g: float) -> Tensor:
    """Identity forward; gradient multiplied by ``g``."""
    return (x - x * g).detach() + x * g


def round_ste(x: Tensor) -> Tensor:
    """``round(x)`` forward, identity gradient."""
    return (torch.round(x) - x).detach() + x


def lsq_quantize(v: Tensor, step: Tensor, q_n: int, q_p: int, g: float, axis: int | None = None) -> Tensor:
    """LSQ fake quantisation ``round(clamp(v / s, -Q_N, Q_P)) * s`` with step gradient scale ``g``.

    Multi-level case; the 1-bit (binary) case lives in :class:`LSQQuantizer`.
    """
    s = broadcast_to_axis(grad_scale(step.abs().clamp_min(1e-8), g), v, axis)
    return round_ste(torch.clamp(v / s, -q_n, q_p)) * s


def pact_quantize(x: Tensor, alpha: Tensor, bits: int) -> Tensor:
    """PACT: ``clip(x, 0, alpha) = (|x| - |x - alpha| + alpha) / 2`` quantised to ``2^bits - 1`` steps."""
    y = 0.5 * (x.abs() - (x - alpha).abs() + alpha)
    s = alpha.detach().clamp_min(1e-8) / (2**bits - 1)
    return y + (torch.round(y / s) * s - y).detach()


class ObserverQuantizer(nn.Module):
    """Fake quantiser whose scale/zero point come from an observer (frozen: kept fixed)."""

    def __init__(self, config: QuantConfig, channels: int = 1) -> None:
        super().__init__()
        self.config = config
        self.bits, self.axis = config.bits, config.axis
        self.qmin, self.qmax = qrange(config.bits, config.symmetric, config.signed)
        self.observer = make_observer(config.observer, config.axis, channels)
        shape = () if config.axis is None else (channels,)
        self.register_buffer("scale", torch.ones(shape))
        self.register_buffer("zero_point", torch.zeros(shape, dtype=torch.int32))
        self.frozen = False

    def forward(self, x: Tensor) -> Tensor:
        if self.training and not self.frozen or not self.observer.ready:
            self.observer(x)
            with torch.no_grad():
                if self.config.symmetric and not self.config.is_signed:
                    # unsigned, zero point 0: [0, max] on [0, 2^b - 1]
                    s = (self.observer.max_val.clamp_min(0) / self.qmax).clamp_min(1e-8)
                    z = torch.zeros_like(self.zero_point)
                else:
                    s, z = self.observer.calculate_qparams(self.bits, self.config.symmetric)
                self.scale.copy_(s)
                self.zero_point.copy_(z)
        return fake_quantize(x, self.scale, self.zero_point, self.qmin, self.qmax, self.axis)

    def export_qparams(self) -> tuple[Tensor, Tensor, int, int]:
        return self.scale, self.zero_point, self.qmin, self.qmax


class LSQQuantizer(nn.Module):
    """Learned-step-size quantiser (arXiv 1902.08153); ``step`` is a trained parameter."""

    def __init__(self, config: QuantConfig, channels: int = 1) -> None:
        super().__init__()
        self.config = config
        self.bits, self.axis = config.bits, config.axis
        self.binary = config.bits == 1
        if self.binary:
            self.q_n, self.q_p = 1, 1
        else:
            lo, hi = qrange(config.bits, True, config.is_signed)
            self.q_n, self.q_p = -lo, hi
        shape = () if config.axis is None else (channels,)
        self.step = nn.Parameter(torch.ones(shape))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.uint8))

    @torch.no_grad()
    def _init(self, v: Tensor) -> None:
        dims = [d for d in range(v.dim()) if d != self.axis] if self.axis is not None else list(range(v.dim()))
        mean_abs = v.detach().abs().mean(dim=dims)
        self.step.copy_(mean_abs if self.binary else 2 * mean_abs / math.sqrt(self.q_p))
        self.step.clamp_(min=1e-6)
        self.initialized.fill_(1)

    def forward(self, v: Tensor) -> Tensor:
        if not bool(self.initialized):
            self._init(v)
        n = v.numel() / (v.shape[self.axis] if self.axis is not None else (1 if self.is_weight else v.shape[0]))
        g = 1.0 / math.sqrt(max(n, 1.0) * self.q_p)
        if self.binary:
            s = broadcast_to_axis(grad_scale(self.step.abs().clamp_min(1e-8), g), v, self.axis)
            u = torch.clamp(v / s, -1, 1)
            sign = torch.where(u >= 0, torch.ones_like(u), -torch.ones_like(u))
            return (u + (sign - u).detach()) * s
        return lsq_quantize(v, self.step, self.q_n, self.q_p, g, self.axis)

    @property
    def is_weight(self) -> bool:
        return self.axis is not None or getattr(self, "_is_weight", False)

    def export_qparams(self) -> tuple[Tensor, Tensor, int, int]:
        s = self.step.detach().abs().clamp_min(1e-8)
        return s, torch.zeros_like(s, dtype=torch.int32), -self.q_n, self.q_p


class PACTQuantizer(nn.Module):
    """PACT activation quantiser (arXiv 1805.06085) with learned clip ``alpha``.

    ``alpha`` starts at ``alpha_init`` or, when None, at the maximum of the first batch.
    """

    def __init__(self, config: QuantConfig, channels: int = 1, alpha_init: float | None = None) -> None:
        super().__init__()
        self.config = config
        self.bits, self.axis = config.bits, None
        self.alpha = nn.Parameter(torch.tensor(float(alpha_init or 1.0)))
        self.register_buffer("initialized", torch.tensor(1 if alpha_init else 0, dtype=torch.uint8))

    def forward(self, x: Tensor) -> Tensor:
        if not bool(self.initialized):
            with torch.no_grad():
                self.alpha.fill_(max(float(x.detach().max()), 1e-3))
                self.initialized.fill_(1)
        return pact_quantize(x, self.alpha, self.bits)

    def export_qparams(self) -> tuple[Tensor, Tensor, int, int]:
        s = self.alpha.detach().clamp_min(1e-8) / (2**self.bits - 1)
        return s, torch.zeros((), dtype=torch.int32), 0, 2**self.bits - 1


def make_quantizer(config: QuantConfig, channels: int = 1, is_weight: bool = False) -> nn.Module:
    """The quantiser module for ``config`` (``channels`` = size of the per-channel axis)."""
    table = {"observer": ObserverQuantizer, "lsq": LSQQuantizer, "pact": PACTQuantizer}
    q = table[config.method](config, channels)
    q._is_weight = is_weight
    return q


class _FakeQuantMixin:
    """Shared construction: copy a float layer's settings, share its parameters."""

    weight_quant: nn.Module | None
    act_quant: nn.Module | None

    def _setup_quant(self, wcfg: QuantConfig | None, acfg: QuantConfig | None) -> None:
        out_ch = self.weight.shape[0]
        self.weight_quant = make_quantizer(wcfg, out_ch, is_weight=True) if wcfg else None
        self.act_quant = make_quantizer(acfg, 1) if acfg else None
        self.wcfg, self.acfg = wcfg, acfg

    def quantized_weight(self) -> Tensor:
        """The fake-quantised weight (the float weight when weights are not quantised)."""
        return self.weight_quant(self.weight) if self.weight_quant is not None else self.weight

    def quantized_input(self, x: Tensor) -> Tensor:
        """The fake-quantised input activation."""
        return self.act_quant(x) if self.act_quant is not None else x


def _share(new: nn.Module, old: nn.Module) -> nn.Module:
    new.weight = old.weight
    new.bias = old.bias
    return new.to(old.weight.device)


class _FakeQuantConv(_FakeQuantMixin):
    """Shared ``from_float``/``forward`` of the fake-quant Conv1d/Conv2d modules."""

    @classmethod
    def from_float(cls, m: nn.Module, wcfg: QuantConfig | None, acfg: QuantConfig | None) -> nn.Module:
        """A fake-quant copy of conv ``m`` sharing its weight and bias tensors."""
        new = cls(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation,
                  m.groups, m.bias is not None, m.padding_mode, device="meta")
        new = _share(new, m)
        new._setup_quant(wcfg, acfg)
        return new.to(m.weight.device)

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(self.quantized_input(x), self.quantized_weight(), self.bias)


class FakeQuantConv2d(_FakeQuantConv, nn.Conv2d):
    """``nn.Conv2d`` computing ``conv(act_quant(x), weight_quant(W)) + b``."""


class FakeQuantConv1d(_FakeQuantConv, nn.Conv1d):
    """``nn.Conv1d`` computing ``conv(act_quant(x), weight_quant(W)) + b``."""


class FakeQuantLinear(_FakeQuantMixin, nn.Linear):
    """``nn.Linear`` computing ``act_quant(x) @ weight_quant(W).T + b``."""

    @classmethod
    def from_float(cls, m: nn.Linear, wcfg: QuantConfig | None, acfg: QuantConfig | None) -> FakeQuantLinear:
        new = cls(m.in_features, m.out_features, m.bias is not None, device="meta")
        new = _share(new, m)
        new._setup_quant(wcfg, acfg)
        return new.to(m.weight.device)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(self.quantized_input(x), self.quantized_weight(), self.bias)


FAKE_QUANT_TYPES: dict[type[nn.Module], type[nn.Module]] = {
    nn.Conv1d: FakeQuantConv1d,
    nn.Conv2d: FakeQuantConv2d,
    nn.Linear: FakeQuantLinear,
}

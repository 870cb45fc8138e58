"""Observers: estimate the clipping range ``[x_min, x_max]`` of a tensor from the data it sees.

* :class:`MinMaxObserver`: running min/max over every batch (outlier-sensitive).
* :class:`MovingAverageMinMaxObserver`: EMA of per-batch min/max, ``m <- m + c (m_batch - m)``,
  ``c = 0.01``; the usual QAT activation observer.
* :class:`PercentileObserver`: cumulative mean of the per-batch ``p``-th / ``(100-p)``-th
  percentiles (ONNX Runtime uses 99.999); robust to outliers.
* :class:`MSEObserver`: min/max, then at :meth:`calculate_qparams` a search over shrunk ranges
  ``r * [x_min, x_max]``, ``r`` in ``[0.3, 1]``, keeping the one with the smallest squared
  quantisation error on the last batch seen (per channel when per-channel).

All take ``axis`` (None = per tensor) and return ``(scale, zero_point)`` from
:meth:`calculate_qparams` ``(bits, symmetric)`` via :func:`~leandl.quantize.primitives.choose_qparams`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from leandl.quantize.primitives import choose_qparams, fake_quantize, qrange

__all__ = [
    "Observer",
    "MinMaxObserver",
    "MovingAverageMinMaxObserver",
    "PercentileObserver",
    "MSEObserver",
    "make_observer",
    "channel_minmax",
]


def channel_minmax(x: Tensor, axis: int | None) -> tuple[Tensor, Tensor]:
    """Min and max of ``x`` over all elements (``axis=None``) or per slice along ``axis``."""
    x = x.detach().float()
    if axis is None:
        return x.min(), x.max()
    flat = x.transpose(0, axis).reshape(x.shape[axis], -1)
    return flat.min(dim=1).values, flat.max(dim=1).values


class Observer(nn.Module):
    """Base class: keeps ``min_val``/``max_val`` buffers (saved with the weights)."""

    def __init__(self, axis: int | None = None, channels: int = 1) -> None:
        super().__init__()
        self.axis = axis
        shape = () if axis is None else (channels,)
        self.register_buffer("min_val", torch.full(shape, float("inf")))
        self.register_buffer("max_val", torch.full(shape, float("-inf")))

    @property
    def ready(self) -> bool:
        """Whether any data has been observed."""
        return bool(torch.isfinite(self.min_val).all())

    def _update(self, lo: Tensor, hi: Tensor) -> None:
        self.min_val.copy_(torch.minimum(self.min_val, lo))
        self.max_val.copy_(torch.maximum(self.max_val, hi))

    def forward(self, x: Tensor) -> Tensor:
        """Record ``x``'s range; return ``x`` unchanged."""
        with torch.no_grad():
            self._update(*channel_minmax(x, self.axis))
        return x

    def calculate_qparams(self, bits: int, symmetric: bool) -> tuple[Tensor, Tensor]:
        """``(scale, zero_point)`` for the observed range."""
        return choose_qparams(self.min_val, self.max_val, bits, symmetric)


class MinMaxObserver(Observer):
    """Running minimum and maximum of everything observed."""


class MovingAverageMinMaxObserver(Observer):
    """Exponential moving average of per-batch min/max with constant ``averaging_constant``."""

    def __init__(self, axis: int | None = None, channels: int = 1, averaging_constant: float = 0.01) -> None:
        super().__init__(axis, channels)
        if not 0.0 < averaging_constant <= 1.0:
            raise ValueError(f"averaging_constant must be in (0, 1], got {averaging_constant}")
        self.c = averaging_constant

    def _update(self, lo: Tensor, hi: Tensor) -> None:
        if not self.ready:
            self.min_val.copy_(lo)
            self.max_val.copy_(hi)
            return
        self.min_val.add_(self.c * (lo - self.min_val))
        self.max_val.add_(self.c * (hi - self.max_val))


class PercentileObserver(Observer):
    """Cumulative mean of per-batch ``(100 - p)``-th and ``p``-th percentiles (per tensor)."""

    def __init__(self, axis: int | None = None, channels: int = 1, percentile: float = 99.99,
                 max_samples: int = 1 << 20) -> None:
        super().__init__(None, 1)
        if not 50.0 < percentile <= 100.0:
            raise ValueError(f"percentile must be in (50, 100], got {percentile}")
        self.q = percentile / 100.0
        self.max_samples = max_samples
        self.register_buffer("count", torch.zeros(()))

    def forward(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            flat = x.detach().float().reshape(-1)
            if flat.numel() > self.max_samples:
                flat = flat[torch.randperm(flat.numel(), device=flat.device)[: self.max_samples]]
            lo, hi = torch.quantile(flat, 1.0 - self.q), torch.quantile(flat, self.q)
            if not self.ready:
                self.min_val.zero_()
                self.max_val.zero_()
            n = self.count + 1
            self.min_val.add_((lo - self.min_val) / n)
            self.max_val.add_((hi - self.max_val) / n)
            self.count.copy_(n)
        return x


class MSEObserver(Observer):
    """Min/max, then the shrink ratio of the range with the least squared error on the last batch."""

    def __init__(self, axis: int | None = None, channels: int = 1, grid: int = 36) -> None:
        super().__init__(axis, channels)
        self.grid = grid
        self._last: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        self._last = x.detach().float()
        return super().forward(x)

    def calculate_qparams(self, bits: int, symmetric: bool) -> tuple[Tensor, Tensor]:
        if self._last is None:
            return super().calculate_qparams(bits, symmetric)
        x, axis = self._last, self.axis
        qmin, qmax = qrange(bits, symmetric)
        best = None
        for r in torch.linspace(0.3, 1.0, self.grid).tolist():
            s, z = choose_qparams(self.min_val * r, self.max_val * r, bits, symmetric)
            err = (fake_quantize(x, s, z, qmin, qmax, axis) - x).pow(2)
            err = err.sum() if axis is None else err.transpose(0, axis).reshape(x.shape[axis], -1).sum(1)
            if best is None:
                best = (err, s, z)
            else:
                better = err < best[0]
                best = (torch.where(better, err, best[0]), torch.where(better, s, best[1]),
                        torch.where(better, z, best[2]))
        return best[1], best[2]


def make_observer(name: str, axis: int | None = None, channels: int = 1) -> Observer:
    """Observer by name: ``minmax``, ``moving_average``, ``percentile`` or ``mse``."""
    table = {"minmax": MinMaxObserver, "moving_average": MovingAverageMinMaxObserver,
             "percentile": PercentileObserver, "mse": MSEObserver}
    if name not in table:
        raise ValueError(f"unknown observer '{name}'; choose one of {sorted(table)}")
    return table[name](axis=axis, channels=channels)

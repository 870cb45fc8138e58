"""The search space: candidate operations on a cell's edges, for 1-D signals and 2-D images.

Each operation maps ``(N, C, *S)`` to ``(N, C, *S')`` with ``S' = S`` on a normal edge and
``S' = ceil(S / 2)`` on a reduction edge (``stride=2``). The set follows DARTS's (arXiv
1806.09055) with the same ReLU-conv-BN ordering:

=============  =======================================================================
``none``       zero (lets a node ignore an input; never kept when deriving)
``skip``       identity; on a reduction edge a factorised reduce (two 1x1 convs, stride 2)
``max_pool_3`` 3-wide max pooling (then BN)
``avg_pool_3`` 3-wide average pooling, padding not counted (then BN)
``conv_3/5``   ReLU, full conv k, BN (kept for small, narrow signals such as MNIST-1D)
``sep_conv_3/5`` (ReLU, depthwise k, pointwise 1x1, BN) twice, DARTS's separable conv
``dil_conv_3`` ReLU, depthwise k3 dilation 2, pointwise 1x1, BN
=============  =======================================================================

BN layers inside ops have ``affine=False`` during search (DARTS) and ``affine=True`` in the
derived network.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from leandl.errors import ConfigError

__all__ = ["OPS", "PRIMITIVES", "build_op", "check_ops"]


def _layers(dims: int) -> tuple[type[nn.Module], type[nn.Module], type[nn.Module], type[nn.Module]]:
    if dims == 1:
        return nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d, nn.AvgPool1d
    if dims == 2:
        return nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.AvgPool2d
    raise ConfigError(f"cells support 1-D or 2-D inputs, got {dims}-D", where="nas.input_shape")


class Zero(nn.Module):
    """The ``none`` op: zeros of the output shape (costs no MACs)."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        idx = tuple(slice(None, None, self.stride) for _ in x.shape[2:])
        return x[(slice(None), slice(None), *idx)].mul(0.0)


class FactorizedReduce(nn.Module):
    """``skip`` on a reduction edge: ReLU, two offset 1x1 stride-2 convs to C/2 each, concat, BN."""

    def __init__(self, c: int, dims: int, affine: bool) -> None:
        super().__init__()
        conv, bn, _, _ = _layers(dims)
        if c % 2:
            raise ConfigError(f"reduction cells need an even width, got {c}", where="nas.width")
        self.relu = nn.ReLU(inplace=False)
        self.c1, self.c2 = conv(c, c // 2, 1, 2, 0, bias=False), conv(c, c // 2, 1, 2, 0, bias=False)
        self.bn = bn(c, affine=affine)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(x)
        shifted = nn.functional.pad(x[(slice(None), slice(None), *(slice(1, None),) * (x.dim() - 2))],
                                    (0, 1) * (x.dim() - 2))
        return self.bn(torch.cat([self.c1(x), self.c2(shifted)], dim=1))


def _relu_conv_bn(c: int, k: int, stride: int, dims: int, affine: bool) -> nn.Module:
    conv, bn, _, _ = _layers(dims)
    return nn.Sequential(nn.ReLU(inplace=False), conv(c, c, k, stride, k // 2, bias=False), bn(c, affine=affine))


def _dw_pw(c: int, k: int, stride: int, dilation: int, dims: int, affine: bool) -> list[nn.Module]:
    conv, bn, _, _ = _layers(dims)
    pad = dilation * (k - 1) // 2
    return [nn.ReLU(inplace=False), conv(c, c, k, stride, pad, dilation=dilation, groups=c, bias=False),
            conv(c, c, 1, 1, 0, bias=False), bn(c, affine=affine)]


def _pool(kind: str, c: int, stride: int, dims: int, affine: bool) -> nn.Module:
    _, bn, maxp, avgp = _layers(dims)
    pool = maxp(3, stride, 1) if kind == "max" else avgp(3, stride, 1, count_include_pad=False)
    return nn.Sequential(pool, bn(c, affine=affine))


Builder = Callable[[int, int, int, bool], nn.Module]

OPS: dict[str, Builder] = {
    "none": lambda c, s, d, a: Zero(s),
    "skip": lambda c, s, d, a: nn.Identity() if s == 1 else FactorizedReduce(c, d, a),
    "max_pool_3": lambda c, s, d, a: _pool("max", c, s, d, a),
    "avg_pool_3": lambda c, s, d, a: _pool("avg", c, s, d, a),
    "conv_3": lambda c, s, d, a: _relu_conv_bn(c, 3, s, d, a),
    "conv_5": lambda c, s, d, a: _relu_conv_bn(c, 5, s, d, a),
    "sep_conv_3": lambda c, s, d, a: nn.Sequential(*_dw_pw(c, 3, s, 1, d, a), *_dw_pw(c, 3, 1, 1, d, a)),
    "sep_conv_5": lambda c, s, d, a: nn.Sequential(*_dw_pw(c, 5, s, 1, d, a), *_dw_pw(c, 5, 1, 1, d, a)),
    "dil_conv_3": lambda c, s, d, a: nn.Sequential(*_dw_pw(c, 3, s, 2, d, a)),
}
PRIMITIVES: tuple[str, ...] = tuple(OPS)


def check_ops(ops: list[str] | tuple[str, ...], where: str = "nas.ops") -> list[str]:
    """Validate a list of op names (known, unique, at least one that is not ``none``)."""
    ops = list(ops)
    unknown = [o for o in ops if o not in OPS]
    if unknown:
        raise ConfigError(f"unknown operation '{unknown[0]}'; known: {', '.join(PRIMITIVES)}", where=where)
    if len(set(ops)) != len(ops):
        raise ConfigError(f"operations repeat: {ops}", where=where)
    if not [o for o in ops if o != "none"]:
        raise ConfigError("the search space needs an operation other than 'none'", where=where)
    return ops


def build_op(name: str, channels: int, stride: int, dims: int, affine: bool = True) -> nn.Module:
    """Build one candidate op (see the module docstring)."""
    if name not in OPS:
        check_ops([name], where="op")
    return OPS[name](channels, stride, dims, affine)

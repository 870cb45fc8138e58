"""MobileNetV2 for small images (Sandler et al., "MobileNetV2", arXiv 1801.04381).

The CIFAR variant: stride 1 in the stem and in the first two stages (the ImageNet model strides
by 2 there), otherwise the paper's inverted-residual table, ReLU6, a 1x1 conv to 1280 channels,
dropout 0.2 and a linear classifier. At 32x32: 2.24 M params, 88.0 M MACs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from leandl.models._common import Backbone, ClassifierHead, check_input_shape
from leandl.registry import MODELS

__all__ = ["InvertedResidual", "MobileNetV2", "mobilenetv2"]

# (expansion t, output channels c, repeats n, first stride s); strides of rows 1-2 are 1 for CIFAR.
_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
             (6, 160, 3, 2), (6, 320, 1, 1))


def _conv_bn_relu6(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout), nn.ReLU6(inplace=True)]


class InvertedResidual(nn.Module):
    """1x1 expand (t x) -> 3x3 depthwise (stride) -> 1x1 linear project; residual if shapes match.

    Args:
        cin: input channels.
        cout: output channels.
        stride: depthwise stride.
        expansion: hidden width = ``expansion * cin`` (no expand conv when 1).
    """

    def __init__(self, cin: int, cout: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = cin * expansion
        layers: list[nn.Module] = _conv_bn_relu6(cin, hidden, 1) if expansion != 1 else []
        layers += _conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden)
        layers += [nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)
        self.use_residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, cin, H, W) -> (N, cout, H / stride, W / stride)."""
        y = self.conv(x)
        return x + y if self.use_residual else y


class MobileNetV2(Backbone):
    """stem, ``layer1``-``layer7`` (one per table row), ``last_conv`` (1x1 to 1280), head.

    Args:
        in_channels: input channels.
        num_classes: number of classes.
        width_mult: multiplies every width (rounded to multiples of 8), as in the paper.
        dropout: dropout before the classifier.
    """

    exit_points = tuple(f"layer{i}" for i in range(1, 8))
    _chain = ("stem", *exit_points, "last_conv")

    def __init__(self, in_channels: int, num_classes: int, width_mult: float = 1.0,
                 dropout: float = 0.2) -> None:
        super().__init__()
        cin = _round8(32 * width_mult)
        self.stem = nn.Sequential(*_conv_bn_relu6(in_channels, cin, 3, 1))
        for i, (t, c, n, s) in enumerate(_SETTINGS, start=1):
            cout = _round8(c * width_mult)
            blocks = [InvertedResidual(cin if j == 0 else cout, cout, s if j == 0 else 1, t)
                      for j in range(n)]
            setattr(self, f"layer{i}", nn.Sequential(*blocks))
            cin = cout
        last = _round8(1280 * max(1.0, width_mult))
        self.last_conv = nn.Sequential(*_conv_bn_relu6(cin, last, 1))
        self.head = ClassifierHead(last, num_classes, dropout=dropout)
        self._init()

    def _init(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)


def _round8(v: float) -> int:
    """Round to the nearest multiple of 8, never below 90 % of ``v`` (the paper's rule)."""
    out = max(8, int(v + 4) // 8 * 8)
    return out + 8 if out < 0.9 * v else out


@MODELS.register("mobilenetv2")
def mobilenetv2(*, num_classes: int = 10, input_shape: Sequence[int] = (3, 32, 32),
                width_mult: float = 1.0, dropout: float = 0.2) -> MobileNetV2:
    """MobileNetV2, CIFAR strides (arXiv 1801.04381): 2.24 M params, 88 M MACs at 32x32.

    Args:
        num_classes: number of classes.
        input_shape: one sample (C, H, W).
        width_mult: width multiplier.
        dropout: dropout before the classifier.
    """
    c, _, _ = check_input_shape("mobilenetv2", input_shape, ndim=2)
    return MobileNetV2(c, num_classes, width_mult=width_mult, dropout=dropout)

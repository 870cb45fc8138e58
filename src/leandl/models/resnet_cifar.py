"""CIFAR-style ResNets 20/32/44/56/110 (He et al., "Deep Residual Learning", arXiv 1512.03385).

Three stages of ``n`` basic blocks (16, 32, 64 channels; n = (depth - 2) / 6) after a 3x3 stem.
Where a block changes the shape, the shortcut is either:

- ``"B"`` (default): a 1x1 conv + BN projection. Structured pruning handles it, so it is the
  default here (ResNet-56: 0.856 M params, 125.75 M MACs at 32x32).
- ``"A"``: parameter-free, subsample and zero-pad the channels, as in the paper's CIFAR runs
  (ResNet-56: 0.853 M params, 125.49 M MACs). Dependency-graph pruning cannot slice it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from leandl.errors import ModelError
from leandl.models._common import (
    Backbone,
    ClassifierHead,
    check_input_shape,
    conv_bn_relu,
    init_weights,
)
from leandl.registry import MODELS

__all__ = ["BasicBlock", "ZeroPadShortcut", "CifarResNet", "resnet20", "resnet32", "resnet44",
           "resnet56", "resnet110"]


class ZeroPadShortcut(nn.Module):
    """Option A shortcut: take every ``stride``-th pixel and zero-pad the new channels."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.extra = planes - in_planes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, C + extra, H / stride, W / stride)."""
        x = x[:, :, :: self.stride, :: self.stride]
        before = self.extra // 2
        return F.pad(x, (0, 0, 0, 0, before, self.extra - before))


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut, then ReLU.

    Args:
        in_planes: input channels.
        planes: output channels.
        stride: stride of the first conv.
        shortcut: ``"A"`` (zero-pad) or ``"B"`` (1x1 conv + BN) when the shape changes.
    """

    def __init__(self, in_planes: int, planes: int, stride: int = 1, shortcut: str = "B") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            if shortcut == "A":
                self.shortcut = ZeroPadShortcut(in_planes, planes, stride)
            else:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
                )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_planes, H, W) -> (N, planes, H / stride, W / stride)."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class CifarResNet(Backbone):
    """ResNet-(6n+2) for small images: stem, ``layer1``-``layer3`` of ``n`` blocks, head.

    Args:
        depth: 6n + 2 (20, 32, 44, 56, 110, ...).
        in_channels: input channels.
        num_classes: number of classes.
        shortcut: ``"A"`` or ``"B"``.
        width: channels of the first stage (16 in the paper; stages use 1x, 2x, 4x).
    """

    exit_points = ("layer1", "layer2", "layer3")
    _chain = ("stem", "layer1", "layer2", "layer3")

    def __init__(
        self, depth: int, in_channels: int, num_classes: int, shortcut: str = "B", width: int = 16
    ) -> None:
        super().__init__()
        n = (depth - 2) // 6
        self.stem = conv_bn_relu(in_channels, width)
        planes = width
        for i, (mult, stride) in enumerate(((1, 1), (2, 2), (4, 2)), start=1):
            blocks = []
            for j in range(n):
                blocks.append(BasicBlock(planes, width * mult, stride if j == 0 else 1, shortcut))
                planes = width * mult
            setattr(self, f"layer{i}", nn.Sequential(*blocks))
        self.head = ClassifierHead(planes, num_classes)
        init_weights(self)


def _build(depth: int, num_classes: int, input_shape: Sequence[int], **kw: Any) -> CifarResNet:
    name = f"resnet{depth}"
    c, _, _ = check_input_shape(name, input_shape, ndim=2)
    shortcut = str(kw.get("shortcut", "B")).upper()
    if shortcut not in ("A", "B"):
        raise ModelError(
            f"model '{name}': unknown shortcut {kw.get('shortcut')!r}",
            fix='use shortcut="B" (1x1 conv projection, prunable) or "A" (zero-pad)',
        )
    return CifarResNet(depth, c, num_classes, shortcut=shortcut, width=int(kw.get("width", 16)))


@MODELS.register("resnet20")
def resnet20(*, num_classes: int = 10, input_shape: Sequence[int] = (3, 32, 32),
             shortcut: str = "B", width: int = 16) -> CifarResNet:
    """CIFAR ResNet-20 (arXiv 1512.03385): 0.27 M params, 40.8 M MACs at 32x32."""
    return _build(20, num_classes, input_shape, shortcut=shortcut, width=width)


@MODELS.register("resnet32")
def resnet32(*, num_classes: int = 10, input_shape: Sequence[int] = (3, 32, 32),
             shortcut: str = "B", width: int = 16) -> CifarResNet:
    """CIFAR ResNet-32 (arXiv 1512.03385): 0.47 M params, 69 M MACs at 32x32."""
    return _build(32, num_classes, input_shape, shortcut=shortcut, width=width)


@MODELS.register("resnet44")
def resnet44(*, num_classes: int = 10, input_shape: Sequence[int] = (3, 32, 32),
             shortcut: str = "B", width: int = 16) -> CifarResNet:
    """CIFAR ResNet-44 (arXiv 1512.03385): 0.66 M params, 97 M MACs at 32x32."""
    return _build(44, num_classes, input_shape, shortcut=shortcut, width=width)


@MODELS.register("resnet56")
def resnet56(*, num_classes: int = 10, input_shape: Sequence[int] = (3, 32, 32),
             shortcut: str = "B", width: int = 16) -> CifarResNet:
    """CIFAR ResNet-56 (arXiv 1512.03385): 0.86 M params, 125.8 M MACs at 32x32."""
    return _build(56, num_classes, input_shape, shortcut=shortcut, width=width)


@MODELS.register("resnet110")
def resnet110(*, num_classes: int = 10, input_shape: Sequence[int] = (3, 32, 32),
              shortcut: str = "B", width: int = 16) -> CifarResNet:
    """CIFAR ResNet-110 (arXiv 1512.03385): 1.73 M params, 253 M MACs at 32x32."""
    return _build(110, num_classes, input_shape, shortcut=shortcut, width=width)

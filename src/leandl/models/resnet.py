"""ImageNet-layout ResNet-18 and ResNet-50 (He et al., arXiv 1512.03385) for any input size.

Inputs up to 64 px get a CIFAR stem (3x3 stride-1 conv, no max-pool); larger inputs the
ImageNet stem (7x7 stride-2 conv, 3x3 stride-2 max-pool). Shortcuts that change shape are 1x1
conv + BN projections; the head is adaptive average pooling and a linear layer, so any input
from 8x8 up runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from leandl.models._common import Backbone, ClassifierHead, check_input_shape, init_weights
from leandl.models.resnet_cifar import BasicBlock
from leandl.registry import MODELS

__all__ = ["Bottleneck", "ResNet", "resnet18", "resnet50"]


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 (stride) -> 1x1 expand (x4), with a projection shortcut on shape change.

    Args:
        in_planes: input channels.
        planes: bottleneck width; the block outputs ``4 * planes`` channels.
        stride: stride of the 3x3 conv (torchvision "ResNet v1.5" placement).
    """

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, out, 1, stride, bias=False), nn.BatchNorm2d(out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_planes, H, W) -> (N, 4 * planes, H / stride, W / stride)."""
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + self.shortcut(x))


class ResNet(Backbone):
    """stem, ``layer1``-``layer4`` (64, 128, 256, 512 base widths), head.

    Args:
        block: ``BasicBlock`` or ``Bottleneck``.
        layers: blocks per stage.
        in_channels: input channels.
        num_classes: number of classes.
        small_input: use the CIFAR stem (3x3 stride 1, no max-pool).
    """

    exit_points = ("layer1", "layer2", "layer3", "layer4")
    _chain = ("stem", "layer1", "layer2", "layer3", "layer4")

    def __init__(
        self, block: type, layers: Sequence[int], in_channels: int, num_classes: int,
        small_input: bool,
    ) -> None:
        super().__init__()
        if small_input:
            stem = [nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64),
                    nn.ReLU(inplace=True)]
        else:
            stem = [nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64),
                    nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)]
        self.stem = nn.Sequential(*stem)
        expansion = getattr(block, "expansion", 1)
        planes = 64
        for i, (n, width) in enumerate(zip(layers, (64, 128, 256, 512)), start=1):
            stride = 1 if i == 1 else 2
            blocks = []
            for j in range(n):
                blocks.append(block(planes, width, stride if j == 0 else 1))
                planes = width * expansion
            setattr(self, f"layer{i}", nn.Sequential(*blocks))
        self.head = ClassifierHead(planes, num_classes)
        init_weights(self)


@MODELS.register("resnet18")
def resnet18(*, num_classes: int = 10, input_shape: Sequence[int] = (3, 32, 32)) -> ResNet:
    """ResNet-18 (arXiv 1512.03385), CIFAR stem up to 64 px: 11.2 M params at 32x32."""
    c, h, w = check_input_shape("resnet18", input_shape, ndim=2)
    return ResNet(BasicBlock, (2, 2, 2, 2), c, num_classes, small_input=max(h, w) <= 64)


@MODELS.register("resnet50")
def resnet50(*, num_classes: int = 10, input_shape: Sequence[int] = (3, 32, 32)) -> ResNet:
    """ResNet-50 (arXiv 1512.03385), bottleneck blocks, CIFAR stem up to 64 px: 23.5 M params."""
    c, h, w = check_input_shape("resnet50", input_shape, ndim=2)
    return ResNet(Bottleneck, (3, 4, 6, 3), c, num_classes, small_input=max(h, w) <= 64)

"""VGG-11 and VGG-16 with batch norm, CIFAR layout (Simonyan & Zisserman, arXiv 1409.1556).

3x3 conv + BN + ReLU layers in five groups, each group ending in a 2x2 max-pool; a pool is
replaced by ``nn.Identity`` once the map is already 1x1, so 8x8 inputs run. The head is an
adaptive average pool and one linear layer (512 -> classes), as in the common CIFAR variant.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from leandl.models._common import (
    Backbone,
    ClassifierHead,
    check_input_shape,
    conv_bn_relu,
    init_weights,
)
from leandl.registry import MODELS

__all__ = ["VGG", "vgg11_bn", "vgg16_bn"]

_CFG = {
    11: ((64,), (128,), (256, 256), (512, 512), (512, 512)),
    16: ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),
}


class VGG(Backbone):
    """``layer1``-``layer5`` (conv groups, each ending in a pool), then head.

    Args:
        groups: output channels of each conv, grouped by stage.
        input_shape: one sample (C, H, W).
        num_classes: number of classes.
    """

    exit_points = ("layer1", "layer2", "layer3", "layer4", "layer5")
    _chain = ("layer1", "layer2", "layer3", "layer4", "layer5")

    def __init__(self, groups: Sequence[Sequence[int]], input_shape: Sequence[int], num_classes: int):
        super().__init__()
        cin, h, w = input_shape
        for i, widths in enumerate(groups, start=1):
            layers: list[nn.Module] = []
            for cout in widths:
                layers.extend(conv_bn_relu(cin, cout))
                cin = cout
            if h > 1 or w > 1:
                kernel = (2 if h > 1 else 1, 2 if w > 1 else 1)
                layers.append(nn.MaxPool2d(kernel, ceil_mode=True))
                h, w = -(-h // kernel[0]), -(-w // kernel[1])
            else:
                layers.append(nn.Identity())
            setattr(self, f"layer{i}", nn.Sequential(*layers))
        self.head = ClassifierHead(cin, num_classes)
        init_weights(self)


@MODELS.register("vgg11_bn")
def vgg11_bn(*, num_classes: int = 10, input_shape: Sequence[int] = (3, 32, 32)) -> VGG:
    """VGG-11 with batch norm, CIFAR layout (arXiv 1409.1556): 9.2 M params at 32x32."""
    shape = check_input_shape("vgg11_bn", input_shape, ndim=2)
    return VGG(_CFG[11], shape, num_classes)


@MODELS.register("vgg16_bn")
def vgg16_bn(*, num_classes: int = 10, input_shape: Sequence[int] = (3, 32, 32)) -> VGG:
    """VGG-16 with batch norm, CIFAR layout (arXiv 1409.1556): 14.7 M params at 32x32."""
    shape = check_input_shape("vgg16_bn", input_shape, ndim=2)
    return VGG(_CFG[16], shape, num_classes)

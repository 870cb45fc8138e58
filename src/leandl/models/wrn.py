"""Wide ResNets WRN-16-2 and WRN-40-2 (Zagoruyko & Komodakis, arXiv 1605.07146).

Pre-activation basic blocks (BN-ReLU-conv3x3, twice), three stages of widths 16k, 32k, 64k with
n = (depth - 4) / 6 blocks each, a 1x1 conv shortcut where the shape changes, and a final
BN-ReLU (``norm``) before the head.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from leandl.errors import ModelError
from leandl.models._common import Backbone, ClassifierHead, check_input_shape, init_weights
from leandl.registry import MODELS

__all__ = ["WideBlock", "WideResNet", "wrn16_2", "wrn40_2"]


class WideBlock(nn.Module):
    """BN-ReLU-conv3x3(stride)-BN-ReLU-(dropout)-conv3x3 plus the (projected) input.

    Args:
        cin: input channels.
        cout: output channels.
        stride: stride of the first conv.
        dropout: dropout between the convs (0.3 in some of the paper's runs).
    """

    def __init__(self, cin: int, cout: int, stride: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.dropout = dropout
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, cin, H, W) -> (N, cout, H / stride, W / stride)."""
        a = F.relu(self.bn1(x))
        # The projection sees the pre-activated input, the identity the raw one (as in the paper).
        skip = x if isinstance(self.shortcut, nn.Identity) else self.shortcut(a)
        y = self.conv1(a)
        y = F.relu(self.bn2(y))
        if self.dropout > 0:
            y = F.dropout(y, self.dropout, self.training)
        return self.conv2(y) + skip


class WideResNet(Backbone):
    """WRN-depth-k: stem conv, ``layer1``-``layer3``, ``norm`` (BN-ReLU), head.

    Args:
        depth: 6n + 4 (16, 22, 28, 40, ...).
        widen: width factor k.
        in_channels: input channels.
        num_classes: number of classes.
        dropout: dropout inside each block.
    """

    exit_points = ("layer1", "layer2", "layer3")
    _chain = ("stem", "layer1", "layer2", "layer3", "norm")

    def __init__(self, depth: int, widen: int, in_channels: int, num_classes: int,
                 dropout: float = 0.0) -> None:
        super().__init__()
        n = (depth - 4) // 6
        self.stem = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        cin = 16
        for i, (width, stride) in enumerate(((16, 1), (32, 2), (64, 2)), start=1):
            cout = width * widen
            blocks = [WideBlock(cin if j == 0 else cout, cout, stride if j == 0 else 1, dropout)
                      for j in range(n)]
            setattr(self, f"layer{i}", nn.Sequential(*blocks))
            cin = cout
        self.norm = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(inplace=True))
        self.head = ClassifierHead(cin, num_classes)
        init_weights(self)


def _build(name: str, depth: int, widen: int, num_classes: int, input_shape: Sequence[int],
           dropout: float) -> WideResNet:
    c, _, _ = check_input_shape(name, input_shape, ndim=2)
    if not 0.0 <= dropout < 1.0:
        raise ModelError(f"model '{name}': dropout must be in [0, 1), got {dropout}")
    return WideResNet(depth, widen, c, num_classes, dropout)


@MODELS.register("wrn16_2")
def wrn16_2(*, num_classes: int = 10, input_shape: Sequence[int] = (3, 32, 32),
            dropout: float = 0.0) -> WideResNet:
    """Wide ResNet 16-2 (arXiv 1605.07146): 0.69 M params at 32x32."""
    return _build("wrn16_2", 16, 2, num_classes, input_shape, dropout)


@MODELS.register("wrn40_2")
def wrn40_2(*, num_classes: int = 10, input_shape: Sequence[int] = (3, 32, 32),
            dropout: float = 0.0) -> WideResNet:
    """Wide ResNet 40-2 (arXiv 1605.07146): 2.2 M params at 32x32."""
    return _build("wrn40_2", 40, 2, num_classes, input_shape, dropout)

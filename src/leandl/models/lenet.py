"""LeNet-5 (LeCun et al., "Gradient-based learning applied to document recognition", 1998).

The 1998 paper predates arXiv. This version uses ReLU and max-pooling (the common modern
reading); the convolutions are padded as needed so that 8x8 and 28x28 inputs keep the classic
5x5 kernels, while 32x32 inputs get exactly the original layout (400 features into F5).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from leandl.models._common import Backbone, ClassifierHead, check_input_shape
from leandl.registry import MODELS

__all__ = ["LeNet5", "lenet5"]


def _conv_pool(
    cin: int, cout: int, size: tuple[int, int], pad_below: int
) -> tuple[nn.Module, tuple[int, int]]:
    """5x5 conv (padded by 2 along a side shorter than ``pad_below``), ReLU, 2x2 max-pool."""
    pads = tuple(2 if s < pad_below else 0 for s in size)
    out = tuple(s + 2 * p - 4 for s, p in zip(size, pads))
    pooled = tuple(o // 2 for o in out)
    block = nn.Sequential(
        nn.Conv2d(cin, cout, 5, padding=pads), nn.ReLU(inplace=True), nn.MaxPool2d(2)
    )
    return block, pooled  # type: ignore[return-value]


class LeNet5(Backbone):
    """C1 (6, 5x5) -> S2 -> C3 (16, 5x5) -> S4 -> F5 (120) -> F6 (84) -> ``head.fc``.

    Args:
        input_shape: one sample (C, H, W), at least 4x4.
        num_classes: number of classes.
    """

    exit_points = ("layer1", "layer2", "layer3")
    feature_layout = "nchw"
    _chain = ("layer1", "layer2", "layer3")

    def __init__(self, input_shape: Sequence[int], num_classes: int) -> None:
        super().__init__()
        c, h, w = input_shape
        self.layer1, size = _conv_pool(c, 6, (h, w), pad_below=32)
        self.layer2, size = _conv_pool(6, 16, size, pad_below=10)
        self.layer3 = nn.Sequential(
            nn.Flatten(1),
            nn.Linear(16 * size[0] * size[1], 120),
            nn.ReLU(inplace=True),
            nn.Linear(120, 84),
            nn.ReLU(inplace=True),
        )
        self.head = ClassifierHead(84, num_classes, pool="none")


@MODELS.register("lenet5")
def lenet5(*, num_classes: int = 10, input_shape: Sequence[int] = (1, 28, 28)) -> LeNet5:
    """LeNet-5 with ReLU and max-pool (LeCun et al. 1998); 8x8 inputs and up.

    Args:
        num_classes: number of classes.
        input_shape: one sample (C, H, W), H and W >= 4.
    """
    shape = check_input_shape("lenet5", input_shape, ndim=2, min_size=4)
    return LeNet5(shape, num_classes)

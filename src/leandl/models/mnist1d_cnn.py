"""A 1-D convolutional network for MNIST-1D signals shaped (1, 40).

After the CNN baseline of Greydanus & Kobak, "Scaling down deep learning with MNIST-1D"
(arXiv 2011.14439): three 1-D convolutions, then a linear classifier over the flattened map
(position matters in MNIST-1D, so the map is not averaged away).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from leandl.models._common import Backbone, ClassifierHead, check_input_shape
from leandl.registry import MODELS

__all__ = ["MNIST1DCNN", "mnist1d_cnn"]


def _conv1d_bn_relu(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv1d(cin, cout, 5, stride, 2, bias=False), nn.BatchNorm1d(cout), nn.ReLU(inplace=True)
    )


class MNIST1DCNN(Backbone):
    """conv1d (w, stride 1) -> conv1d (2w, stride 2) -> conv1d (2w, stride 2) -> flatten -> fc.

    Args:
        in_channels: input channels.
        length: input length L.
        num_classes: number of classes.
        width: channels of the first conv.
    """

    exit_points = ("stem", "layer1", "layer2")
    feature_layout = "ncl"
    _chain = ("stem", "layer1", "layer2")

    def __init__(self, in_channels: int, length: int, num_classes: int, width: int = 32) -> None:
        super().__init__()
        self.stem = _conv1d_bn_relu(in_channels, width, 1)
        self.layer1 = _conv1d_bn_relu(width, 2 * width, 2)
        self.layer2 = _conv1d_bn_relu(2 * width, 2 * width, 2)
        out_len = ((length - 1) // 2) // 2 + 1  # two stride-2 convs with 'same' padding
        self.head = ClassifierHead(2 * width * out_len, num_classes, pool="none")


@MODELS.register("mnist1d_cnn")
def mnist1d_cnn(
    *, num_classes: int = 10, input_shape: Sequence[int] = (1, 40), width: int = 32
) -> MNIST1DCNN:
    """1-D CNN for MNIST-1D signals (1, 40) (arXiv 2011.14439 baseline).

    Args:
        num_classes: number of classes.
        input_shape: one sample (C, L).
        width: channels of the first conv (the others use 2x).
    """
    c, length = check_input_shape("mnist1d_cnn", input_shape, ndim=1)
    return MNIST1DCNN(c, length, num_classes, width=width)

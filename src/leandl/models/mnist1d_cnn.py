"""A 1-D convolutional network for MNIST-1D signals shaped (1, 40).

After the CNN baseline of Greydanus & Kobak, "Scaling down deep learning with MNIST-1D"
(arXiv 2011.14439): three 1-D convolutions, then a linear classifier over the flattened map
(position matters in MNIST-1D, so the map is not averaged away).

``blocks > 1`` deepens each of the three stages to ``blocks`` conv-BN-ReLU blocks (the first
block of a stage sets its width and stride, the others keep them), giving ``3 * blocks - 1``
block boundaries for early exits spread almost evenly over the MACs (``exit_points`` lists them
in forward order: ``stem.0, stem.1, ..., layer2.{blocks-2}``). ``blocks=1`` is the original
three-layer network, unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from leandl.errors import ModelError
from leandl.models._common import Backbone, ClassifierHead, check_input_shape
from leandl.registry import MODELS

__all__ = ["MNIST1DCNN", "mnist1d_cnn"]

_STAGES = ("stem", "layer1", "layer2")


def _conv1d_bn_relu(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv1d(cin, cout, 5, stride, 2, bias=False), nn.BatchNorm1d(cout), nn.ReLU(inplace=True)
    )


def _stage(cin: int, cout: int, stride: int, blocks: int) -> nn.Sequential:
    if blocks == 1:
        return _conv1d_bn_relu(cin, cout, stride)
    return nn.Sequential(
        _conv1d_bn_relu(cin, cout, stride), *(_conv1d_bn_relu(cout, cout, 1) for _ in range(blocks - 1))
    )


class MNIST1DCNN(Backbone):
    """conv1d (w, stride 1) -> conv1d (2w, stride 2) -> conv1d (2w, stride 2) -> flatten -> fc.

    Args:
        in_channels: input channels.
        length: input length L.
        num_classes: number of classes.
        width: channels of the first conv.
        blocks: conv-BN-ReLU blocks per stage (1: the original network).
    """

    exit_points: tuple[str, ...] = _STAGES
    feature_layout = "ncl"
    _chain = _STAGES

    def __init__(self, in_channels: int, length: int, num_classes: int, width: int = 32,
                 blocks: int = 1) -> None:
        super().__init__()
        if blocks < 1:
            raise ModelError(f"blocks must be >= 1, got {blocks}", where="mnist1d_cnn(blocks=...)",
                             fix="use blocks=1 for the original network, 2-4 for more exit points")
        self.stem = _stage(in_channels, width, 1, blocks)
        self.layer1 = _stage(width, 2 * width, 2, blocks)
        self.layer2 = _stage(2 * width, 2 * width, 2, blocks)
        out_len = ((length - 1) // 2) // 2 + 1  # two stride-2 convs with 'same' padding
        self.head = ClassifierHead(2 * width * out_len, num_classes, pool="none")
        if blocks > 1:
            points = tuple(f"{s}.{b}" for s in _STAGES for b in range(blocks))
            self.exit_points = points[:-1]


@MODELS.register("mnist1d_cnn")
def mnist1d_cnn(
    *, num_classes: int = 10, input_shape: Sequence[int] = (1, 40), width: int = 32, blocks: int = 1
) -> MNIST1DCNN:
    """1-D CNN for MNIST-1D signals (1, 40) (arXiv 2011.14439 baseline).

    Args:
        num_classes: number of classes.
        input_shape: one sample (C, L).
        width: channels of the first conv (the others use 2x).
        blocks: conv-BN-ReLU blocks per stage; > 1 adds early-exit points inside the stages.
    """
    c, length = check_input_shape("mnist1d_cnn", input_shape, ndim=1)
    return MNIST1DCNN(c, length, num_classes, width=width, blocks=blocks)

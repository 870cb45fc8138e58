"""A multi-layer perceptron that flattens any input (images, signals, vectors)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

from leandl.errors import ModelError
from leandl.models._common import Backbone, ClassifierHead, make_activation
from leandl.registry import MODELS

__all__ = ["MLP", "mlp"]


class MLP(Backbone):
    """Flatten -> [Linear -> ReLU (-> Dropout)] per hidden size -> ``head.fc``.

    Hidden blocks are the children ``layer1``, ``layer2``, ... (one per hidden size).

    Args:
        in_features: number of input values per sample.
        num_classes: number of classes.
        hidden: hidden layer sizes, in order.
        dropout: dropout after each hidden activation.
    """

    feature_layout = "nc"

    def __init__(
        self, in_features: int, num_classes: int, hidden: Sequence[int], dropout: float = 0.0,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        self.flatten = nn.Flatten(1)
        names = ["flatten"]
        width = in_features
        for i, size in enumerate(hidden, start=1):
            block = [nn.Linear(width, size), make_activation(activation)]
            if dropout > 0:
                block.append(nn.Dropout(dropout))
            setattr(self, f"layer{i}", nn.Sequential(*block))
            names.append(f"layer{i}")
            width = size
        self._chain = tuple(names)
        self.exit_points = tuple(names[1:])
        self.head = ClassifierHead(width, num_classes, pool="none")


@MODELS.register("mlp")
def mlp(
    *,
    num_classes: int = 10,
    input_shape: Sequence[int] = (1, 8, 8),
    hidden: Sequence[int] = (256, 128),
    dropout: float = 0.0,
    activation: str = "relu",
) -> MLP:
    """Multi-layer perceptron on the flattened input (any input shape).

    Args:
        num_classes: number of classes.
        input_shape: one sample, any number of dimensions.
        hidden: hidden layer sizes (may be empty: a linear classifier).
        dropout: dropout probability after each hidden layer.
        activation: ``relu`` or ``srs`` (Soft-Root-Sign, arXiv 2003.00547).
    """
    shape = tuple(int(s) for s in input_shape)
    if not shape or min(shape) < 1 or any(int(h) < 1 for h in hidden):
        raise ModelError(
            f"model 'mlp' needs a non-empty input_shape and positive hidden sizes, got "
            f"input_shape {shape} and hidden {tuple(hidden)}",
            fix="pass input_shape like (1, 8, 8) and hidden like [256, 128]",
        )
    return MLP(math.prod(shape), num_classes, [int(h) for h in hidden], dropout=dropout, activation=activation)

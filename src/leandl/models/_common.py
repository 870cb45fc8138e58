"""Shared pieces of leandl's reference models: the backbone surface and input-shape checks.

Every reference model subclasses :class:`Backbone`: a straight chain of named children
(``stem``, ``layer1``, ``layer2``, ..., then ``head``) run in the order of ``_chain``, with
timm-like ``forward_features`` / ``forward_head`` and an ``exit_points`` tuple naming, in forward
order, the dotted module names after which an early exit may be attached. ``feature_layout``
says what those modules output: ``"nchw"`` (2-D maps), ``"ncl"`` (1-D maps), ``"nld"``
(transformer tokens, class token first) or ``"nc"`` (flat vectors).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from leandl.errors import ModelError

__all__ = ["Backbone", "ClassifierHead", "check_input_shape", "conv_bn_relu", "init_weights"]


class Backbone(nn.Module):
    """Base class: forward = head(chain of named stages), plus the shared model surface."""

    exit_points: tuple[str, ...] = ()
    feature_layout: str = "nchw"
    _chain: tuple[str, ...] = ()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Run every stage before ``head``; returns the last feature map or token sequence."""
        for name in self._chain:
            x = getattr(self, name)(x)
        return x

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Pool the features and classify them; returns logits (N, num_classes)."""
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, num_classes) for a batch shaped (N, *input_shape)."""
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Linear:
        """The final linear layer (``head.fc``), which pruning leaves at ``num_classes`` outputs."""
        return self.head.fc


class ClassifierHead(nn.Module):
    """Global average pooling (2-D, 1-D or none), optional dropout, then ``fc``.

    Args:
        in_features: channels entering the head.
        num_classes: outputs of ``fc``.
        pool: ``"2d"``, ``"1d"`` or ``"none"`` (input is already flat).
        dropout: dropout probability before ``fc``.
    """

    def __init__(self, in_features: int, num_classes: int, pool: str = "2d", dropout: float = 0.0):
        super().__init__()
        pools = {"2d": nn.AdaptiveAvgPool2d(1), "1d": nn.AdaptiveAvgPool1d(1), "none": nn.Identity()}
        self.pool = pools[pool]
        self.flatten = nn.Flatten(1)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, ...) -> (N, num_classes)."""
        return self.fc(self.dropout(self.flatten(self.pool(x))))


def check_input_shape(
    model: str, input_shape: Sequence[int], ndim: int, min_size: int = 1
) -> tuple[int, ...]:
    """Validate one sample's shape (no batch dimension) for a model and return it as a tuple.

    Args:
        model: model name, used in the message.
        input_shape: (C, H, W) for 2-D models (``ndim=2``), (C, L) for 1-D ones (``ndim=1``).
        ndim: number of spatial dimensions the model needs.
        min_size: smallest spatial size the model can run on.

    Raises:
        ModelError: wrong number of dimensions, or a dimension below ``min_size``.
    """
    shape = tuple(int(s) for s in input_shape)
    want = "(C, H, W)" if ndim == 2 else "(C, L)"
    if len(shape) != ndim + 1:
        kind = "2-D images" if ndim == 2 else "1-D signals"
        raise ModelError(
            f"model '{model}' works on {kind} shaped {want}, got input_shape {shape}",
            fix="pick a model for this data (`leandl models` lists them; `mlp` runs on anything)",
        )
    if shape[0] < 1 or min(shape[1:]) < min_size:
        raise ModelError(
            f"model '{model}' needs {want} with C >= 1 and spatial sizes >= {min_size}, "
            f"got input_shape {shape}",
            fix="resize the inputs or pick a model for smaller inputs",
        )
    return shape


ACTIVATIONS = ("relu", "srs")


def make_activation(name: str) -> nn.Module:
    """``relu`` or ``srs`` (Soft-Root-Sign with trainable alpha and beta, arXiv 2003.00547)."""
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "srs":
        from leandl.models.blocks import SoftRootSign

        return SoftRootSign()
    raise ModelError(f"unknown activation '{name}'", fix=f"use one of {', '.join(ACTIVATIONS)}")


def conv_bn_relu(cin: int, cout: int, kernel: int = 3, stride: int = 1, activation: str = "relu") -> nn.Sequential:
    """Conv2d (no bias, 'same' padding for odd kernels) -> BatchNorm2d -> activation (ReLU)."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
        make_activation(activation),
    )


def init_weights(model: nn.Module) -> None:
    """Kaiming-normal (fan_out) convs, BN weight 1 and bias 0, as in He et al. (arXiv 1502.01852)."""
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

"""Synthetic classification data of any input shape, learnable by construction.

Inputs ``x ~ N(0, I)`` of shape ``shape``; labels from a fixed random linear teacher,
``y = argmax_k (W x_flat + b)_k`` with ``W ~ N(0, 1/D)`` of shape ``(num_classes, D)``,
``D = prod(shape)``, and ``b ~ N(0, 0.1^2)``. A linear model can therefore reach 100 % and
any reasonable network learns it. One ``torch.Generator`` seeded with ``seed`` draws, in
order, the teacher, then train, val and test inputs, so the same seed gives the same data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from leandl.data._base import DataBundle, TensorSplit
from leandl.errors import ConfigError
from leandl.registry import DATASETS

__all__ = ["build_synthetic", "teacher_labels"]


def teacher_labels(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``argmax_k (x_flat @ weight.T + bias)_k`` as int64 ``(N,)``."""
    return (x.reshape(x.shape[0], -1) @ weight.T + bias).argmax(dim=1)


def _positive(name: str, value: int, low: int = 1) -> int:
    try:
        v = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"expected an integer, got {value!r}", f"data.{name}") from None
    if v < low:
        raise ConfigError(f"must be >= {low}, got {v}", f"data.{name}")
    return v


@DATASETS.register("synthetic")
def build_synthetic(
    *,
    root: str | None = None,
    seed: int = 0,
    shape: Sequence[int] = (3, 32, 32),
    num_classes: int = 10,
    num_samples: int = 1024,
    num_val: int = 256,
    num_test: int = 256,
) -> DataBundle:
    """Gaussian inputs of any ``shape`` labelled by a fixed random linear teacher.

    Args:
        root: unused.
        seed: seed of teacher and inputs.
        shape: one sample's shape, e.g. ``[3, 32, 32]`` or ``[1, 40]``.
        num_classes: number of classes (>= 2).
        num_samples, num_val, num_test: split sizes.
    """
    if isinstance(shape, (int, str)) or not shape:
        raise ConfigError(f"expected a list of positive ints, got {shape!r}", "data.shape")
    dims = tuple(_positive("shape", s) for s in shape)
    k = _positive("num_classes", num_classes, 2)
    sizes = {"train": _positive("num_samples", num_samples), "val": _positive("num_val", num_val),
             "test": _positive("num_test", num_test)}
    g = torch.Generator().manual_seed(int(seed))
    d = math.prod(dims)
    weight = torch.randn(k, d, generator=g) / math.sqrt(d)
    bias = 0.1 * torch.randn(k, generator=g)
    splits = {}
    for split, n in sizes.items():
        x = torch.randn(n, *dims, generator=g)
        splits[split] = TensorSplit(x, teacher_labels(x, weight, bias))
    return DataBundle(
        name="synthetic",
        **splits,
        num_classes=k,
        input_shape=dims,
        augmented=False,
        classes=tuple(str(c) for c in range(k)),
        info={"source": "random linear teacher", "sizes": sizes, "seed": seed},
    )

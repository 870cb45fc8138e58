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


# Bounds that keep a typo from allocating terabytes: at most 2**24 samples per split, 2**24
# values per sample, 2**16 classes and 8 GiB of float32 inputs in all.
MAX_SAMPLES = 1 << 24
MAX_FEATURES = 1 << 24
MAX_CLASSES = 1 << 16
MAX_BYTES = 8 << 30


def _positive(name: str, value: int, low: int = 1, high: int = MAX_SAMPLES) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"expected an integer, got {value!r}", f"data.{name}")
    try:
        v = int(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"expected an integer, got {value!r}", f"data.{name}") from None
    if v < low or v > high:
        raise ConfigError(f"must be in [{low}, {high}], got {v}", f"data.{name}")
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
    dims = tuple(_positive("shape", s, high=MAX_FEATURES) for s in shape)
    k = _positive("num_classes", num_classes, 2, MAX_CLASSES)
    sizes = {"train": _positive("num_samples", num_samples), "val": _positive("num_val", num_val),
             "test": _positive("num_test", num_test)}
    d = math.prod(dims)
    total = 4 * d * (sum(sizes.values()) + k)
    if d > MAX_FEATURES or total > MAX_BYTES:
        raise ConfigError(f"shape {list(dims)} x {sum(sizes.values())} samples needs {total / 2**30:.1f} GiB, "
                          f"more than the {MAX_BYTES >> 30} GiB allowed", "data.shape",
                          "use fewer samples or a smaller shape")
    g = torch.Generator().manual_seed(_positive("seed", seed, 0, 2**63 - 1))
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

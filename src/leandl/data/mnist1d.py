"""MNIST-1D (Greydanus, arXiv:2011.14439), generated locally with the ``mnist1d`` package.

``mnist1d.data.make_dataset(get_dataset_args())`` with ``num_samples`` and the generator seed
``generator_seed`` (default 42, the canonical data set); never the package's download path.
The generator's own 80/20 split gives train / test (5,000 -> 4,000 / 1,000). Val is carved
from train per class with :func:`~leandl.data._base.stratified_split` from ``seed``
(``val_fraction`` 0.1 -> 3,600 / 400 / 1,000). The generator already centres the signals and
scales them to unit standard deviation. Shape ``(1, 40)``. Generating 5,000 samples takes ~3 s,
so arrays are cached in memory per ``(num_samples, generator_seed)``.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from leandl.data._base import DataBundle, TensorSplit, check_fraction, stratified_split
from leandl.errors import ConfigError
from leandl.registry import DATASETS

__all__ = ["build_mnist1d", "generate_mnist1d"]

_CACHE: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = {}


def generate_mnist1d(
    num_samples: int, generator_seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x_train (N,40) f32, y_train, x_test, y_test)`` from the local generator, cached.

    The generator seeds numpy's and Python's global RNGs; their states are restored after.
    """
    key = (int(num_samples), int(generator_seed))
    if key not in _CACHE:
        from mnist1d.data import get_dataset_args, make_dataset

        args = get_dataset_args()
        args.num_samples, args.seed = key
        np_state, py_state = np.random.get_state(), random.getstate()
        try:
            data = make_dataset(args)
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)
        _CACHE[key] = (
            torch.as_tensor(np.asarray(data["x"]), dtype=torch.float32),
            torch.as_tensor(np.asarray(data["y"]), dtype=torch.int64),
            torch.as_tensor(np.asarray(data["x_test"]), dtype=torch.float32),
            torch.as_tensor(np.asarray(data["y_test"]), dtype=torch.int64),
        )
    return _CACHE[key]


@DATASETS.register("mnist1d")
def build_mnist1d(
    *,
    root: str | None = None,
    seed: int = 0,
    num_samples: int = 5000,
    val_fraction: float = 0.1,
    generator_seed: int = 42,
) -> DataBundle:
    """MNIST-1D generated locally: 1-D signals of length 40, 10 classes, (1, 40) inputs.

    Args:
        root: unused (generated, nothing read from disk).
        seed: seed of the stratified val carve from train.
        num_samples: samples generated (80 % train, 20 % test); at least 100.
        val_fraction: per-class share of train moved to val.
        generator_seed: seed of the generator (42 reproduces the published data set).
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or not 100 <= num_samples <= 1 << 22:
        raise ConfigError(f"needs an integer number of samples in [100, {1 << 22}], got {num_samples!r}",
                          "data.num_samples")
    if isinstance(generator_seed, bool) or not isinstance(generator_seed, int) or not 0 <= generator_seed < 2**32:
        raise ConfigError(f"needs an integer in [0, 2**32), got {generator_seed!r}", "data.generator_seed")
    vf = check_fraction("val_fraction", val_fraction)
    x, y, x_test, y_test = generate_mnist1d(int(num_samples), int(generator_seed))
    val_idx, train_idx = stratified_split(y, [vf], seed)
    splits = {
        "train": TensorSplit(x[train_idx, None], y[train_idx]),
        "val": TensorSplit(x[val_idx, None], y[val_idx]),
        "test": TensorSplit(x_test[:, None], y_test),
    }
    return DataBundle(
        name="mnist1d",
        **splits,
        num_classes=10,
        input_shape=(1, 40),
        augmented=False,
        classes=tuple(str(d) for d in range(10)),
        info={
            "source": "mnist1d.data.make_dataset (local generator)",
            "num_samples": int(num_samples),
            "generator_seed": int(generator_seed),
            "sizes": {k: len(v) for k, v in splits.items()},
            "split_seed": seed,
        },
    )

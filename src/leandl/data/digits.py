"""scikit-learn's bundled handwritten digits (1,797 real 8x8 images, 10 classes).

Split: stratified per class from ``seed`` (:func:`~leandl.data._base.stratified_split`), by
default 60 % train / 20 % val / 20 % test (1,079 / 359 / 359 samples at any seed). Normalisation: pixels
``/ 16`` to ``[0, 1]``, then ``(x - mu) / sigma`` with the scalar mean and standard deviation of
the train split (one scalar pair, since border pixels are constant). Shape ``(1, 8, 8)``.
"""

from __future__ import annotations

import numpy as np
import torch

from leandl.data._base import DataBundle, Standardize, TensorSplit, check_fraction, stratified_split
from leandl.registry import DATASETS

__all__ = ["build_digits"]


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """``(data (1797, 64) float64, target (1797,) int)``: scikit-learn's bundled digits.

    Read straight from the ``digits.csv.gz`` scikit-learn ships (as ``load_digits`` does), found
    without importing scikit-learn, whose import costs about a second in every process; falls
    back to ``load_digits`` when the file is not where it used to be.
    """
    import gzip
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("sklearn")
    for base in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(base) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            with gzip.open(path, "rt") as fh:
                raw = np.loadtxt(fh, delimiter=",")
            return raw[:, :-1], raw[:, -1].astype(int)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.data, bunch.target


@DATASETS.register("digits")
def build_digits(
    *, root: str | None = None, seed: int = 0, val_fraction: float = 0.2, test_fraction: float = 0.2
) -> DataBundle:
    """Handwritten digits 8x8 (scikit-learn, embedded): stratified 60/20/20 split from ``seed``.

    Args:
        root: unused (the data ship with scikit-learn).
        seed: seed of the stratified split.
        val_fraction, test_fraction: per-class shares of val and test.
    """
    vf = check_fraction("val_fraction", val_fraction)
    tf = check_fraction("test_fraction", test_fraction, high=1.0 - vf)
    data, target = digits_arrays()
    x = torch.as_tensor(data, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16.0
    y = torch.as_tensor(target, dtype=torch.int64)
    val_idx, test_idx, train_idx = stratified_split(y, [vf, tf], seed)
    norm = Standardize.fit(x[train_idx], 1.0, channel_dim=None)
    x = norm.normalize(x)
    splits = {k: TensorSplit(x[i], y[i]) for k, i in (("train", train_idx), ("val", val_idx), ("test", test_idx))}
    return DataBundle(
        name="digits",
        **splits,
        num_classes=10,
        input_shape=(1, 8, 8),
        augmented=False,
        classes=tuple(str(d) for d in range(10)),
        info={
            "source": "sklearn.datasets.load_digits",
            "sizes": {k: len(v) for k, v in splits.items()},
            "normalize": {"scale": 1 / 16, "mean": float(norm.mean), "std": float(norm.std)},
            "split_seed": seed,
        },
    )

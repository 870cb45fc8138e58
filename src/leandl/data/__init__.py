"""Datasets and loaders.

Every dataset is one file in this package that registers a builder::

    @DATASETS.register("digits")
    def build_digits(*, root=None, seed=0, val_fraction=0.2, test_fraction=0.2) -> DataBundle

and :func:`load_data` resolves the name, checks the options against the builder's keyword
arguments (an unknown one raises :class:`~leandl.errors.ConfigError` listing the valid ones) and
calls it. Registered: ``digits`` (scikit-learn's bundled 8x8 digits), ``mnist1d`` (generated
locally), ``mnist``, ``fashion_mnist`` (IDX files), ``cifar10``, ``cifar100`` (binary or python
distribution), ``imagefolder`` and ``synthetic``. No builder downloads anything; see
:func:`download_dataset` / ``leandl data download NAME --root DIR``.

Example:
    >>> from leandl.data import load_data, make_loader
    >>> bundle = load_data("digits", seed=0)
    >>> x, y, i = next(iter(make_loader(bundle.train, 64, shuffle=True, seed=0, epoch=0)))
    >>> tuple(x.shape), y.dtype
    ((64, 1, 8, 8), torch.int64)
"""

from __future__ import annotations

from typing import Any

from leandl.data._base import DataBundle, TensorSplit, check_options, default_root, stratified_split
from leandl.data.download import download_dataset
from leandl.data.extract import safe_extract
from leandl.data.loader import make_loader

__all__ = [
    "DataBundle",
    "TensorSplit",
    "load_data",
    "make_loader",
    "download_dataset",
    "safe_extract",
    "stratified_split",
    "default_root",
    "list_datasets",
]


def load_data(name: str, *, root: str | None = None, seed: int = 0, **options: Any) -> DataBundle:
    """Build the dataset registered as ``name``.

    Args:
        name: registry name (``leandl list datasets``).
        root: directory holding the dataset's files (file-backed datasets only); default
            ``$LEANDL_DATA_ROOT`` or ``./data``.
        seed: seed of the train/val split and of any augmentation.
        **options: dataset-specific options (see each builder's docstring).

    Raises:
        UsageError: unknown dataset name (with the closest match).
        ConfigError: unknown or invalid option.
        DataError: files missing or malformed.
    """
    from leandl.registry import DATASETS

    builder = DATASETS.get(name)
    check_options(name, builder, options)
    return builder(root=root, seed=seed, **options)


def list_datasets() -> list[str]:
    """Registered dataset names, sorted."""
    from leandl.registry import DATASETS

    return DATASETS.names()

"""MNIST and Fashion-MNIST from their IDX files (``train-images-idx3-ubyte[.gz]`` etc.).

IDX format (LeCun et al.): bytes 0-1 zero, byte 2 the element type (``0x08`` = uint8), byte 3
the number of dimensions ``d``, then ``d`` big-endian uint32 sizes, then the row-major data.
The header and the file size (for gzip, the ISIZE trailer = uncompressed size mod 2^32, and at
most 1032 times the compressed size, deflate's largest ratio) are checked before any array is
allocated; a path that is not a regular file (a FIFO) is refused without being opened. Val is carved per class from the 60,000 training
images with :func:`~leandl.data._base.stratified_split` from ``seed`` (``val_fraction`` 0.1 ->
54,000 / 6,000 / 10,000). Inputs are kept as uint8 and standardised batch by batch with the
train split's mean and standard deviation of ``pixel / 255``. Shape ``(1, 28, 28)``.
"""

from __future__ import annotations

import gzip
import math
import os
import stat
import struct
from pathlib import Path

import torch

from leandl.data._base import (
    DataBundle,
    Standardize,
    TensorSplit,
    candidate_dirs,
    check_fraction,
    missing_files_error,
    stratified_split,
)
from leandl.errors import DataError
from leandl.registry import DATASETS

__all__ = ["read_idx", "find_idx_files", "build_mnist", "build_fashion_mnist", "IDX_FILES"]

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")


_MAX_DEFLATE_RATIO = 1032  # deflate never expands more than about 1032:1, so a header claiming more lies


def _stored_size(path: Path) -> int:
    """Uncompressed size in bytes (mod 2^32 for gzip, from its ISIZE trailer)."""
    if path.suffix != ".gz":
        return os.path.getsize(path)
    with open(path, "rb") as fh:
        fh.seek(-4, os.SEEK_END)
        return struct.unpack("<I", fh.read(4))[0]


def read_idx(path: str | Path, ndim: int) -> torch.Tensor:
    """Read a uint8 IDX file (plain or ``.gz``) with ``ndim`` dimensions into a uint8 tensor.

    Raises:
        DataError: bad magic, element type, dimension count or a size that disagrees with the
            header (truncated or padded file).
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO would block, a device never end
            raise DataError("not a regular file (a FIFO, device or directory); refusing to read it", str(path))
        with opener(path, "rb") as fh:
            head = fh.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0:
                raise DataError("not an IDX file (magic bytes are not 0x0000)", str(path))
            if head[2] != 0x08:
                raise DataError(f"IDX element type 0x{head[2]:02x} is not uint8 (0x08)", str(path))
            if head[3] != ndim:
                raise DataError(f"IDX file has {head[3]} dimensions, expected {ndim}", str(path))
            dims = struct.unpack(">" + "I" * ndim, fh.read(4 * ndim))
            payload = math.prod(dims)
            expected = 4 + 4 * ndim + payload
            if path.suffix == ".gz" and payload > _MAX_DEFLATE_RATIO * os.path.getsize(path) + (1 << 20):
                raise DataError(f"header {list(dims)} implies {payload} bytes, more than a gzip file of "
                                f"{os.path.getsize(path)} bytes can hold", str(path),
                                "the file is corrupt or hostile; download it again")
            stored = _stored_size(path)
            if stored != expected % (2**32 if path.suffix == ".gz" else 2**63):
                raise DataError(
                    f"file holds {stored} bytes but its header {list(dims)} implies {expected}",
                    str(path), "the file is truncated or corrupt; download it again",
                )
            data = fh.read(payload + 1)
    except (OSError, EOFError, struct.error) as err:
        raise DataError(f"cannot read IDX file: {err}", str(path), "download it again") from None
    if len(data) != payload:
        raise DataError(f"IDX payload has {len(data)} bytes, header says {payload}", str(path))
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).reshape(dims)


def find_idx_files(name: str, root: str | Path | None, extra: tuple[str, ...]) -> dict[str, Path]:
    """Locate the four IDX files (plain or ``.gz``) in the first directory holding all of them."""
    searched = candidate_dirs(root, name, extra)
    for d in searched:
        found = {}
        for key, stem in IDX_FILES.items():
            for candidate in (d / stem, d / (stem + ".gz")):
                if candidate.is_file():
                    found[key] = candidate
                    break
        if len(found) == len(IDX_FILES):
            return found
    raise missing_files_error(name, searched, [f"{s}[.gz]" for s in IDX_FILES.values()])


def _load_pair(images: Path, labels: Path) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = read_idx(images, 3), read_idx(labels, 1).to(torch.int64)
    if x.shape[0] != y.shape[0]:
        raise DataError(f"{x.shape[0]} images but {y.shape[0]} labels", f"{images} / {labels}")
    if y.numel() and int(y.max()) > 9:
        raise DataError(f"label {int(y.max())} outside 0..9", str(labels))
    return x.unsqueeze(1), y


def _build(name: str, root: str | None, seed: int, val_fraction: float, extra: tuple[str, ...],
           classes: tuple[str, ...]) -> DataBundle:
    vf = check_fraction("val_fraction", val_fraction)
    files = find_idx_files(name, root, extra)
    x, y = _load_pair(files["train_images"], files["train_labels"])
    x_test, y_test = _load_pair(files["test_images"], files["test_labels"])
    val_idx, train_idx = stratified_split(y, [vf], seed)
    norm = Standardize.fit(x[train_idx], 1 / 255)
    splits = {
        "train": TensorSplit(x[train_idx], y[train_idx], transform=norm),
        "val": TensorSplit(x[val_idx], y[val_idx], transform=norm),
        "test": TensorSplit(x_test, y_test, transform=norm),
    }
    return DataBundle(
        name=name, **splits, num_classes=10, input_shape=tuple(x.shape[1:]), augmented=False,
        classes=classes,
        info={"files": {k: str(v) for k, v in files.items()}, "sizes": {k: len(v) for k, v in splits.items()},
              "normalize": {"scale": 1 / 255, "mean": norm.mean.flatten().tolist(), "std": norm.std.flatten().tolist()},
              "split_seed": seed},
    )


@DATASETS.register("mnist")
def build_mnist(*, root: str | None = None, seed: int = 0, val_fraction: float = 0.1) -> DataBundle:
    """MNIST from IDX files in ``root/mnist``, ``root`` or ``root/MNIST/raw``; (1, 28, 28).

    Args:
        root: data root. seed: seed of the val carve. val_fraction: per-class share of train.
    """
    return _build("mnist", root, seed, val_fraction, ("MNIST/raw",), tuple(str(d) for d in range(10)))


@DATASETS.register("fashion_mnist")
def build_fashion_mnist(*, root: str | None = None, seed: int = 0, val_fraction: float = 0.1) -> DataBundle:
    """Fashion-MNIST from IDX files in ``root/fashion_mnist``, ``root`` or ``root/FashionMNIST/raw``.

    Args:
        root: data root. seed: seed of the val carve. val_fraction: per-class share of train.
    """
    return _build("fashion_mnist", root, seed, val_fraction, ("FashionMNIST/raw",), FASHION_CLASSES)

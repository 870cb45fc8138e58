"""Image classification folders: ``root/{train,val,test}/<class>/*.png|jpg``.

Class names are the sorted sub-folder names of ``train`` (labels ``0..K-1`` in that order);
``val`` and ``test`` may only use those classes. ``val`` is optional: without it a per-class
``val_fraction`` of train is carved from ``seed``. Each image is decoded once with Pillow,
converted to RGB (or L with ``channels: 1``), resized to ``image_size`` (bilinear) and kept as
uint8 in memory (``N * C * H * W`` bytes); batches are standardised per channel with the train
split's statistics. Train augmentation is off by default (``augment: true`` adds a
``image_size // 8`` pad random crop + horizontal flip).
"""

from __future__ import annotations

import os
import stat
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from leandl.data._base import DataBundle, Standardize, TensorSplit, check_fraction, default_root, stratified_split
from leandl.data.augment import CropFlip
from leandl.errors import ConfigError, DataError
from leandl.registry import DATASETS

__all__ = ["build_imagefolder", "read_image_folder", "IMAGE_SUFFIXES", "MAX_PIXELS"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


def _size(image_size: int | Sequence[int]) -> tuple[int, int]:
    out: tuple[int, int] | None = None
    if isinstance(image_size, int) and not isinstance(image_size, bool):
        out = image_size, image_size
    elif isinstance(image_size, Sequence) and len(image_size) == 2 and all(isinstance(s, int) for s in image_size):
        out = int(image_size[0]), int(image_size[1])
    if out is None or not all(1 <= v <= 4096 for v in out):
        raise ConfigError(f"expected an int or [height, width] in 1..4096, got {image_size!r}", "data.image_size")
    return out


# The most pixels one image may declare before it is decoded (a 50 KB PNG can declare
# 100000 x 100000 pixels and take 30 GB to decode). ``max_pixels`` changes it per data set.
MAX_PIXELS = 1 << 26


def _open_checked(path: Path, max_pixels: int) -> object:
    """Open ``path`` with Pillow after checking it is a regular file; check its declared size.

    A FIFO, device or socket named ``*.png`` would block or read forever, so it is refused
    from ``os.stat`` before anything opens it; the pixel count comes from the header, before
    decoding.
    """
    from PIL import Image

    try:
        mode = os.stat(path).st_mode  # follows symbolic links: the target must be a regular file
    except OSError as err:
        raise DataError(f"cannot read image: {err.strerror or err}", str(path)) from None
    if not stat.S_ISREG(mode):
        raise DataError("not a regular file (a FIFO, device, socket or directory); refusing to open it", str(path),
                        "remove it from the image folder")
    im = Image.open(path)
    w, h = im.size
    if w * h > max_pixels:
        im.close()
        raise DataError(f"image declares {w} x {h} = {w * h} pixels, more than max_pixels = {max_pixels}",
                        str(path), "remove the file, or raise data.max_pixels if the image is genuine")
    return im


def read_image_folder(
    folder: Path, classes: Sequence[str] | None, size: tuple[int, int], mode: str, max_pixels: int = MAX_PIXELS
) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
    """Decode ``folder/<class>/*`` into ``(uint8 (N, C, H, W), labels (N,), classes)``.

    Raises:
        DataError: unknown class folders, no images, a file that is not a regular file, an image
            declaring more than ``max_pixels`` pixels, or one that cannot be decoded.
    """
    from PIL import Image, UnidentifiedImageError

    found = sorted(p.name for p in folder.iterdir() if p.is_dir())
    names = tuple(found) if classes is None else tuple(classes)
    unknown = sorted(set(found) - set(names))
    if unknown:
        raise DataError(f"class folders {unknown} do not exist in train", str(folder))
    images, labels = [], []
    for label, cls in enumerate(names):
        cdir = folder / cls
        files = sorted(p for p in cdir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if cdir.is_dir() else []
        for f in files:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("error", Image.DecompressionBombWarning)
                    with _open_checked(f, max_pixels) as im:
                        im = im.convert(mode).resize((size[1], size[0]), Image.BILINEAR)
                        arr = np.asarray(im, dtype=np.uint8)
            except (OSError, UnidentifiedImageError, ValueError, SyntaxError, EOFError,
                    Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
                raise DataError(f"cannot decode image: {err}", str(f), "remove or replace the file") from None
            images.append(arr.reshape(size[0], size[1], -1).transpose(2, 0, 1))
            labels.append(label)
    if not images:
        raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in class folders", str(folder))
    return torch.from_numpy(np.stack(images)), torch.tensor(labels, dtype=torch.int64), names


@DATASETS.register("imagefolder")
def build_imagefolder(
    *,
    root: str | None = None,
    seed: int = 0,
    image_size: int | Sequence[int] = 32,
    channels: int = 3,
    val_fraction: float = 0.1,
    augment: bool = False,
    max_pixels: int = MAX_PIXELS,
) -> DataBundle:
    """Images from ``root/train/<class>/*``, ``root/test/...`` and optional ``root/val/...``.

    Args:
        root: folder holding ``train`` and ``test`` (and possibly ``val``).
        seed: seed of the val carve (when there is no ``val`` folder) and augmentation.
        image_size: output ``H = W`` or ``[H, W]``. channels: 3 (RGB) or 1 (grey).
        val_fraction: per-class share of train carved as val without a ``val`` folder.
        augment: random crop + flip on train.
        max_pixels: the most pixels an image may declare (checked before decoding).
    """
    if not isinstance(max_pixels, int) or isinstance(max_pixels, bool) or max_pixels < 1:
        raise ConfigError(f"max_pixels must be a positive integer, got {max_pixels!r}", "data.max_pixels")
    if channels not in (1, 3):
        raise ConfigError(f"channels must be 1 or 3, got {channels}", "data.channels")
    size, mode = _size(image_size), "RGB" if channels == 3 else "L"
    base = Path(root) if root is not None else default_root()
    missing = [s for s in ("train", "test") if not (base / s).is_dir()]
    if missing:
        raise DataError(
            f"expected folders {', '.join(missing)} under {base} (layout root/split/class/*.png)",
            "data 'imagefolder'", "pass root: the folder that holds train/ and test/ (val/ optional)",
        )
    x, y, classes = read_image_folder(base / "train", None, size, mode, max_pixels)
    x_test, y_test, _ = read_image_folder(base / "test", classes, size, mode, max_pixels)
    if (base / "val").is_dir():
        x_val, y_val, _ = read_image_folder(base / "val", classes, size, mode, max_pixels)
    else:
        val_idx, train_idx = stratified_split(y, [check_fraction("val_fraction", val_fraction)], seed)
        x, y, x_val, y_val = x[train_idx], y[train_idx], x[val_idx], y[val_idx]
    norm = Standardize.fit(x, 1 / 255)
    aug = CropFlip(max(1, size[0] // 8)) if augment else None
    splits = {
        "train": TensorSplit(x, y, transform=norm, augment=aug, seed=seed),
        "val": TensorSplit(x_val, y_val, transform=norm),
        "test": TensorSplit(x_test, y_test, transform=norm),
    }
    return DataBundle(
        name="imagefolder", **splits, num_classes=len(classes), input_shape=(channels, *size),
        augmented=bool(augment), classes=classes,
        info={"root": str(base), "sizes": {s: len(v) for s, v in splits.items()}, "split_seed": seed},
    )

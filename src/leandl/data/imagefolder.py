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

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from leandl.data._base import DataBundle, Standardize, TensorSplit, check_fraction, default_root, stratified_split
from leandl.data.augment import CropFlip
from leandl.errors import ConfigError, DataError
from leandl.registry import DATASETS

__all__ = ["build_imagefolder", "read_image_folder", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


def _size(image_size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(image_size, int):
        return image_size, image_size
    if isinstance(image_size, Sequence) and len(image_size) == 2 and all(isinstance(s, int) for s in image_size):
        return int(image_size[0]), int(image_size[1])
    raise ConfigError(f"expected an int or [height, width], got {image_size!r}", "data.image_size")


def read_image_folder(
    folder: Path, classes: Sequence[str] | None, size: tuple[int, int], mode: str
) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
    """Decode ``folder/<class>/*`` into ``(uint8 (N, C, H, W), labels (N,), classes)``."""
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
                with Image.open(f) as im:
                    im = im.convert(mode).resize((size[1], size[0]), Image.BILINEAR)
                    arr = np.asarray(im, dtype=np.uint8)
            except (OSError, UnidentifiedImageError) as err:
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
) -> DataBundle:
    """Images from ``root/train/<class>/*``, ``root/test/...`` and optional ``root/val/...``.

    Args:
        root: folder holding ``train`` and ``test`` (and possibly ``val``).
        seed: seed of the val carve (when there is no ``val`` folder) and augmentation.
        image_size: output ``H = W`` or ``[H, W]``. channels: 3 (RGB) or 1 (grey).
        val_fraction: per-class share of train carved as val without a ``val`` folder.
        augment: random crop + flip on train.
    """
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
    x, y, classes = read_image_folder(base / "train", None, size, mode)
    x_test, y_test, _ = read_image_folder(base / "test", classes, size, mode)
    if (base / "val").is_dir():
        x_val, y_val, _ = read_image_folder(base / "val", classes, size, mode)
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

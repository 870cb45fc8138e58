from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from leandl.data import load_data
from leandl.errors import DataError


def _images(root: Path, split: str, classes: dict[str, int], color: dict[str, int]) -> None:
    for cls, n in classes.items():
        d = root / split / cls
        d.mkdir(parents=True)
        for k in range(n):
            Image.fromarray(np.full((12, 10, 3), color[cls] + k, np.uint8)).save(d / f"{k}.{'png' if k % 2 else 'jpg'}")


def test_imagefolder_carves_val_and_resizes(tmp_path: Path) -> None:
    colors = {"cat": 10, "dog": 200}
    _images(tmp_path, "train", {"dog": 10, "cat": 10}, colors)
    _images(tmp_path, "test", {"cat": 2, "dog": 3}, colors)
    b = load_data("imagefolder", root=str(tmp_path), image_size=8, val_fraction=0.2)
    assert b.classes == ("cat", "dog") and b.num_classes == 2 and b.input_shape == (3, 8, 8)
    assert (len(b.train), len(b.val), len(b.test)) == (16, 4, 5)
    torch.testing.assert_close(b.targets("test"), torch.tensor([0, 0, 1, 1, 1]), rtol=0, atol=0)
    x, y, i = b.test[0]
    assert x.shape == (3, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
    raw = b.test.inputs.float()
    assert float(raw[:2].mean()) < 20 and float(raw[2:].mean()) > 190


def test_imagefolder_val_folder_and_errors(tmp_path: Path) -> None:
    colors = {"a": 0, "b": 100}
    _images(tmp_path, "train", {"a": 2, "b": 2}, colors)
    _images(tmp_path, "val", {"a": 1}, colors)
    _images(tmp_path, "test", {"b": 1}, colors)
    b = load_data("imagefolder", root=str(tmp_path), image_size=[4, 6], channels=1)
    assert b.input_shape == (1, 4, 6) and len(b.val) == 1 and int(b.targets("test")[0]) == 1
    _images(tmp_path, "extra", {"zebra": 1}, {"zebra": 0})
    (tmp_path / "test" / "zebra").mkdir()
    with pytest.raises(DataError, match="zebra"):
        load_data("imagefolder", root=str(tmp_path))
    with pytest.raises(DataError, match="train, test"):
        load_data("imagefolder", root=str(tmp_path / "nothing"))

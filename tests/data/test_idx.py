from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from leandl.data import load_data
from leandl.data.idx import read_idx
from leandl.errors import DataError


@pytest.mark.parametrize("compress", [True, False])
def test_mnist_reads_gz_and_plain(tmp_path: Path, fakes, compress: bool) -> None:
    arrays = fakes.write_mnist(tmp_path / "mnist", compress=compress)
    b = load_data("mnist", root=str(tmp_path), seed=0, val_fraction=0.2)
    assert (len(b.train), len(b.val), len(b.test)) == (50, 10, 20)  # round(6 * 0.2) = 1 per class
    assert b.input_shape == (1, 28, 28) and b.num_classes == 10
    x, y, i = b.test[4]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64 and int(i) == 4
    mean, std = b.info["normalize"]["mean"][0], b.info["normalize"]["std"][0]
    raw = torch.from_numpy(arrays["t10k-images-idx3-ubyte"][4]).float() / 255
    torch.testing.assert_close(x[0], (raw - mean) / std, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(b.targets("test"), torch.arange(20) % 10, rtol=0, atol=0)


def test_fashion_mnist_in_torchvision_layout(tmp_path: Path, fakes) -> None:
    fakes.write_mnist(tmp_path / "FashionMNIST" / "raw", compress=False)
    b = load_data("fashion_mnist", root=str(tmp_path))
    assert b.classes[9] == "Ankle boot" and len(b.test) == 20


def test_idx_header_and_size_validation(tmp_path: Path, fakes) -> None:
    p = fakes.write_idx(tmp_path / "a-idx3-ubyte", np.zeros((3, 4, 4), np.uint8), compress=False)
    torch.testing.assert_close(read_idx(p, 3), torch.zeros(3, 4, 4, dtype=torch.uint8), rtol=0, atol=0)
    with pytest.raises(DataError, match="3 dimensions, expected 1"):
        read_idx(p, 1)
    p.write_bytes(p.read_bytes()[:-5])
    with pytest.raises(DataError, match="truncated"):
        read_idx(p, 3)
    bad = tmp_path / "b-idx1-ubyte"
    bad.write_bytes(b"\x08\x03\x08\x01" + b"\x00" * 8)
    with pytest.raises(DataError, match="magic"):
        read_idx(bad, 1)
    # a header claiming 2^31 images is rejected from the size check, before allocation
    huge = tmp_path / "c-idx3-ubyte.gz"
    import gzip
    import struct

    huge.write_bytes(gzip.compress(bytes([0, 0, 8, 3]) + struct.pack(">III", 2**31, 28, 28) + b"\x00" * 10))
    with pytest.raises(DataError, match="implies"):
        read_idx(huge, 3)


def test_missing_files_message(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        load_data("mnist", root=str(tmp_path))
    msg = str(err.value)
    assert str(tmp_path / "mnist") in msg and "train-images-idx3-ubyte[.gz]" in msg
    assert f"leandl data download mnist --root {tmp_path}" in msg

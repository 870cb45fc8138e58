from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from leandl.data import load_data, make_loader
from leandl.data.augment import CropFlip, random_crop_flip
from leandl.data.cifar import read_cifar_python
from leandl.errors import DataError


def test_cifar10_binary(tmp_path: Path, fakes) -> None:
    written = fakes.write_cifar10_bin(tmp_path / "cifar10")
    b = load_data("cifar10", root=str(tmp_path), augment=False)
    assert (len(b.train), len(b.val), len(b.test)) == (90, 10, 20)
    assert b.input_shape == (3, 32, 32) and not b.augmented and b.info["format"] == "binary"
    x, y, i = b.test[3]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    raw, labels = written["test_batch.bin"]
    mean, std = torch.tensor(b.info["normalize"]["mean"]), torch.tensor(b.info["normalize"]["std"])
    expect = (torch.from_numpy(raw[3]).reshape(3, 32, 32).float() / 255 - mean[:, None, None]) / std[:, None, None]
    torch.testing.assert_close(x, expect, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(b.targets("test"), torch.from_numpy(labels).long(), rtol=0, atol=0)


def test_cifar100_binary_uses_fine_labels(tmp_path: Path, fakes) -> None:
    written = fakes.write_cifar100_bin(tmp_path)
    b = load_data("cifar100", root=str(tmp_path))
    assert b.num_classes == 100 and b.augmented
    torch.testing.assert_close(b.targets("test"), torch.from_numpy(written["test.bin"][1]).long(), rtol=0, atol=0)


def test_cifar10_python_distribution_and_archive(tmp_path: Path, fakes) -> None:
    src = tmp_path / "src"
    written = fakes.write_cifar10_py(src)
    (tmp_path / "cifar10").mkdir()
    fakes.tar_gz(tmp_path / "cifar10" / "cifar-10-python.tar.gz", src / "cifar-10-batches-py", "cifar-10-batches-py")
    b = load_data("cifar10", root=str(tmp_path), augment=False)
    assert b.info["format"] == "python" and (tmp_path / "cifar10" / "cifar-10-batches-py" / "test_batch").is_file()
    torch.testing.assert_close(b.targets("test"), torch.from_numpy(written["test_batch"][1]).long(), rtol=0, atol=0)
    torch.testing.assert_close(b.test.inputs[0].reshape(-1), torch.from_numpy(written["test_batch"][0][0]), rtol=0, atol=0)


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        import os

        return (os.system, (f"touch {self.marker}",))


def test_restricted_unpickler_refuses_os_system(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    bad = tmp_path / "data_batch_1"
    bad.write_bytes(pickle.dumps({b"data": _Exploit(marker), b"labels": [0]}, protocol=2))
    with pytest.raises(DataError, match=r"(os|posix)\.system"):
        read_cifar_python(bad, "labels")
    assert not marker.exists()
    # builtins.eval is refused too
    evil = tmp_path / "test_batch"
    evil.write_bytes(b"cbuiltins\neval\n(V1+1\ntR.")
    with pytest.raises(DataError, match="builtins.eval"):
        read_cifar_python(evil, "labels")


def test_random_crop_flip_reference() -> None:
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).reshape(2, 1, 4, 4)
    ident = random_crop_flip(x, torch.tensor([[1, 1, 0], [1, 1, 0]]), padding=1)
    torch.testing.assert_close(ident, x, rtol=0, atol=0)
    out = random_crop_flip(x, torch.tensor([[0, 2, 0], [1, 1, 1]]), padding=1)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    torch.testing.assert_close(out[0], padded[0, :, 0:4, 2:6], rtol=0, atol=0)
    torch.testing.assert_close(out[1], x[1].flip(-1), rtol=0, atol=0)


def test_cifar_augmentation_seeded_per_epoch_and_index(tmp_path: Path, fakes) -> None:
    fakes.write_cifar10_bin(tmp_path)
    b = load_data("cifar10", root=str(tmp_path), seed=3)
    assert b.augmented
    def first(epoch: int, bs: int) -> torch.Tensor:
        batches = list(make_loader(b.train, bs, shuffle=False, seed=3, epoch=epoch))
        return torch.cat([bt[0] for bt in batches])
    e0, e0_again, e0_other_bs, e1 = first(0, 16), first(0, 16), first(0, 7), first(1, 16)
    torch.testing.assert_close(e0, e0_again, rtol=0, atol=0)
    torch.testing.assert_close(e0, e0_other_bs, rtol=0, atol=0)
    assert not torch.equal(e0, e1)
    table = CropFlip(4).table(len(b.train), 3, 0)
    assert int(table[:, :2].min()) >= 0 and int(table[:, :2].max()) <= 8 and set(table[:, 2].tolist()) == {0, 1}
    # val/test are never augmented
    torch.testing.assert_close(b.val[0][0], b.val.with_epoch(5)[0][0], rtol=0, atol=0)


def test_cifar_missing_message(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        load_data("cifar100", root=str(tmp_path))
    msg = str(err.value)
    assert "cifar-100-binary" in msg and "train.bin" in msg and "leandl data download cifar100 --root" in msg
    assert str(tmp_path / "cifar100") in msg


def test_cifar_truncated_binary(tmp_path: Path, fakes) -> None:
    fakes.write_cifar10_bin(tmp_path)
    f = tmp_path / "cifar-10-batches-bin" / "test_batch.bin"
    f.write_bytes(f.read_bytes()[:-1])
    with pytest.raises(DataError, match="3073-byte record"):
        load_data("cifar10", root=str(tmp_path))

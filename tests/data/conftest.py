"""Writers of tiny dataset files in the real on-disk formats, for the data tests."""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest


def write_idx(path: Path, array: np.ndarray, *, compress: bool) -> Path:
    """IDX: 0x0000, type 0x08 (uint8), ndim, big-endian uint32 dims, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path = path.with_name(path.name + ".gz") if compress else path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(payload) if compress else payload)
    return path


def write_mnist(folder: Path, *, n_train: int = 60, n_test: int = 20, compress: bool = True, seed: int = 0) -> dict:
    """Four IDX files with labels cycling 0..9; returns the arrays written."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test) % 10).astype(np.uint8),
    }
    for name, arr in arrays.items():
        write_idx(folder / name, arr, compress=compress)
    return arrays


def cifar_arrays(n: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3072), dtype=np.uint8), (np.arange(n) % classes).astype(np.uint8)


def write_cifar10_bin(folder: Path, *, per_batch: int = 20, n_test: int = 20) -> dict:
    """cifar-10-batches-bin with records <label><3072 bytes>."""
    d = folder / "cifar-10-batches-bin"
    d.mkdir(parents=True, exist_ok=True)
    out = {}
    for i, name in enumerate([f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]):
        x, y = cifar_arrays(n_test if name.startswith("test") else per_batch, 10, i)
        (d / name).write_bytes(np.concatenate([y[:, None], x], axis=1).tobytes())
        out[name] = (x, y)
    return out


def write_cifar100_bin(folder: Path, *, n_train: int = 200, n_test: int = 100) -> dict:
    """cifar-100-binary with records <coarse><fine><3072 bytes>; coarse = fine // 5."""
    d = folder / "cifar-100-binary"
    d.mkdir(parents=True, exist_ok=True)
    out = {}
    for i, (name, n) in enumerate((("train.bin", n_train), ("test.bin", n_test))):
        x, fine = cifar_arrays(n, 100, i)
        coarse = (fine // 5).astype(np.uint8)
        (d / name).write_bytes(np.concatenate([coarse[:, None], fine[:, None], x], axis=1).tobytes())
        out[name] = (x, fine)
    return out


def write_cifar10_py(folder: Path, *, per_batch: int = 20, n_test: int = 20) -> dict:
    """cifar-10-batches-py pickles {b'data': uint8 (N, 3072), b'labels': [int]} (protocol 2)."""
    d = folder / "cifar-10-batches-py"
    d.mkdir(parents=True, exist_ok=True)
    out = {}
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        x, y = cifar_arrays(n_test if name.startswith("test") else per_batch, 10, i)
        obj = {b"batch_label": b"fake", b"labels": [int(v) for v in y], b"data": x, b"filenames": [b"a.png"] * len(y)}
        (d / name).write_bytes(pickle.dumps(obj, protocol=2))
        out[name] = (x, y)
    return out


def tar_gz(path: Path, folder: Path, arcname: str) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        tf.add(folder, arcname=arcname)
    return path


def tar_with_member(path: Path, name: str, data: bytes = b"evil", **kind: object) -> Path:
    """A tar.gz holding one member called ``name`` (optionally a symlink with ``linkname``)."""
    with tarfile.open(path, "w:gz") as tf:
        info = tarfile.TarInfo(name)
        if "linkname" in kind:
            info.type = tarfile.SYMTYPE
            info.linkname = str(kind["linkname"])
            tf.addfile(info)
        else:
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def fakes() -> SimpleNamespace:
    return SimpleNamespace(
        write_idx=write_idx, write_mnist=write_mnist, write_cifar10_bin=write_cifar10_bin,
        write_cifar100_bin=write_cifar100_bin, write_cifar10_py=write_cifar10_py,
        tar_gz=tar_gz, tar_with_member=tar_with_member,
    )

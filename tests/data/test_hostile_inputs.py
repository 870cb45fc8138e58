"""Hostile data files (issue 18, item 8): decompression-bomb images, FIFOs named as images,
archives that are too large, have too many members, or break off half-way."""

from __future__ import annotations

import io
import os
import struct
import tarfile
import threading
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from leandl.data import load_data, safe_extract
from leandl.errors import DataError


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A 60-byte PNG declaring ``width x height`` RGB pixels (a decompression bomb's header)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))


def _folder(root: Path) -> Path:
    for split in ("train", "test"):
        d = root / split / "a"
        d.mkdir(parents=True)
        for k in range(2):
            Image.fromarray(np.full((6, 6, 3), 10 * k, np.uint8)).save(d / f"{k}.png")
    return root / "train" / "a"


@pytest.mark.parametrize("side", [20_000, 60_000])  # above leandl's cap; above Pillow's own bomb limit
def test_decompression_bomb_image_is_a_data_error(tmp_path, side):
    _png_header_only(_folder(tmp_path) / "bomb.png", side, side)
    with pytest.raises(DataError, match=r"bomb\.png.*pixels"):
        load_data("imagefolder", root=str(tmp_path), image_size=4)


def test_max_pixels_option(tmp_path):
    _folder(tmp_path)
    with pytest.raises(DataError, match="max_pixels"):
        load_data("imagefolder", root=str(tmp_path), image_size=4, max_pixels=10)


def test_fifo_named_as_image_is_refused_without_blocking(tmp_path):
    os.mkfifo(_folder(tmp_path) / "pipe.png")
    outcome: list[BaseException | None] = []

    def load() -> None:
        try:
            load_data("imagefolder", root=str(tmp_path), image_size=4)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome.append(exc)

    t = threading.Thread(target=load, daemon=True)
    t.start()
    t.join(timeout=30)
    if t.is_alive():  # unblock the reader so the thread can end, then fail
        fd = os.open(_folder_path(tmp_path) / "pipe.png", os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        pytest.fail("loading blocked on a FIFO named pipe.png")
    assert isinstance(outcome[0], DataError) and "not a regular file" in str(outcome[0])


def _folder_path(root: Path) -> Path:
    return root / "train" / "a"


# ------------------------------------------------------------------ archives
def _tar(path: Path, members: dict[str, bytes], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def test_archive_total_size_cap(tmp_path):
    arch = _tar(tmp_path / "big.tar.gz", {"a/x.bin": b"\0" * 5000, "a/y.bin": b"\0" * 5000})
    with pytest.raises(DataError, match="more than 8000 bytes"):
        safe_extract(arch, tmp_path / "out", max_bytes=8000)
    assert not (tmp_path / "out").exists()


def test_archive_member_count_cap(tmp_path):
    arch = _tar(tmp_path / "many.tar", {f"f{i}": b"x" for i in range(50)}, mode="w")
    with pytest.raises(DataError, match="more than 10 members"):
        safe_extract(arch, tmp_path / "out", max_members=10)
    assert not (tmp_path / "out").exists()
    with zipfile.ZipFile(tmp_path / "many.zip", "w") as zf:
        for i in range(50):
            zf.writestr(f"f{i}", "x")
    with pytest.raises(DataError, match="more than 10 members"):
        safe_extract(tmp_path / "many.zip", tmp_path / "out", max_members=10)


def test_zip_bomb_counted_while_streaming(tmp_path):
    with zipfile.ZipFile(tmp_path / "z.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", b"\0" * 2_000_000)  # about 2 kB compressed
    with pytest.raises(DataError, match="more than 1000000 bytes"):
        safe_extract(tmp_path / "z.zip", tmp_path / "out", max_bytes=1_000_000)
    assert not (tmp_path / "out").exists()


def test_truncated_archive_is_a_data_error_and_leaves_nothing(tmp_path):
    rng = np.random.default_rng(0)
    members = {f"d/f{i}.bin": rng.bytes(200_000) for i in range(4)}  # incompressible
    arch = _tar(tmp_path / "t.tar.gz", members)
    data = arch.read_bytes()
    arch.write_bytes(data[: len(data) * 2 // 3])  # a download that broke off
    dest = tmp_path / "data" / "out"
    with pytest.raises(DataError, match="corrupt or truncated"):
        safe_extract(arch, dest)
    assert not (tmp_path / "data").exists()  # partial files and the directories made for them are gone


def test_corrupt_zip_member_is_a_data_error(tmp_path):
    with zipfile.ZipFile(tmp_path / "z.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.bin", os.urandom(1000) + b"\0" * 50_000)
        zf.writestr("b.bin", b"\1" * 50_000)
    raw = bytearray((tmp_path / "z.zip").read_bytes())
    raw[200:260] = b"\xff" * 60  # damage a's compressed data; the directory stays valid
    (tmp_path / "z.zip").write_bytes(bytes(raw))
    with pytest.raises(DataError):
        safe_extract(tmp_path / "z.zip", tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ sizes in data options
@pytest.mark.parametrize("name, options, field", [
    ("synthetic", {"num_samples": 10**12}, "num_samples"),
    ("synthetic", {"shape": [10**6, 10**6]}, "shape"),
    ("synthetic", {"shape": [4096, 4096], "num_samples": 1000}, "shape"),
    ("synthetic", {"num_classes": 10**9, "shape": [4]}, "num_classes"),
    ("synthetic", {"num_samples": True}, "num_samples"),
    ("mnist1d", {"num_samples": 10**12}, "num_samples"),
    ("mnist1d", {"generator_seed": 2**40}, "generator_seed"),
])
def test_data_sizes_are_bounded_before_allocating(name, options, field):
    from leandl.errors import ConfigError

    with pytest.raises(ConfigError, match=rf"data\.{field}"):
        load_data(name, **options)


def test_idx_fifo_is_refused_without_blocking(tmp_path):
    from leandl.data.idx import read_idx

    fifo = tmp_path / "train-images-idx3-ubyte"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="not a regular file"):
        read_idx(fifo, 3)


def test_idx_gzip_declaring_more_than_deflate_can_hold(tmp_path):
    """A 40-byte .gz whose header and ISIZE trailer agree on 4 GiB + 16 bytes: refused before reading."""
    import gzip

    from leandl.data.idx import read_idx

    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(b"\0\0\x08\x03" + struct.pack(">III", 65536, 65536, 1)))
    with pytest.raises(DataError, match="more than a gzip file"):
        read_idx(path, 3)


@pytest.mark.parametrize("obj", [
    {b"data": np.zeros((2, 3072), np.uint8), b"labels": 5},
    {b"data": np.zeros((2, 3072), np.uint8), b"labels": ["a", "b"]},
    {b"\xff\xfe": 1},
    [1, 2],
])
def test_cifar_python_batch_with_bad_fields_is_a_data_error(tmp_path, obj):
    import pickle

    from leandl.data.cifar import read_cifar_python

    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(obj))
    with pytest.raises(DataError):
        read_cifar_python(path, "labels")

"""CIFAR-10 and CIFAR-100 (Krizhevsky, 2009) from their binary or python distributions.

Binary (preferred): ``cifar-10-batches-bin/data_batch_{1..5}.bin, test_batch.bin`` with records
``<label byte><3072 bytes R,G,B planes>``; ``cifar-100-binary/train.bin, test.bin`` with
``<coarse byte><fine byte><3072 bytes>`` (the fine label is used). Python:
``cifar-10-batches-py/data_batch_{1..5}, test_batch`` and ``cifar-100-python/train, test`` are
pickles, read with :class:`RestrictedUnpickler`, which admits only plain containers and numpy
array reconstruction. An archive (``cifar-10-binary.tar.gz`` ...) found in place of the folder
is unpacked first with :func:`~leandl.data.extract.safe_extract`.

Val is carved per class from the 50,000 training images (``val_fraction`` 0.1 -> 45,000 /
5,000 / 10,000) from ``seed``. Images stay uint8 in memory and are standardised per channel with
the train split's statistics, batch by batch. Train augmentation (``augment``, default True):
4-pixel zero-pad random crop + horizontal flip (arXiv:1512.03385), see
:mod:`leandl.data.augment`. Shape ``(3, 32, 32)``.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
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
from leandl.data.augment import CropFlip
from leandl.data.extract import safe_extract
from leandl.errors import DataError
from leandl.registry import DATASETS

__all__ = ["RestrictedUnpickler", "read_cifar_binary", "read_cifar_python", "build_cifar10", "build_cifar100"]

_IMAGE_BYTES = 3 * 32 * 32
_LAYOUT = {
    "cifar10": {
        "classes": 10, "label_bytes": 1, "label_key": "labels",
        "bin": ("cifar-10-batches-bin", [f"data_batch_{i}.bin" for i in range(1, 6)], ["test_batch.bin"]),
        "py": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"]),
        "archives": ("cifar-10-binary.tar.gz", "cifar-10-python.tar.gz"),
    },
    "cifar100": {
        "classes": 100, "label_bytes": 2, "label_key": "fine_labels",
        "bin": ("cifar-100-binary", ["train.bin"], ["test.bin"]),
        "py": ("cifar-100-python", ["train"], ["test"]),
        "archives": ("cifar-100-binary.tar.gz", "cifar-100-python.tar.gz"),
    },
}


def _reconstruct() -> Any:
    try:
        from numpy._core.multiarray import _reconstruct as fn
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct as fn
    return fn


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for bytes; latin-1 only."""
    if encoding.lower().replace("-", "") != "latin1" or not isinstance(text, str):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only numpy array reconstruction globals.

    Admitted: ``numpy.core.multiarray._reconstruct`` / ``numpy._core.multiarray._reconstruct``,
    ``numpy.ndarray``, ``numpy.dtype`` and latin-1 ``_codecs.encode`` (how protocol-2 pickles
    spell bytes). Plain containers (dict, list, tuple, str, bytes, numbers) need no globals.
    Any other global (``os.system``, ``builtins.eval`` ...) raises :class:`DataError` before
    it is resolved, so it can never be called.
    """

    def __init__(self, file: io.BufferedIOBase, source: str) -> None:
        super().__init__(file, encoding="bytes")
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        allowed = {
            ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
            ("numpy", "ndarray"): lambda: np.ndarray,
            ("numpy", "dtype"): lambda: np.dtype,
            ("_codecs", "encode"): lambda: _latin1_encode,
        }
        if (module, name) in allowed:
            return allowed[(module, name)]()
        raise DataError(
            f"pickle references {module}.{name}, which is neither a plain container nor a numpy "
            "array; refusing to load it", self.source,
            "use the binary distribution (cifar-*-binary.tar.gz) or re-download the python one",
        )


def read_cifar_python(path: str | Path, label_key: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images (N,3,32,32) uint8, labels (N,) int64)`` from one python-distribution pickle."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            obj = RestrictedUnpickler(fh, str(path)).load()
    except DataError:
        raise
    except Exception as err:  # a hostile pickle can raise almost anything while it is read
        raise DataError(f"cannot unpickle: {type(err).__name__}: {str(err)[:200]}", str(path),
                        "re-download the file") from None
    if not isinstance(obj, dict):
        raise DataError(f"expected a dict, found {type(obj).__name__}", str(path))
    obj = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}
    data, labels = obj.get("data"), obj.get(label_key)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _IMAGE_BYTES:
        raise DataError(f"'data' is not a uint8 array of shape (N, {_IMAGE_BYTES})", str(path))
    if not isinstance(labels, list | np.ndarray) or len(labels) != data.shape[0]:
        raise DataError(f"'{label_key}' missing or not one label per image", str(path))
    try:
        y = torch.as_tensor(np.asarray(labels, dtype=np.int64)).reshape(-1)
    except (TypeError, ValueError, OverflowError) as err:
        raise DataError(f"'{label_key}' is not a list of integers ({err})", str(path)) from None
    x = torch.from_numpy(np.ascontiguousarray(data)).reshape(-1, 3, 32, 32)
    return x, y


def read_cifar_binary(path: str | Path, label_bytes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images (N,3,32,32) uint8, labels (N,) int64)`` from one binary batch; the last label
    byte of each record is used (CIFAR-100: fine label)."""
    path = Path(path)
    record = label_bytes + _IMAGE_BYTES
    size = path.stat().st_size
    if size == 0 or size % record:
        raise DataError(f"size {size} bytes is not a multiple of the {record}-byte record", str(path),
                        "the file is truncated or not a CIFAR binary batch; download it again")
    raw = torch.from_numpy(np.fromfile(path, dtype=np.uint8)).reshape(-1, record)
    return raw[:, label_bytes:].reshape(-1, 3, 32, 32).clone(), raw[:, label_bytes - 1].to(torch.int64)


def _locate(name: str, root: str | Path | None) -> tuple[str, Path, list[str], list[str]]:
    spec = _LAYOUT[name]
    searched = candidate_dirs(root, name)
    for base in searched:
        for attempt in range(2):
            for kind in ("bin", "py"):
                folder, train, test = spec[kind]
                d = base / folder
                if all((d / f).is_file() for f in train + test):
                    return kind, d, train, test
            archives = [base / a for a in spec["archives"] if (base / a).is_file()]
            if attempt or not archives:
                break
            safe_extract(archives[0], base)
    expected = [f"{spec['bin'][0]}/{{{', '.join(spec['bin'][1] + spec['bin'][2])}}}",
                f"or {spec['py'][0]}/...", f"or {' / '.join(spec['archives'])}"]
    raise missing_files_error(name, searched, expected)


def _read_all(name: str, kind: str, folder: Path, files: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    spec = _LAYOUT[name]
    parts = [read_cifar_binary(folder / f, spec["label_bytes"]) if kind == "bin"
             else read_cifar_python(folder / f, spec["label_key"]) for f in files]
    x, y = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= spec["classes"]):
        raise DataError(f"labels outside 0..{spec['classes'] - 1}", str(folder))
    return x, y


def _build(name: str, root: str | None, seed: int, val_fraction: float, augment: bool) -> DataBundle:
    vf = check_fraction("val_fraction", val_fraction)
    kind, folder, train_files, test_files = _locate(name, root)
    x, y = _read_all(name, kind, folder, train_files)
    x_test, y_test = _read_all(name, kind, folder, test_files)
    val_idx, train_idx = stratified_split(y, [vf], seed)
    norm = Standardize.fit(x[train_idx], 1 / 255)
    aug = CropFlip(4) if augment else None
    splits = {
        "train": TensorSplit(x[train_idx], y[train_idx], transform=norm, augment=aug, seed=seed),
        "val": TensorSplit(x[val_idx], y[val_idx], transform=norm),
        "test": TensorSplit(x_test, y_test, transform=norm),
    }
    k = _LAYOUT[name]["classes"]
    return DataBundle(
        name=name, **splits, num_classes=k, input_shape=(3, 32, 32), augmented=bool(augment),
        classes=tuple(str(c) for c in range(k)),
        info={"folder": str(folder), "format": "binary" if kind == "bin" else "python",
              "sizes": {s: len(v) for s, v in splits.items()}, "split_seed": seed,
              "augment": "random crop 32 pad 4 + horizontal flip" if augment else "none",
              "normalize": {"scale": 1 / 255, "mean": norm.mean.flatten().tolist(), "std": norm.std.flatten().tolist()}},
    )


@DATASETS.register("cifar10")
def build_cifar10(*, root: str | None = None, seed: int = 0, val_fraction: float = 0.1, augment: bool = True) -> DataBundle:
    """CIFAR-10 (binary or python files in ``root/cifar10`` or ``root``); (3, 32, 32), 10 classes.

    Args:
        root: data root. seed: seed of the val carve and of augmentation draws.
        val_fraction: per-class share of train moved to val. augment: crop + flip on train.
    """
    return _build("cifar10", root, seed, val_fraction, augment)


@DATASETS.register("cifar100")
def build_cifar100(*, root: str | None = None, seed: int = 0, val_fraction: float = 0.1, augment: bool = True) -> DataBundle:
    """CIFAR-100, fine labels (binary or python files in ``root/cifar100`` or ``root``); 100 classes.

    Args:
        root: data root. seed: seed of the val carve and of augmentation draws.
        val_fraction: per-class share of train moved to val. augment: crop + flip on train.
    """
    return _build("cifar100", root, seed, val_fraction, augment)

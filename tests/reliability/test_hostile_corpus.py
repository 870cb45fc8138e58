"""Hostile-input corpus (issue 18): generated bad checkpoints, recipes, datasets, archives, ONNX files.

Every case must raise leandl's own error (a :class:`~leandl.errors.LeandlError` with a message
that is not the "bug in leandl" fallback), within 10 s, with a peak RSS growth under 500 MB
(``VmHWM`` reset through ``/proc/self/clear_refs`` before each case, ``ru_maxrss`` otherwise),
and write nothing outside the case's own directory (the working directory is an empty folder
that must stay empty). The case counts by category are in ``docs/reliability.md``.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import resource
import struct
import tarfile
import time
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from leandl.errors import LeandlError

CASES: dict[str, tuple[str, Callable[[Path], Callable[[], object]]]] = {}


def case(category: str, name: str):
    def register(build):
        CASES[f"{category}:{name}"] = (category, build)
        return build
    return register


# ----------------------------------------------------------------------------- checkpoints
_BASE: dict[str, bytes] = {}


def _checkpoint(tmp: Path, weights: bytes | None = None, meta: Callable[[dict], object] | None = None) -> Path:
    """A real small checkpoint with hostile weights bytes and/or metadata; the hash is re-recorded
    so the check under test (not the sha256 one) is what refuses it."""
    from leandl.checkpoint import save, sha256_file
    from leandl.models import create_model

    if not _BASE:
        save(create_model("mlp", num_classes=3, input_shape=[4]), tmp / "_base")
        _BASE.update({n: (tmp / "_base" / n).read_bytes() for n in ("model.safetensors", "leandl.json")})
    ck = tmp / "ck"
    ck.mkdir()
    (ck / "model.safetensors").write_bytes(_BASE["model.safetensors"] if weights is None else weights)
    data = json.loads(_BASE["leandl.json"])
    data["weights_sha256"] = sha256_file(ck / "model.safetensors")
    if meta is not None:
        data = meta(data) or data
    (ck / "leandl.json").write_text(data if isinstance(data, str) else json.dumps(data))
    return ck


def _load(ck: Path) -> Callable[[], object]:
    from leandl.checkpoint import load

    return lambda: load(ck)


def _st(header: object, data: bytes = b"", raw_len: int | None = None) -> bytes:
    blob = header if isinstance(header, bytes) else json.dumps(header).encode()
    return (len(blob) if raw_len is None else raw_len).to_bytes(8, "little") + blob + data


def _one(dtype="F32", shape=(1,), offsets=(0, 4)):
    return {"head.fc.weight": {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}}


ST_HEADERS = {
    "len-2^63": _st({}, raw_len=2**63 - 1),
    "len-2^32": _st({}, raw_len=2**32),
    "len-past-end": _st({"a": 1}, raw_len=100),
    "len-zero": _st(b"", raw_len=0),
    "header-garbage": _st(b"\xff\xfe not json"),
    "header-list": _st([1, 2]),
    "header-deep": _st(b"[" * 50000 + b"]" * 50000),
    "header-number": _st(b"12345"),
    "dtype-unknown": _st(_one(dtype="F128"), b"\0" * 4),
    "dtype-not-str": _st(_one(dtype=7), b"\0" * 4),
    "shape-huge": _st(_one(shape=(2**31, 2**31, 2**31)), b"\0" * 4),
    "shape-negative": _st(_one(shape=(-1,)), b"\0" * 4),
    "shape-float": _st(_one(shape=(1.5,)), b"\0" * 4),
    "shape-string": _st(_one(shape="big"), b"\0" * 4),
    "shape-deep": _st(_one(shape=[1] * 100000), b"\0" * 4),
    "offsets-past-end": _st(_one(offsets=(0, 2**40)), b"\0" * 4),
    "offsets-reversed": _st(_one(offsets=(4, 0)), b"\0" * 4),
    "offsets-negative": _st(_one(offsets=(-4, 0)), b"\0" * 4),
    "offsets-three": _st(_one(offsets=(0, 4, 8)), b"\0" * 4),
    "offsets-mismatch": _st(_one(shape=(3,), offsets=(0, 4)), b"\0" * 12),
    "overlap-total": _st({**_one(), "x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4),
    "entry-extra-key": _st({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "x": 1}}, b"\0" * 4),
    "metadata-bomb": _st({"__metadata__": {"k": "x" * (1 << 20)}, **_one()}, b"\0" * 4),
    "metadata-nested": _st({"__metadata__": {"k": {"n": [1] * 1000}}}),
    "tensor-count": _st({f"t{i}": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]} for i in range(200_001)}),
    "header-too-big": _st({"__metadata__": {"k": "x" * (17 << 20)}}),
}
for _name, _blob in ST_HEADERS.items():
    case("checkpoint", f"safetensors-{_name}")(lambda tmp, b=_blob: _load(_checkpoint(tmp, weights=b)))

for _cut in (0, 4, 8, 9, 60, -40, -1):
    case("checkpoint", f"truncated-{_cut}")(
        lambda tmp, c=_cut: _load(_checkpoint(tmp, weights=_BASE_weights(tmp)[:c])))


def _BASE_weights(tmp: Path) -> bytes:  # noqa: N802 - the base checkpoint's bytes, built on first use
    if not _BASE:
        _checkpoint(tmp)
        (tmp / "ck" / "model.safetensors").unlink()
        (tmp / "ck" / "leandl.json").unlink()
        (tmp / "ck").rmdir()
    return _BASE["model.safetensors"]


def _retyped(tmp: Path, dtype: torch.dtype) -> bytes:
    from safetensors.torch import load, save

    tensors = load(_BASE_weights(tmp))
    return save({k: v.to(dtype) for k, v in tensors.items()})


for _dt in (torch.int64, torch.bool, torch.int8):
    case("checkpoint", f"wrong-dtype-{_dt}")(lambda tmp, d=_dt: _load(_checkpoint(tmp, weights=_retyped(tmp, d))))


def _meta_case(name: str, edit: Callable[[dict], object]) -> None:
    case("checkpoint", f"meta-{name}")(lambda tmp: _load(_checkpoint(tmp, meta=edit)))


def _set(path: tuple, value):
    def edit(d):
        node = d
        for p in path[:-1]:
            node = node[p]
        node[path[-1]] = value
    return edit


_meta_case("not-json", lambda d: "{not json")
_meta_case("deep-nesting", lambda d: "[" * 100000 + "]" * 100000)
_meta_case("huge-file", lambda d: json.dumps({**d, "extra": {"pad": "x" * (17 << 20)}}))
_meta_case("list", lambda d: "[]")
_meta_case("format-missing", _set(("format",), None))
_meta_case("format-version", _set(("format_version",), 99))
_meta_case("spec-not-dict", _set(("spec",), "mlp"))
_meta_case("spec-import-path", _set(("spec",), {"name": "os:system", "kwargs": {"command": "touch pwned"}}))
_meta_case("spec-unknown-name", _set(("spec", "name"), "no_such_model"))
_meta_case("spec-huge-width", _set(("spec", "kwargs", "num_classes"), 10**9))
_meta_case("spec-huge-hidden", _set(("spec", "kwargs", "hidden"), [10**6, 10**6]))
_meta_case("spec-negative", _set(("spec", "kwargs", "num_classes"), -3))
_meta_case("spec-kwargs-list", _set(("spec", "kwargs"), [1, 2]))
_meta_case("spec-timm-checkpoint-path", _set(("spec",), {"name": "timm:resnet18", "kwargs": {"checkpoint_path": "/etc/x"}}))
_meta_case("spec-timm-hub", _set(("spec",), {"name": "timm:hf-hub:evil/model", "kwargs": {}}))
_meta_case("spec-tv-weights", _set(("spec",), {"name": "torchvision:resnet18", "kwargs": {"weights": "DEFAULT"}}))
_meta_case("spec-hf-remote-code", _set(("spec",), {"name": "hf:BertModel", "kwargs": {"config": {"auto_map": {"A": "x.y"}}}}))
_meta_case("edits-not-list", _set(("edits",), {"kind": "prune"}))
_meta_case("edits-unknown-kind", _set(("edits",), [{"kind": "explode"}]))
_meta_case("edits-prune-garbage", _set(("edits",), [{"kind": "prune", "groups": "x" * 1000}]))
_meta_case("sha-missing", _set(("weights_sha256",), None))
_meta_case("sha-wrong", _set(("weights_sha256",), "0" * 64))
_meta_case("buffer-dtypes-bogus", _set(("buffer_dtypes",), {"x": "os.system"}))
_meta_case("versions-bogus", _set(("state_dict_metadata",), {"": {"version": "1; rm -rf"}}))


@case("checkpoint", "symlink-weights-outside")
def _(tmp):
    ck = _checkpoint(tmp)
    (tmp / "outside.bin").write_bytes(_BASE["model.safetensors"])
    (ck / "model.safetensors").unlink()
    (ck / "model.safetensors").symlink_to(tmp / "outside.bin")
    return _load(ck)


@case("checkpoint", "symlink-meta-outside")
def _(tmp):
    ck = _checkpoint(tmp)
    (tmp / "outside.json").write_bytes((ck / "leandl.json").read_bytes())
    (ck / "leandl.json").unlink()
    (ck / "leandl.json").symlink_to(tmp / "outside.json")
    return _load(ck)


@case("checkpoint", "symlink-weights-dev-zero")
def _(tmp):
    ck = _checkpoint(tmp)
    (ck / "model.safetensors").unlink()
    (ck / "model.safetensors").symlink_to("/dev/zero")
    return _load(ck)


@case("checkpoint", "fifo-weights")
def _(tmp):
    ck = _checkpoint(tmp)
    (ck / "model.safetensors").unlink()
    os.mkfifo(ck / "model.safetensors")
    return _load(ck)


@case("checkpoint", "fifo-meta")
def _(tmp):
    ck = _checkpoint(tmp)
    (ck / "leandl.json").unlink()
    os.mkfifo(ck / "leandl.json")
    return _load(ck)


@case("checkpoint", "directory-as-weights")
def _(tmp):
    ck = _checkpoint(tmp)
    (ck / "model.safetensors").unlink()
    (ck / "model.safetensors").mkdir()
    return _load(ck)


@case("checkpoint", "pickle-as-weights")
def _(tmp):
    return _load(_checkpoint(tmp, weights=pickle.dumps({"w": torch.ones(2)})))


@case("checkpoint", "not-a-directory")
def _(tmp):
    (tmp / "file").write_text("x")
    return _load(tmp / "file")


@case("checkpoint", "missing")
def _(tmp):
    return _load(tmp / "nothing-here")


# ----------------------------------------------------------------------------- recipes
GOOD = {"name": "tiny", "model": {"name": "digits_cnn"}, "data": {"name": "digits"}, "stages": [{"kind": "train"}]}


def _recipe_file(tmp: Path, text: str | bytes) -> Callable[[], object]:
    from leandl.recipes.loader import load_recipe

    path = tmp / "r.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return lambda: load_recipe(path)


def _recipe_case(name: str, text: str | bytes) -> None:
    case("recipe", name)(lambda tmp: _recipe_file(tmp, text))


def _with(**changes) -> str:
    r = json.loads(json.dumps(GOOD))
    for dotted, value in changes.items():
        node = r
        keys = dotted.split("__")
        for k in keys[:-1]:
            node = node[int(k)] if isinstance(node, list) else node[k]
        node[int(keys[-1]) if isinstance(node, list) else keys[-1]] = value
    return yaml.safe_dump(r)


_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
_recipe_case("alias-bomb", _BOMB)
_recipe_case("alias-bomb-in-stages", "x: &x [1,1,1,1,1,1,1,1,1,1]\n" + "".join(
    f"x{i}: &x{i} [{', '.join(['*x' if i == 0 else f'*x{i - 1}'] * 10)}]\n" for i in range(8)) + yaml.safe_dump(GOOD))
_recipe_case("many-aliases", "a: &a 1\nb: [" + ", ".join(["*a"] * 5000) + "]\n")
_recipe_case("recursive-alias", "a: &a [*a]\n")
_recipe_case("deep-lists", "a: " + "[" * 100000 + "]" * 100000 + "\n")
_recipe_case("deep-maps", "a: " + "{b: " * 5000 + "1" + "}" * 5000 + "\n")
_recipe_case("huge-file", "name: tiny\n# " + "x" * (2 << 20) + "\n")
_recipe_case("python-tag", "name: !!python/object/apply:os.system ['touch pwned']\n")
_recipe_case("python-name-tag", "name: !!python/name:os.system\n")
_recipe_case("binary-garbage", bytes(range(256)) * 4)
_recipe_case("not-utf8", b"name: \xff\xfe\xfd\n")
_recipe_case("empty", "")
_recipe_case("top-level-list", "- a\n- b\n")
_recipe_case("top-level-scalar", "42\n")
_recipe_case("bad-indent", "name: x\n  model: y\n stages: [\n")
_recipe_case("tab-indent", "name: x\nmodel:\n\tname: y\n")
for _key, _value in [("name", "../.."), ("name", "/etc/evil"), ("name", "a/b"), ("name", "x\0y"), ("name", ""),
                     ("name", ".hidden"), ("seed", -1), ("seed", 2**70), ("seed", "zero"), ("stages", []),
                     ("stages", "train"), ("stages__0__kind", "explode"), ("stages__0__epochs", "many"),
                     ("stages__0__epochs", -5), ("stages__0__lr", float("nan")), ("stages__0__unknown_key", 1),
                     ("stages__0__techniques", [{"name": "no_such_technique"}]),
                     ("stages__0__techniques", [{"name": "label_smoothing", "smoothing": "high"}]),
                     ("model__kwargs", [1]), ("model__checkpoint", "/nonexistent"), ("model__name", 7),
                     ("data__batch_size", 0), ("data__batch_size", 10**12), ("data__noise", {"rate": 2.0}),
                     ("device", "banana"), ("unknown_top", 1),
                     ("measure", {"batch_sizes": [10**9]})]:
    _recipe_case(f"value-{_key}={str(_value)[:12]}", _with(**{_key: _value}))


@case("recipe", "fifo")
def _(tmp):
    from leandl.recipes.loader import load_recipe

    os.mkfifo(tmp / "r.yaml")
    return lambda: load_recipe(tmp / "r.yaml")


@case("recipe", "directory")
def _(tmp):
    from leandl.recipes.loader import load_recipe

    (tmp / "r.yaml").mkdir()
    return lambda: load_recipe(tmp / "r.yaml")


@case("recipe", "override-bomb")
def _(tmp):
    from leandl.recipes.loader import load_recipe

    return lambda: load_recipe(json.loads(json.dumps(GOOD)), [f"stages={_BOMB!s}"])


@case("recipe", "run-unknown-dataset")
def _(tmp):
    from leandl.recipes.runner import run

    return lambda: run(yaml.safe_load(_with(data__name="no_such_data")), out=tmp / "run")


@case("recipe", "override-traversal-name")
def _(tmp):
    from leandl.recipes.loader import load_recipe

    return lambda: load_recipe(json.loads(json.dumps(GOOD)), ["name=../../../tmp/evil"])


# ----------------------------------------------------------------------------- datasets
def _png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def _image_folder(tmp: Path, name: str, make: Callable[[Path], None]) -> Callable[[], object]:
    from PIL import Image

    from leandl.data import load_data

    for split in ("train", "test"):
        d = tmp / "imagefolder" / split / "a"
        d.mkdir(parents=True)
        Image.fromarray(np.zeros((6, 6, 3), np.uint8)).save(d / "ok.png")
    make(tmp / "imagefolder" / "train" / "a" / name)
    return lambda: load_data("imagefolder", root=str(tmp / "imagefolder"), image_size=8)


IMAGES = {
    "bomb-png-10000": ("bomb.png", lambda p: p.write_bytes(_png_header(10000, 10000))),
    "bomb-png-20000": ("bomb.png", lambda p: p.write_bytes(_png_header(20000, 20000))),
    "bomb-png-60000": ("bomb.png", lambda p: p.write_bytes(_png_header(60000, 60000))),
    "bomb-png-wide": ("wide.png", lambda p: p.write_bytes(_png_header(2**31 - 1, 1))),
    "fifo-png": ("pipe.png", os.mkfifo),
    "dev-zero-png": ("zero.png", lambda p: p.symlink_to("/dev/zero")),
    "directory-png": ("dir.png", lambda p: p.mkdir()),
    "garbage-png": ("junk.png", lambda p: p.write_bytes(os.urandom(512))),
    "truncated-png": ("cut.png", lambda p: p.write_bytes(_png_header(8, 8)[:30])),
    "empty-jpg": ("empty.jpg", lambda p: p.write_bytes(b"")),
    "text-as-jpeg": ("x.jpeg", lambda p: p.write_text("not an image")),
    "broken-symlink": ("gone.png", lambda p: p.symlink_to(p.parent / "missing.png")),
}
for _name, (_file, _make) in IMAGES.items():
    case("dataset", f"imagefolder-{_name}")(lambda tmp, f=_file, m=_make: _image_folder(tmp, f, m))


def _idx_files(tmp: Path, images: bytes, gz: bool = False) -> Callable[[], object]:
    from leandl.data import load_data

    d = tmp / "mnist"
    d.mkdir()
    labels = b"\0\0\x08\x01" + struct.pack(">I", 2) + b"\0\1"
    test = b"\0\0\x08\x03" + struct.pack(">III", 2, 28, 28) + b"\0" * (2 * 784)
    (d / ("train-images-idx3-ubyte" + (".gz" if gz else ""))).write_bytes(gzip.compress(images) if gz else images)
    (d / "train-labels-idx1-ubyte").write_bytes(labels)
    (d / "t10k-images-idx3-ubyte").write_bytes(test)
    (d / "t10k-labels-idx1-ubyte").write_bytes(labels)
    return lambda: load_data("mnist", root=str(tmp))


IDX = {
    "bad-magic": b"\1\2\x08\x03" + b"\0" * 12,
    "float-type": b"\0\0\x0d\x03" + b"\0" * 12,
    "wrong-ndim": b"\0\0\x08\x05" + b"\0" * 20,
    "huge-dims": b"\0\0\x08\x03" + struct.pack(">III", 2**32 - 1, 2**32 - 1, 2**32 - 1),
    "truncated-payload": b"\0\0\x08\x03" + struct.pack(">III", 2, 28, 28) + b"\0" * 100,
    "header-cut": b"\0\0\x08",
}
for _name, _blob in IDX.items():
    case("dataset", f"idx-{_name}")(lambda tmp, b=_blob: _idx_files(tmp, b))
case("dataset", "idx-gz-huge-dims")(lambda tmp: _idx_files(tmp, IDX["huge-dims"], gz=True))


@case("dataset", "idx-gz-garbage")
def _(tmp):
    call = _idx_files(tmp, IDX["bad-magic"])
    (tmp / "mnist" / "train-images-idx3-ubyte").unlink()
    (tmp / "mnist" / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b" + os.urandom(200))
    return call


@case("dataset", "idx-fifo")
def _(tmp):
    from leandl.data.idx import read_idx

    os.mkfifo(tmp / "train-images-idx3-ubyte")
    return lambda: read_idx(tmp / "train-images-idx3-ubyte", 3)


def _cifar_py(tmp: Path, payload: bytes) -> Callable[[], object]:
    from leandl.data.cifar import read_cifar_python

    (tmp / "data_batch_1").write_bytes(payload)
    return lambda: read_cifar_python(tmp / "data_batch_1", "labels")


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


CIFAR = {
    "os-system": pickle.dumps(_Evil()),
    "not-a-dict": pickle.dumps([1, 2, 3]),
    "wrong-shape": pickle.dumps({b"data": np.zeros((2, 5), np.uint8), b"labels": [0, 1]}),
    "labels-scalar": pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": 3}),
    "labels-strings": pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": ["a", "b"]}),
    "truncated": pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)})[:100],
    "garbage": os.urandom(300),
}
for _name, _blob in CIFAR.items():
    case("dataset", f"cifar-py-{_name}")(lambda tmp, b=_blob: _cifar_py(tmp, b))


@case("dataset", "cifar-binary-wrong-size")
def _(tmp):
    from leandl.data.cifar import read_cifar_binary

    (tmp / "data_batch_1.bin").write_bytes(b"\0" * 3000)
    return lambda: read_cifar_binary(tmp / "data_batch_1.bin", 1)


@case("dataset", "synthetic-huge")
def _(tmp):
    from leandl.data import load_data

    return lambda: load_data("synthetic", num_samples=10**12)


# ----------------------------------------------------------------------------- archives
def _tar(tmp: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], mode: str = "w") -> Path:
    path = tmp / ("a.tar" + (".gz" if mode.endswith("gz") else ""))
    with tarfile.open(path, mode) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _tinfo(name: str, size: int = 0, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.type, info.linkname = size, kind, link
    return info


def _zip(tmp: Path, members: list[tuple[str | zipfile.ZipInfo, bytes]], method=zipfile.ZIP_STORED) -> Path:
    path = tmp / "a.zip"
    with zipfile.ZipFile(path, "w", method) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return path


def _extract(archive: Path, tmp: Path, **caps) -> Callable[[], object]:
    from leandl.data import safe_extract

    return lambda: safe_extract(archive, tmp / "dest", **caps)


def _symlink_zipinfo(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (0o120777 << 16)
    return info


ARCHIVES = {
    "tar-dotdot": lambda t: _tar(t, [(_tinfo("../evil", 1), b"x")]),
    "tar-deep-dotdot": lambda t: _tar(t, [(_tinfo("a/b/../../../evil", 1), b"x")]),
    "tar-absolute": lambda t: _tar(t, [(_tinfo("/tmp/evil", 1), b"x")]),
    "tar-symlink": lambda t: _tar(t, [(_tinfo("link", kind=tarfile.SYMTYPE, link="/etc/passwd"), None)]),
    "tar-symlink-then-write": lambda t: _tar(t, [(_tinfo("d", kind=tarfile.SYMTYPE, link=".."), None),
                                                 (_tinfo("d/evil", 1), b"x")]),
    "tar-hardlink": lambda t: _tar(t, [(_tinfo("h", kind=tarfile.LNKTYPE, link="/etc/passwd"), None)]),
    "tar-fifo": lambda t: _tar(t, [(_tinfo("p", kind=tarfile.FIFOTYPE), None)]),
    "tar-chardev": lambda t: _tar(t, [(_tinfo("c", kind=tarfile.CHRTYPE), None)]),
    "tar-huge-declared": lambda t: _huge_tar(t),
    "tar-truncated-gz": lambda t: _cut(_tar(t, [(_tinfo("f", 4096), os.urandom(4096))], "w:gz"), 200),
    "tar-backslash-dotdot": lambda t: _tar(t, [(_tinfo("..\\evil", 1), b"x")]),
    "zip-dotdot": lambda t: _zip(t, [("../evil", b"x")]),
    "zip-absolute": lambda t: _zip(t, [("/tmp/evil", b"x")]),
    "zip-drive": lambda t: _zip(t, [("C:\\evil", b"x")]),
    "zip-backslash": lambda t: _zip(t, [("..\\..\\evil", b"x")]),
    "zip-symlink": lambda t: _zip(t, [(_symlink_zipinfo("link"), b"/etc/passwd")]),
    "zip-corrupt-member": lambda t: _corrupt_zip(t),
    "not-an-archive": lambda t: (t / "a.tar").write_bytes(os.urandom(1000)) and t / "a.tar",
    "empty-file": lambda t: (t / "a.zip").write_bytes(b"") or t / "a.zip",
    "fifo-archive": lambda t: os.mkfifo(t / "a.tar") or t / "a.tar",
}
for _name, _make in ARCHIVES.items():
    case("archive", _name)(lambda tmp, m=_make: _extract(m(tmp), tmp))


def _cut(path: Path, keep: int) -> Path:
    path.write_bytes(path.read_bytes()[:keep])
    return path


def _huge_tar(tmp: Path) -> Path:
    """A 2 KB tar whose one member declares 100 GiB (above the 64 GiB default cap)."""
    info = _tinfo("big", 100 << 30)
    path = tmp / "a.tar"
    path.write_bytes(info.tobuf(format=tarfile.GNU_FORMAT) + b"\0" * 1024)
    return path


def _corrupt_zip(tmp: Path) -> Path:
    path = _zip(tmp, [("f", b"y" * 5000)], zipfile.ZIP_DEFLATED)
    data = bytearray(path.read_bytes())
    data[31:41] = b"\xff" * 10  # the deflated bytes right after the 31-byte local header
    path.write_bytes(bytes(data))
    return path


@case("archive", "zip-too-many-members")
def _(tmp):
    return _extract(_zip(tmp, [(f"f{i}", b"") for i in range(50)]), tmp, max_members=20)


@case("archive", "tar-too-many-members")
def _(tmp):
    return _extract(_tar(tmp, [(_tinfo(f"f{i}", 0), b"") for i in range(50)]), tmp, max_members=20)


@case("archive", "zip-bomb-streamed")
def _(tmp):
    path = _zip(tmp, [("bomb", b"\0" * (8 << 20))], zipfile.ZIP_DEFLATED)
    return _extract(path, tmp, max_bytes=1 << 20)


@case("archive", "zip-declared-total")
def _(tmp):
    return _extract(_zip(tmp, [(f"f{i}", b"x" * 1000) for i in range(10)]), tmp, max_bytes=5000)


# ----------------------------------------------------------------------------- ONNX files
_ONNX: dict[str, bytes] = {}


def _onnx_bytes(tmp: Path) -> bytes:
    if not _ONNX:
        from leandl.deploy.onnx_export import export_onnx
        from leandl.models import create_model

        export_onnx(create_model("mlp", num_classes=3, input_shape=[4]).eval(), torch.randn(1, 4), tmp / "_ok.onnx")
        _ONNX["ok"] = (tmp / "_ok.onnx").read_bytes()
    return _ONNX["ok"]


def _ort(tmp: Path, data: bytes | None, feed=None) -> Callable[[], object]:
    from leandl.deploy.ort_session import OrtModule

    path = tmp / "m.onnx"
    if data is not None:
        path.write_bytes(data)
    if feed is None:
        return lambda: OrtModule(path)
    return lambda: OrtModule(path)(*feed)


ONNX_FILES = {
    "garbage": lambda t: os.urandom(2048),
    "empty": lambda t: b"",
    "text": lambda t: b"ir_version: 8\n",
    "truncated-10": lambda t: _onnx_bytes(t)[:10],
    "truncated-half": lambda t: _onnx_bytes(t)[: len(_onnx_bytes(t)) // 2],
    "truncated-minus-1": lambda t: _onnx_bytes(t)[:-1],
    "pickle": lambda t: pickle.dumps(_Evil()),
    "safetensors": lambda t: _BASE_weights(t),
}
for _name, _make in ONNX_FILES.items():
    case("onnx", _name)(lambda tmp, m=_make: _ort(tmp, m(tmp)))
case("onnx", "missing")(lambda tmp: _ort(tmp, None))
case("onnx", "wrong-input-shape")(lambda tmp: _ort(tmp, _onnx_bytes(tmp), (torch.randn(2, 7),)))
case("onnx", "wrong-input-rank")(lambda tmp: _ort(tmp, _onnx_bytes(tmp), (torch.randn(4),)))
case("onnx", "wrong-input-count")(lambda tmp: _ort(tmp, _onnx_bytes(tmp), (torch.randn(1, 4), torch.randn(1, 4))))
case("onnx", "wrong-input-dtype")(lambda tmp: _ort(tmp, _onnx_bytes(tmp), (torch.ones(1, 4, dtype=torch.complex64),)))


@case("onnx", "fifo")
def _(tmp):
    os.mkfifo(tmp / "m.onnx")
    return _ort(tmp, None)


@case("onnx", "directory")
def _(tmp):
    (tmp / "m.onnx").mkdir()
    return _ort(tmp, None)


# ----------------------------------------------------------------------------- the check
MAX_SECONDS = 10.0
MAX_GROWTH = 500 << 20


def _rss_reset() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # reset the peak RSS (VmHWM)
        return True
    except OSError:
        return False


def _proc_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")} if root.exists() else set()


def test_corpus_size_by_category():
    counts: dict[str, int] = {}
    for category, _ in CASES.values():
        counts[category] = counts.get(category, 0) + 1
    assert sum(counts.values()) >= 120, counts
    assert set(counts) == {"checkpoint", "recipe", "dataset", "archive", "onnx"}


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_input_is_a_clear_leandl_error(name, tmp_path, monkeypatch):
    _, build = CASES[name]
    target = tmp_path / "target"
    target.mkdir()
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    call = build(target)
    outside = _snapshot(tmp_path)
    exact = _rss_reset()
    before = _proc_kib("VmRSS") if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with pytest.raises(LeandlError) as info:
        call()
    seconds = time.perf_counter() - t0
    peak = _proc_kib("VmHWM") if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    message = str(info.value)
    assert message and "bug in leandl" not in message and len(message) < 4000, message
    assert seconds < MAX_SECONDS, f"{name} took {seconds:.1f} s"
    assert (peak - before) * 1024 < MAX_GROWTH, f"{name} grew the peak RSS by {(peak - before) / 1024:.0f} MB"
    assert list(cwd.iterdir()) == [], f"{name} wrote into the working directory"
    new_outside = {p for p in _snapshot(tmp_path) - outside if not p.startswith("target")}
    assert new_outside == set(), f"{name} wrote outside its target directory: {new_outside}"
    assert not (cwd / "pwned").exists() and not (target / "pwned").exists()

"""Reading files a hostile party may have written, with bounds checked before anything is
allocated or opened: member files of a directory (regular files only, no links out), JSON of a
bounded size and depth, and safetensors headers checked against the file's size.

Re-exported by :mod:`leandl.serialization`.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

from leandl.errors import CheckpointError

__all__ = ["check_member_file", "read_json_bounded", "check_safetensors", "MAX_HEADER_BYTES", "MAX_TENSORS",
           "MAX_JSON_BYTES"]

# Bounds on what a hostile file may make a reader allocate (see check_safetensors).
MAX_HEADER_BYTES = 16 << 20  # a safetensors JSON header; about 100 bytes per tensor
MAX_TENSORS = 200_000
MAX_JSON_BYTES = 16 << 20  # leandl.json, a tree's skeleton
_DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
                "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8, "C64": 8}


def check_member_file(directory: str | Path, name: str) -> Path:
    """``directory / name`` if it is a regular file inside ``directory``, else a :class:`CheckpointError`.

    A symbolic link is followed only when it stays inside ``directory``; a FIFO, device or
    directory is refused without being opened (so reading it cannot block or never end).
    """
    directory = Path(directory)
    path = directory / name
    try:
        if path.is_symlink():
            target = path.resolve()
            if directory.resolve() not in target.parents:
                raise CheckpointError(f"{name} is a symbolic link to {target}, outside the directory",
                                      where=str(directory), fix="copy the real file into the directory")
        st = path.stat()
    except FileNotFoundError:
        raise CheckpointError(f"{name} is missing", where=str(directory)) from None
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        raise CheckpointError(f"cannot read {name} ({exc})", where=str(directory)) from None
    if not stat.S_ISREG(st.st_mode):
        raise CheckpointError(f"{name} is not a regular file (a directory, FIFO or device)", where=str(directory),
                              fix="a checkpoint holds plain files only")
    return path


def read_json_bounded(path: Path, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Parse a JSON file of at most ``max_bytes`` bytes; :class:`CheckpointError` otherwise."""
    size = path.stat().st_size
    if size > max_bytes:
        raise CheckpointError(f"{path.name} is {size} bytes, more than the {max_bytes} allowed", where=str(path),
                              fix="leandl writes small metadata files; this one is not from leandl")
    with open(path, "rb") as fh:
        data = fh.read(max_bytes + 1)
    try:
        return json.loads(data)
    except RecursionError:
        raise CheckpointError("the JSON nests too deeply", where=str(path)) from None
    except ValueError as exc:  # also UnicodeDecodeError
        raise CheckpointError(f"not valid JSON ({exc})", where=str(path)) from None


def check_safetensors(path: str | Path, *, max_header: int = MAX_HEADER_BYTES,
                      max_tensors: int = MAX_TENSORS) -> Path:
    """Validate a safetensors file's header against its size before anything is allocated.

    Checks, each with a :class:`CheckpointError` naming the file: the 8-byte header length fits
    the file and ``max_header``; the header is a JSON object of at most ``max_tensors`` entries,
    each with a known dtype, a shape of non-negative integers and ``data_offsets`` inside the
    data section whose span equals the shape's byte size; the spans together do not exceed the
    data section; ``__metadata__`` maps strings to strings.

    Returns:
        ``path``.
    """
    path = Path(path)
    where = str(path)
    size = path.stat().st_size
    if size < 8:
        raise CheckpointError(f"the file is {size} bytes, too short for a safetensors header", where=where)
    with open(path, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        if n > min(max_header, size - 8):
            raise CheckpointError(f"the safetensors header declares {n} bytes; the file has {size - 8} after the "
                                  f"length field and at most {max_header} are allowed", where=where,
                                  fix="the file is truncated or not a safetensors file")
        raw = fh.read(n)
    try:
        header = json.loads(raw)
    except RecursionError:
        raise CheckpointError("the safetensors header nests too deeply", where=where) from None
    except ValueError as exc:
        raise CheckpointError(f"the safetensors header is not valid JSON ({exc})", where=where) from None
    if not isinstance(header, dict):
        raise CheckpointError("the safetensors header is not a JSON object", where=where)
    extra = header.pop("__metadata__", {})
    if not (isinstance(extra, dict) and all(isinstance(v, str) for v in extra.values())):
        raise CheckpointError("the safetensors '__metadata__' must map strings to strings", where=where)
    if len(header) > max_tensors:
        raise CheckpointError(f"the file declares {len(header)} tensors, more than the {max_tensors} allowed",
                              where=where)
    data = size - 8 - n
    total = 0
    for key, info in header.items():
        bad = _bad_entry(info, data)
        if bad:
            raise CheckpointError(f"tensor {key[:80]!r}: {bad}", where=where,
                                  fix="the file is damaged or hostile; restore it from its source")
        begin, end = info["data_offsets"]
        total += end - begin
    if total > data:
        raise CheckpointError(f"the tensors declare {total} bytes; the file holds {data}", where=where)
    return path


def _bad_entry(info: Any, data: int) -> str | None:
    """What is wrong with one safetensors header entry, or None."""
    if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
        return "its entry must be {dtype, shape, data_offsets}"
    dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if dtype not in _DTYPE_BYTES:
        return f"unknown dtype {str(dtype)[:20]!r}"
    if not (isinstance(shape, list) and len(shape) <= 64
            and all(type(d) is int and d >= 0 for d in shape)):
        return "the shape must be at most 64 non-negative integers"
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)
            and 0 <= offsets[0] <= offsets[1] <= data):
        return f"data_offsets {str(offsets)[:60]} lie outside the {data} data bytes"
    numel = 1
    for d in shape:
        numel *= d
        if numel * _DTYPE_BYTES[dtype] > data:
            return f"shape {shape[:8]} needs more bytes than the file's {data}"
    if numel * _DTYPE_BYTES[dtype] != offsets[1] - offsets[0]:
        return f"shape {shape[:8]} ({dtype}) does not match its {offsets[1] - offsets[0]} bytes"
    return None

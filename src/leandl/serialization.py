"""Pickle-free persistence: nested trees of tensors and plain values, and atomic directories.

A *tree* is any nesting of dicts, lists/tuples, tensors, numbers, strings, booleans and None
(optimizer state dicts, RNG states, technique states). :func:`save_tree` writes the tensors to a
safetensors file and the rest to JSON with references, so reading it back never executes code.
:func:`atomic_dir` writes a directory under a temporary name, fsyncs it and renames it into
place, so a reader sees either the old complete directory or the new complete one.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from safetensors.torch import save as _safetensors_bytes

from leandl._bounded_read import (MAX_HEADER_BYTES, MAX_JSON_BYTES, MAX_TENSORS, check_member_file,
                                  check_safetensors, read_json_bounded)
from leandl.errors import CheckpointError

__all__ = ["save_tree", "load_tree", "atomic_dir", "atomic_write_text", "fsync_dir", "resolve_dir",
           "write_safetensors", "as_os_error", "clean_stale", "check_safetensors", "check_member_file",
           "read_json_bounded", "MAX_HEADER_BYTES", "MAX_TENSORS", "MAX_JSON_BYTES", "crash_point"]


_TMP_NAME = re.compile(r"^\.(?P<name>.+)\.tmp-[0-9a-f]{8}$")
_OLD_NAME = re.compile(r"^(?P<name>.+)\.old-[0-9a-f]{8}$")
_OS_CODE = re.compile(r"os error (\d+)|code: (\d+)")

_T = "__tensor__"
_INT_KEYS = "__int_keys__"
_TUPLE = "__tuple__"


_crash_seen: dict[str, int] = {}


def crash_point(point: str, target: str = "") -> None:
    """Test hook: kill this process with a real SIGKILL at a named point; inert by default.

    With ``LEANDL_CRASH_AT=POINT[@TARGET][:N]`` in the environment, the N-th call (default 1)
    naming ``POINT`` (and ``TARGET``, when given: the whole label such as ``01-train/model``, or
    its last components such as ``recipe.yaml``) sends ``SIGKILL`` to the process itself, so a
    crash test stops a real run between the steps of an atomic write or of a stage,
    deterministically. Without the variable it returns at once. Points:
    ``atomic_dir.{written,synced,old_moved,renamed}`` (label ``PARENT/NAME``),
    ``atomic_text.{partial,synced,replaced}`` (``PARENT/NAME``), ``safetensors.partial`` (half a
    weights file written), ``checkpoint.weights`` (weights written, ``leandl.json`` not yet), and
    the runner's ``stage.{start,ran,measured,saved}`` (the stage directory name) and
    ``run.{summary,report,reported}``.
    """
    spec = os.environ.get("LEANDL_CRASH_AT")
    if not spec:
        return
    want, _, nth = spec.rpartition(":") if spec.rpartition(":")[2].isdigit() else (spec, "", "1")
    name, _, where = want.partition("@")
    if name != point or (where and target != where and not target.endswith("/" + where)):
        return
    _crash_seen[spec] = _crash_seen.get(spec, 0) + 1
    if _crash_seen[spec] == int(nth):
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def _flatten(obj: Any, tensors: dict[str, torch.Tensor], path: str) -> Any:
    if isinstance(obj, torch.Tensor):
        key = path or "root"
        tensors[key] = obj.detach().cpu().contiguous().clone()
        return {_T: key}
    if isinstance(obj, dict):
        if obj and all(isinstance(k, int) for k in obj):
            inner = {str(k): _flatten(v, tensors, f"{path}.{k}") for k, v in obj.items()}
            return {_INT_KEYS: inner}
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"tree keys must be str or all int, got {type(k).__name__} at {path}")
            out[k] = _flatten(v, tensors, f"{path}.{k}")
        return out
    if isinstance(obj, tuple):
        return {_TUPLE: [_flatten(v, tensors, f"{path}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_flatten(v, tensors, f"{path}.{i}") for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    if hasattr(obj, "item") and hasattr(obj, "dtype"):  # numpy scalars
        return obj.item()
    raise TypeError(f"cannot store {type(obj).__name__} at '{path}' without pickle")


def _unflatten(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {_T}:
            return tensors[obj[_T]]
        if set(obj) == {_INT_KEYS}:
            return {int(k): _unflatten(v, tensors) for k, v in obj[_INT_KEYS].items()}
        if set(obj) == {_TUPLE}:
            return tuple(_unflatten(v, tensors) for v in obj[_TUPLE])
        return {k: _unflatten(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_unflatten(v, tensors) for v in obj]
    return obj


def save_tree(tree: Any, directory: str | Path, name: str) -> None:
    """Write ``tree`` as ``NAME.json`` + ``NAME.safetensors`` inside ``directory``."""
    directory = Path(directory)
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _flatten(tree, tensors, "")
    write_safetensors(tensors, directory / f"{name}.safetensors")
    (directory / f"{name}.json").write_text(json.dumps(skeleton))


def write_safetensors(tensors: dict[str, torch.Tensor], path: str | Path) -> None:
    """Write ``tensors`` as a safetensors file with Python's own I/O.

    ``safetensors.torch.save_file`` reports a failed write (disk full, quota, read-only) as a
    ``SafetensorError`` that hides the errno; serialising to bytes and writing them here raises
    the real ``OSError`` (``ENOSPC`` ...), which callers turn into a clear leandl error.
    """
    data = _safetensors_bytes(tensors)
    with open(path, "wb") as fh:
        fh.write(data[: len(data) // 2])
        fh.flush()
        crash_point("safetensors.partial", Path(path).name)
        fh.write(data[len(data) // 2:])
        fh.flush()


def as_os_error(exc: BaseException) -> OSError | None:
    """The ``OSError`` behind ``exc``: itself, or the errno inside a ``SafetensorError`` message.

    Returns None when ``exc`` is not a failed write.
    """
    if isinstance(exc, OSError):
        return exc
    if type(exc).__name__ == "SafetensorError":
        match = _OS_CODE.search(str(exc))
        if match:
            code = int(match.group(1) or match.group(2))
            return OSError(code, os.strerror(code))
        if "No space left" in str(exc) or "StorageFull" in str(exc):
            return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return None


def load_tree(directory: str | Path, name: str) -> Any:
    """Read a tree written by :func:`save_tree` (no pickle involved; sizes bounded)."""
    directory = Path(directory)
    try:
        skeleton = read_json_bounded(check_member_file(directory, f"{name}.json"))
        tensors = load_file(str(check_safetensors(check_member_file(directory, f"{name}.safetensors"))))
        _check_refs(skeleton, tensors, directory / f"{name}.json")
        return _unflatten(skeleton, tensors)
    except CheckpointError:
        raise
    except Exception as exc:  # OSError, a SafetensorError, a malformed skeleton (bad int key, too deep)
        raise CheckpointError(
            f"cannot read saved state '{name}': {type(exc).__name__}: {str(exc)[:200]}", where=str(directory),
            fix="the directory is incomplete or corrupted; resume from an earlier checkpoint",
        ) from exc


def _check_refs(skeleton: Any, tensors: dict[str, torch.Tensor], where: Path) -> None:
    """Every ``{"__tensor__": key}`` of ``skeleton`` names a tensor of the file (iteratively)."""
    stack = [skeleton]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if set(node) == {_T} and not (isinstance(node[_T], str) and node[_T] in tensors):
                raise CheckpointError(f"it refers to tensor {str(node[_T])[:80]!r}, which the safetensors file "
                                      "lacks", where=str(where), fix="the state is damaged; resume from an "
                                      "earlier checkpoint")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def fsync_dir(path: str | Path) -> None:
    """fsync a directory entry so a rename inside it is durable."""
    fd = os.open(str(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    for p in sorted(path.rglob("*")):
        if p.is_file():
            with open(p, "rb") as fh:
                os.fsync(fh.fileno())
    fsync_dir(path)


@contextlib.contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield a temporary directory; on success it replaces ``target`` atomically.

    On an exception the temporary directory is removed and ``target`` is untouched. If
    ``target`` exists it is first renamed to ``target.old-<id>`` and removed after the swap;
    :func:`resolve_dir` finds that copy if a crash falls between the two renames.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    label = f"{target.parent.name}/{target.name}"
    try:
        yield tmp
        crash_point("atomic_dir.written", label)
        _fsync_tree(tmp)
        crash_point("atomic_dir.synced", label)
        old = None
        if target.exists():
            old = target.parent / f"{target.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(target, old)
            crash_point("atomic_dir.old_moved", label)
        os.rename(tmp, target)
        fsync_dir(target.parent)
        crash_point("atomic_dir.renamed", label)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def resolve_dir(target: str | Path) -> Path:
    """``target`` if it exists, else the newest ``target.old-*`` left by an interrupted swap."""
    target = Path(target)
    if target.exists():
        return target
    olds = sorted(target.parent.glob(f"{target.name}.old-*"), key=lambda p: p.stat().st_mtime)
    return olds[-1] if olds else target


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write a text file atomically (temporary file, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    label = f"{path.parent.name}/{path.name}"
    try:
        with open(tmp, "w") as fh:
            fh.write(text[: len(text) // 2])
            fh.flush()
            crash_point("atomic_text.partial", label)
            fh.write(text[len(text) // 2:])
            fh.flush()
            os.fsync(fh.fileno())
        crash_point("atomic_text.synced", label)
        os.replace(tmp, path)
        fsync_dir(path.parent)
        crash_point("atomic_text.replaced", label)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def clean_stale(root: str | Path) -> list[Path]:
    """Tidy what a crash left under ``root``; return the paths removed or restored.

    Removes the temporary entries of :func:`atomic_dir` and :func:`atomic_write_text`
    (``.NAME.tmp-XXXXXXXX``) and the ``NAME.old-XXXXXXXX`` copies of a swap whose new ``NAME``
    is in place. When ``NAME`` is missing (a crash between the two renames) the newest
    ``.old`` copy is renamed back to ``NAME``. Only call it while no other process writes
    under ``root`` (the run lock is held).
    """
    root = Path(root)
    touched: list[Path] = []
    if not root.is_dir():
        return touched
    for here, dirs, files in os.walk(root, topdown=True):
        base = Path(here)
        names = sorted(dirs) + sorted(files)
        olds: dict[str, list[Path]] = {}
        for entry in names:
            path = base / entry
            if _TMP_NAME.match(entry):
                _remove(path)
                touched.append(path)
            elif (m := _OLD_NAME.match(entry)) is not None:
                olds.setdefault(m.group("name"), []).append(path)
        for name, paths in olds.items():
            paths.sort(key=lambda p: p.stat().st_mtime)
            if not (base / name).exists():
                os.rename(paths.pop(), base / name)
                touched.append(base / name)
            for path in paths:
                _remove(path)
                touched.append(path)
        dirs[:] = [d for d in dirs if (base / d).is_dir() and not (base / d).is_symlink()]
    return touched


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

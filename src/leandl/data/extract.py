"""Archive extraction that cannot write outside its destination.

Every member is validated before anything is written: absolute paths, ``..`` components,
drive letters, links of any kind (symbolic or hard), device files and FIFOs are refused with
:class:`~leandl.errors.DataError`. Only regular files and directories are then written, by
streaming each member's bytes into ``dest / name`` (no permission bits or owners from the
archive are applied).

Hostile sizes are bounded: the member count and the total of the sizes the archive declares are
checked against ``max_members`` / ``max_bytes`` before writing, and the bytes actually written are
counted while streaming. Any failure during extraction (a cap, a truncated or corrupt stream, a
full disk) removes everything this call created and raises :class:`DataError`.
"""

from __future__ import annotations

import errno
import lzma
import os
import shutil
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import IO, Any

from leandl.errors import DataError

__all__ = ["safe_extract", "check_member_name", "MAX_BYTES", "MAX_MEMBERS"]

MAX_BYTES = 64 << 30  # the data sets leandl downloads are < 1 GB unpacked
MAX_MEMBERS = 1_000_000
_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG)
# what a corrupt or truncated archive raises while it is read
_READ_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError, tarfile.TarError, zipfile.BadZipFile, ValueError,
                NotImplementedError, RuntimeError)


def check_member_name(archive: Path, name: str) -> PurePosixPath:
    """The member's relative path, or :class:`DataError` if it could escape the destination."""
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or PureWindowsPath(name).drive or name.startswith(("/", "\\")):
        raise DataError(f"member '{name}' has an absolute path; refusing to extract", str(archive))
    if ".." in posix.parts:
        raise DataError(f"member '{name}' contains '..'; refusing to extract", str(archive))
    return posix


def _caps(archive: Path, count: int, total: int, max_members: int, max_bytes: int) -> None:
    if count > max_members:
        raise DataError(f"the archive has more than {max_members} members; refusing to extract", str(archive),
                        "pass a larger max_members if the archive is genuine")
    if total > max_bytes:
        raise DataError(f"the archive's members total more than {max_bytes} bytes; refusing to extract",
                        str(archive), "pass a larger max_bytes if the archive is genuine")


def _tar_plan(archive: Path, tf: tarfile.TarFile, max_members: int,
              max_bytes: int) -> list[tuple[tarfile.TarInfo, PurePosixPath]]:
    plan = []
    total = 0
    for m in tf:  # one member at a time, so a million-member archive stops at the cap
        total += max(m.size, 0)
        _caps(archive, len(plan) + 1, total, max_members, max_bytes)
        rel = check_member_name(archive, m.name)
        if m.issym() or m.islnk():
            raise DataError(f"member '{m.name}' is a link (to '{m.linkname}'); refusing to extract", str(archive))
        if not (m.isfile() or m.isdir()):
            raise DataError(f"member '{m.name}' is a device, FIFO or special file; refusing to extract", str(archive))
        plan.append((m, rel))
    return plan


def _zip_plan(archive: Path, zf: zipfile.ZipFile, max_members: int,
              max_bytes: int) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    plan = []
    infos = zf.infolist()
    _caps(archive, len(infos), sum(max(i.file_size, 0) for i in infos), max_members, max_bytes)
    for info in infos:
        rel = check_member_name(archive, info.filename)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise DataError(f"member '{info.filename}' is a symbolic link; refusing to extract", str(archive))
        if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise DataError(f"member '{info.filename}' is a special file; refusing to extract", str(archive))
        plan.append((info, rel))
    return plan


def _target(dest: Path, rel: PurePosixPath, archive: Path) -> Path:
    out = (dest / Path(*rel.parts)).resolve() if rel.parts else dest
    if out != dest and dest not in out.parents:
        raise DataError(f"member '{rel}' resolves outside {dest}; refusing to extract", str(archive))
    return out


def safe_extract(archive: str | Path, dest: str | Path, *, max_bytes: int = MAX_BYTES,
                 max_members: int = MAX_MEMBERS) -> list[Path]:
    """Extract a tar (optionally gz/bz2/xz) or zip archive into ``dest`` after validating it.

    Args:
        archive: the archive file.
        dest: destination directory (created if needed).
        max_bytes: the most bytes the members may total (declared and actually written).
        max_members: the most members the archive may hold.

    Returns:
        The regular files written, in archive order.

    Raises:
        DataError: unreadable, corrupt or truncated archive, an unsafe member, a cap exceeded,
            or a failed write. Everything this call created is removed first (files it
            overwrote in an existing ``dest`` are not restored).
    """
    archive, dest = Path(archive), Path(dest)
    if archive.exists() and not archive.is_file():  # a FIFO would block, a device never end
        raise DataError("the archive is not a regular file (a directory, FIFO or device); refusing to read it",
                        str(archive))
    if not archive.is_file():
        raise DataError("archive not found", str(archive))
    created: list[Path] = []
    try:
        if tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                plan = [(m, _target(dest.resolve(), rel, archive))
                        for m, rel in _tar_plan(archive, tf, max_members, max_bytes)]
                _mkdir(dest, created)
                return _write(archive, [(m.isdir(), out, lambda m=m: tf.extractfile(m)) for m, out in plan],
                              created, max_bytes)
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                zplan = [(i, _target(dest.resolve(), rel, archive))
                         for i, rel in _zip_plan(archive, zf, max_members, max_bytes)]
                _mkdir(dest, created)
                return _write(archive, [(i.is_dir(), out, lambda i=i: zf.open(i)) for i, out in zplan],
                              created, max_bytes)
    except BaseException as exc:
        _undo(created)
        if isinstance(exc, DataError) or not isinstance(exc, _READ_ERRORS):
            raise
        if isinstance(exc, OSError) and exc.errno in _WRITE_ERRNOS:
            raise DataError(f"cannot write the extracted files ({exc.strerror}); nothing was kept",
                            str(exc.filename or dest), "free disk space or choose another data root") from None
        raise DataError(f"the archive is corrupt or truncated ({type(exc).__name__}: {exc}); nothing was kept",
                        str(archive), "delete it and download it again") from None
    raise DataError("not a tar or zip archive", str(archive), "re-download it; the file may be truncated")


def _mkdir(path: Path, created: list[Path]) -> None:
    """``mkdir -p`` that records each directory it makes (outermost first)."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        d.mkdir()
        created.append(d)


def _write(archive: Path, plan: list[tuple[bool, Path, Any]], created: list[Path], max_bytes: int) -> list[Path]:
    written: list[Path] = []
    total = 0
    for is_dir, out, opener in plan:
        if is_dir:
            _mkdir(out, created)
            continue
        _mkdir(out.parent, created)
        src: IO[bytes] | None = opener()
        if src is None:
            raise DataError(f"member '{out.name}' has no data", str(archive))
        with src, open(out, "wb") as fh:
            created.append(out)
            while chunk := src.read(1 << 20):
                total += len(chunk)
                if total > max_bytes:
                    raise DataError(f"the archive unpacks to more than {max_bytes} bytes; refusing to extract",
                                    str(archive), "pass a larger max_bytes if the archive is genuine")
                fh.write(chunk)
        written.append(out)
    return written


def _undo(created: list[Path]) -> None:
    """Remove what an interrupted extraction created, newest first."""
    for path in reversed(created):
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)
        except OSError:
            pass

"""Archive extraction that cannot write outside its destination.

Every member is validated before anything is written: absolute paths, ``..`` components,
drive letters, links of any kind (symbolic or hard), device files and FIFOs are refused with
:class:`~leandl.errors.DataError`. Only regular files and directories are then written, by
streaming each member's bytes into ``dest / name`` (no permission bits or owners from the
archive are applied).
"""

from __future__ import annotations

import shutil
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath, PureWindowsPath

from leandl.errors import DataError

__all__ = ["safe_extract", "check_member_name"]


def check_member_name(archive: Path, name: str) -> PurePosixPath:
    """The member's relative path, or :class:`DataError` if it could escape the destination."""
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or PureWindowsPath(name).drive or name.startswith(("/", "\\")):
        raise DataError(f"member '{name}' has an absolute path; refusing to extract", str(archive))
    if ".." in posix.parts:
        raise DataError(f"member '{name}' contains '..'; refusing to extract", str(archive))
    return posix


def _tar_plan(archive: Path, tf: tarfile.TarFile) -> list[tuple[tarfile.TarInfo, PurePosixPath]]:
    plan = []
    for m in tf.getmembers():
        rel = check_member_name(archive, m.name)
        if m.issym() or m.islnk():
            raise DataError(f"member '{m.name}' is a link (to '{m.linkname}'); refusing to extract", str(archive))
        if not (m.isfile() or m.isdir()):
            raise DataError(f"member '{m.name}' is a device, FIFO or special file; refusing to extract", str(archive))
        plan.append((m, rel))
    return plan


def _zip_plan(archive: Path, zf: zipfile.ZipFile) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    plan = []
    for info in zf.infolist():
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


def safe_extract(archive: str | Path, dest: str | Path) -> list[Path]:
    """Extract a tar (optionally gz/bz2/xz) or zip archive into ``dest`` after validating it.

    Args:
        archive: the archive file.
        dest: destination directory (created if needed).

    Returns:
        The regular files written, in archive order.

    Raises:
        DataError: unreadable archive or any unsafe member (nothing is written in that case).
    """
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise DataError("archive not found", str(archive))
    written: list[Path] = []
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            plan = [(m, _target(dest.resolve(), rel, archive)) for m, rel in _tar_plan(archive, tf)]
            dest.mkdir(parents=True, exist_ok=True)
            for m, out in plan:
                if m.isdir():
                    out.mkdir(parents=True, exist_ok=True)
                    continue
                out.parent.mkdir(parents=True, exist_ok=True)
                src = tf.extractfile(m)
                with src, open(out, "wb") as fh:
                    shutil.copyfileobj(src, fh, 1 << 20)
                written.append(out)
        return written
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            zplan = [(i, _target(dest.resolve(), rel, archive)) for i, rel in _zip_plan(archive, zf)]
            dest.mkdir(parents=True, exist_ok=True)
            for info, out in zplan:
                if info.is_dir():
                    out.mkdir(parents=True, exist_ok=True)
                    continue
                out.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(out, "wb") as fh:
                    shutil.copyfileobj(src, fh, 1 << 20)
                written.append(out)
        return written
    raise DataError("not a tar or zip archive", str(archive), "re-download it; the file may be truncated")

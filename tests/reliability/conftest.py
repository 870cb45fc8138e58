"""A small real tmpfs for disk-full tests (needs root; skipped with the reason otherwise)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """``make(size)`` mounts a tmpfs of ``size`` (e.g. ``"1m"``) and returns its directory.

    Writes beyond the size fail with a real ``ENOSPC`` from the kernel. Unmounted afterwards.
    """
    mounted: list[Path] = []

    def make(size: str) -> Path:
        where = tmp_path / f"tmpfs{len(mounted)}"
        where.mkdir()
        if os.geteuid() != 0:
            pytest.skip("a real disk-full test mounts a small tmpfs, which needs root (CAP_SYS_ADMIN)")
        res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                             capture_output=True, text=True)
        if res.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({res.stderr.strip() or res.returncode}); "
                        "a real disk-full test needs mount permission")
        mounted.append(where)
        return where

    yield make
    for where in reversed(mounted):
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def fill(directory: Path, leave: int) -> None:
    """Fill ``directory``'s file system until only about ``leave`` bytes are free."""
    st = os.statvfs(directory)
    free = st.f_bavail * st.f_frsize
    with open(directory / "filler", "wb") as fh:
        fh.write(b"\0" * max(0, free - leave))

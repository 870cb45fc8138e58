"""release_memory: freed heap blocks go back to the system (glibc's malloc_trim)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from leandl.memory import _libc, release_memory

pytestmark = pytest.mark.skipif(_libc() is None, reason="needs glibc's malloc_trim")


def test_release_memory_returns_freed_heap_blocks_to_the_system() -> None:
    # In a fresh process: freeing one 16 MB mmapped block raises glibc's mmap threshold, so the
    # next 8 MB blocks come from the heap; freeing all but the topmost leaves them resident
    # until malloc_trim returns them.
    code = textwrap.dedent("""
        import numpy as np
        from leandl.memory import release_memory
        def rss():
            return [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS")][0] / 1024
        big = np.ones(4 << 20, dtype=np.float32); del big
        blocks = [np.ones(2 << 20, dtype=np.float32) for _ in range(40)]
        top = blocks.pop()
        del blocks
        before = rss()
        release_memory()
        print(before - rss())
    """)
    freed_mb = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert freed_mb > 200  # 39 blocks of 8 MB were held by the heap


def test_release_memory_says_whether_it_trimmed() -> None:
    assert release_memory() is True

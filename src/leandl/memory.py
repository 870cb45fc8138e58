"""Give freed memory back to the operating system between model-sized steps.

Deleting a model-sized copy frees it to the allocator, not necessarily to the system: glibc keeps
freed blocks below its (adaptive, up to 32 MB) mmap threshold in its heap, so a process that
made and dropped copies of a multi-GB model (export, BN folding, bias correction) held them
resident while ONNX Runtime loaded another copy. ``malloc_trim`` returns them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
from typing import Any

__all__ = ["release_memory"]


@functools.cache
def _libc() -> Any:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        return libc if hasattr(libc, "malloc_trim") else None  # glibc only (not musl, macOS)
    except OSError:
        return None


def release_memory() -> bool:
    """Collect garbage and return free heap memory to the system; ``True`` when glibc's
    ``malloc_trim`` ran (elsewhere only the garbage collection happens)."""
    gc.collect()
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True

"""Steady host allocator for latency measurement (glibc ``mallopt``).

PyTorch's CPU tensors come from the C library's ``malloc``. glibc serves blocks above its
mmap threshold (128 KiB at start, raised adaptively up to 32 MiB) with fresh ``mmap`` calls and
returns them on free, so a forward pass that allocates many activation tensors of a few MiB
pays page faults on every call. On the 2-core machines leandl is measured on this was the
dominant cost and the main source of noise: ResNet-56 at batch 64 took 250 +- 50 ms with about
2.9 million minor page faults in a short benchmark, and 146 +- 10 ms with 70 thousand once the
heap kept its memory (the same effect is what jemalloc/tcmalloc give a production server).

:func:`steady_allocator` raises glibc's mmap and trim thresholds (1 GiB) and its top pad
(256 MiB) for the whole process: freed activation memory stays in the heap and is reused.
The cost is that the process keeps its peak heap. It is called by :func:`measure_latency`
and :func:`compare_latency` unless ``LEANDL_STEADY_MALLOC=0`` is set, so every latency leandl
reports is taken under the same allocator state. On a C library without ``mallopt`` (musl,
macOS, Windows) it does nothing and says so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

__all__ = ["steady_allocator", "allocator_state"]

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_SETTINGS = ((_M_MMAP_THRESHOLD, 1 << 30), (_M_TRIM_THRESHOLD, 1 << 30), (_M_TOP_PAD, 256 << 20))
_state: str | None = None


def steady_allocator() -> str:
    """Make glibc keep freed memory in its heap (once per process); returns the state.

    Returns:
        ``"glibc-steady"`` when the thresholds are set, ``"disabled"`` when
        ``LEANDL_STEADY_MALLOC=0``, ``"default"`` when the C library has no ``mallopt``.
    """
    global _state
    if _state is not None:
        return _state
    if os.environ.get("LEANDL_STEADY_MALLOC", "1") == "0":
        _state = "disabled"
        return _state
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        _state = "default"
        return _state
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = all(mallopt(param, value) == 1 for param, value in _SETTINGS)
    _state = "glibc-steady" if ok else "default"
    return _state


def allocator_state() -> str:
    """The allocator state latency numbers are taken under (``"unset"`` before any timing)."""
    return _state or "unset"

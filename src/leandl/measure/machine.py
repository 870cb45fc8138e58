"""What CPU a timing ran on: its model name and the SIMD features int8 and bf16 speed hinge on.

An int8 speed-up measured on a CPU with AVX-512 VNNI (one instruction per 4-way u8 x s8 dot
product) does not carry over to an AVX2-only CPU, and the machines this project runs on differ
between sessions, so every benchmark records :func:`cpu_description` beside its numbers.
"""

from __future__ import annotations

import platform
from pathlib import Path

__all__ = ["cpu_description", "cpu_features"]

# flag in /proc/cpuinfo -> the name reported (in this order)
_FEATURES = (("avx2", "AVX2"), ("avx512f", "AVX-512"), ("avx512_vnni", "AVX-512 VNNI"), ("avx_vnni", "AVX-VNNI"),
             ("avx512_bf16", "AVX-512 BF16"), ("amx_int8", "AMX-INT8"), ("amx_bf16", "AMX-BF16"),
             ("asimddp", "NEON dot product"), ("sve", "SVE"))


def _cpuinfo(path: Path = Path("/proc/cpuinfo")) -> tuple[str, set[str]]:
    """(model name, flags) of the first processor listed; empty where the file is missing."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "", set()
    name, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "model name" and not name:
            name = " ".join(value.split())
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    return name, flags


def cpu_features(path: Path = Path("/proc/cpuinfo")) -> list[str]:
    """The SIMD features of :data:`_FEATURES` this CPU has, e.g. ``["AVX2", "AVX-512", "AVX-512 VNNI"]``."""
    _, flags = _cpuinfo(path)
    return [label for flag, label in _FEATURES if flag in flags]


def cpu_description(path: Path = Path("/proc/cpuinfo")) -> str:
    """``"AMD EPYC (AVX2, AVX-512, AVX-512 VNNI, AVX-512 BF16)"``; ``"no VNNI"`` is said outright
    on x86 CPUs without it, because int8 speed depends on it most."""
    name, flags = _cpuinfo(path)
    name = name or platform.processor() or platform.machine() or "unknown CPU"
    feats = [label for flag, label in _FEATURES if flag in flags]
    if flags and "avx2" in flags and not ({"avx512_vnni", "avx_vnni"} & flags):
        feats.append("no VNNI")
    return f"{name} ({', '.join(feats)})" if feats else name

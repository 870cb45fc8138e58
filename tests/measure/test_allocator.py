from __future__ import annotations

import subprocess
import sys

import torch

from leandl.measure import measure_latency


def _run(code: str, **env: str) -> str:
    import os

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, **env}, timeout=120)
    return out.stdout.strip()


def test_latency_records_the_allocator_state() -> None:
    stats = measure_latency(torch.nn.Linear(4, 4), torch.randn(2, 4), warmup=0, repeats=1)
    assert stats.allocator in ("glibc-steady", "default", "disabled")
    assert stats.to_dict()["allocator"] == stats.allocator


def test_steady_allocator_cuts_page_faults_and_can_be_disabled() -> None:
    # 40 MiB tensors: above the 32 MiB ceiling of glibc's adaptive mmap threshold, so the
    # default allocator maps (and faults) every one of them anew; 1 MiB tensors were not enough,
    # since the adaptive threshold soon serves them from the heap as well (0 faults seen)
    code = (
        "import resource, torch\n"
        "from leandl.measure.allocator import steady_allocator\n"
        "print(steady_allocator())\n"
        "x = torch.ones(10 * 2**20)\n"
        "for _ in range(5):\n"
        "    y = x * 2\n"
        # fewest faults of three measured blocks: a one-off first touch (256-2,048 faults seen
        # with the steady heap) lands in one block, refaulting on every allocation in all three
        "counts = []\n"
        "for _ in range(3):\n"
        "    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "    for _ in range(10):\n"
        "        y = x * 2\n"
        "    counts.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)\n"
        "print(min(counts))\n")
    state, steady = _run(code).split()
    if state != "glibc-steady":
        return  # not glibc: nothing to compare
    disabled_state, default = _run(code, LEANDL_STEADY_MALLOC="0").split()
    assert disabled_state == "disabled"
    # after a warm-up, 10 more 40 MiB tensors per block: the default allocator maps each anew
    # (10,240 faults per tensor with 4 KiB pages), the steady heap reuses its memory
    assert int(steady) * 10 < int(default), (steady, default)

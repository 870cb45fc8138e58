"""Re-launch ``leandl run`` under torch.distributed's elastic launcher (torchrun)."""

from __future__ import annotations

import subprocess
import sys

__all__ = ["launch", "strip_launch_args"]

_WITH_VALUE = ("--nproc", "--nnodes", "--node-rank", "--rdzv-endpoint")


def strip_launch_args(argv: list[str]) -> list[str]:
    """``argv`` without the launcher's own options (they go to torchrun instead)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in _WITH_VALUE:
            skip = True
            continue
        if any(arg.startswith(opt + "=") for opt in _WITH_VALUE):
            continue
        out.append(arg)
    return out


def launch(argv: list[str], nproc: int, nnodes: str, node_rank: int, rdzv_endpoint: str | None) -> int:
    """Start ``nproc`` copies of this ``leandl run`` command through torchrun; return its code."""
    inner = strip_launch_args(argv[1:])
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}", f"--nnodes={nnodes}",
           f"--node-rank={node_rank}"]
    if rdzv_endpoint:
        cmd += ["--rdzv-backend=c10d", f"--rdzv-endpoint={rdzv_endpoint}"]
    else:
        cmd += ["--standalone"]
    cmd += ["-m", "leandl", *inner]
    return subprocess.call(cmd)

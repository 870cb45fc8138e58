"""Re-launch ``leandl run`` under torch.distributed's elastic launcher (torchrun)."""

from __future__ import annotations

import signal
import subprocess
import sys

from leandl.errors import TrainingError

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


def launch(argv: list[str], nproc: int, nnodes: str, node_rank: int, rdzv_endpoint: str | None) -> None:
    """Start ``nproc`` copies of this ``leandl run`` command through torchrun.

    A stop signal is passed on to torchrun (which passes it to the workers) and waited for.

    Raises:
        TrainingError: torchrun or any worker failed, or a stop signal ended the run; its exit
            code is torchrun's (130 / 143 after SIGINT / SIGTERM).
    """
    inner = strip_launch_args(argv[1:])
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}", f"--nnodes={nnodes}",
           f"--node-rank={node_rank}"]
    if rdzv_endpoint:
        cmd += ["--rdzv-backend=c10d", f"--rdzv-endpoint={rdzv_endpoint}"]
    else:
        cmd += ["--standalone"]
    cmd += ["-m", "leandl", *inner]
    got: list[str] = []

    def forward(signum: int, frame: object) -> None:
        got.append(signal.Signals(signum).name)
        if proc.poll() is None:
            proc.send_signal(signum)

    proc = subprocess.Popen(cmd)
    old = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = proc.wait()
    finally:
        for sig, prev in old.items():
            signal.signal(sig, prev)
    if code == 0 and not got:
        return
    if got:
        err = TrainingError(f"leandl run --nproc {nproc} was stopped by {got[0]} (torchrun exit code {code})",
                            fix="continue with the same command plus --resume")
        err.exit_code = 143 if got[0] == "SIGTERM" else 130
    else:
        err = TrainingError(f"leandl run --nproc {nproc} failed: torchrun exit code {code}; each worker's error "
                            "is printed above", fix="fix the first error shown, then run again (add --resume "
                            "to continue)")
        err.exit_code = code if 0 < code < 126 else 1
    raise err

"""torch.distributed plumbing for ``leandl run --nproc N`` (torchrun's elastic launcher).

Under torchrun every process gets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``; :func:`dist_info`
initialises the process group (gloo on CPU, nccl on GPU) and tells the runner who writes
files (rank 0 only). With no such variables everything is a no-op single process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

__all__ = ["DistInfo", "dist_info", "finish_dist", "broadcast_object"]


@dataclass
class DistInfo:
    """Rank, world size and the device of this process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device | None = None
    initialised_here: bool = False

    @property
    def is_main(self) -> bool:
        """Whether this process writes files."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait for every rank (no-op in a single process)."""
        if self.world_size > 1:
            torch.distributed.barrier()

    def broadcast_path(self, path: Path) -> Path:
        """Rank 0's path on every rank (run directories named from a timestamp differ)."""
        return Path(broadcast_object(str(path))) if self.world_size > 1 else path


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Send a picklable *internal* value from ``src`` to every rank (no-op single process).

    Only values leandl itself produces (paths, index lists, thresholds) travel this way,
    between processes of one run; nothing read from files is ever unpickled.
    """
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=src)
    return box[0]


def dist_info() -> DistInfo:
    """Initialise the process group when launched by torchrun; describe this process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and os.environ.get("LEANDL_DEVICE", "") != "cpu"
    device = torch.device(f"cuda:{local}") if use_cuda else torch.device("cpu")
    here = False
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="nccl" if use_cuda else "gloo")
        here = True
    if use_cuda:
        torch.cuda.set_device(device)
    return DistInfo(rank=rank, world_size=world, local_rank=local, device=device, initialised_here=here)


def finish_dist(info: DistInfo) -> None:
    """Tear the process group down if this module created it."""
    if info.initialised_here and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()

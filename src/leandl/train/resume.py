"""Resume state of a training stage: weights, optimizer, techniques, RNG, position.

Written atomically to ``<stage dir>/resume/`` at the end of each epoch (and when a stop signal
arrives) as ``state.json`` + ``state.safetensors``; nothing is pickled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from leandl.serialization import atomic_dir, load_tree, resolve_dir, save_tree

__all__ = ["save_resume", "load_resume", "has_resume", "rng_state", "set_rng_state"]

_NAME = "state"


def rng_state() -> dict[str, Any]:
    """Torch CPU (and CUDA, when present) RNG states."""
    out: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = list(torch.cuda.get_rng_state_all())
    return out


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_resume(directory: str | Path, tree: dict[str, Any]) -> Path:
    """Write resume state atomically into ``directory`` (replacing an older one)."""
    with atomic_dir(directory) as tmp:
        save_tree(tree, tmp, _NAME)
    return Path(directory)


def has_resume(directory: str | Path) -> bool:
    """Whether complete resume state exists in ``directory``."""
    d = resolve_dir(directory)
    return (d / f"{_NAME}.json").is_file() and (d / f"{_NAME}.safetensors").is_file()


def load_resume(directory: str | Path) -> dict[str, Any]:
    """Read resume state written by :func:`save_resume`."""
    return load_tree(resolve_dir(directory), _NAME)

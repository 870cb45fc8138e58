"""Serialized size in bytes: of the weights alone, and of files or directories on disk.

Definitions:

- :func:`weights_size_bytes`: length of the safetensors serialization
  (``safetensors.torch.save``) of the model's ``state_dict`` (parameters and persistent
  buffers, with their header). Tensors that alias the same memory under several names are
  stored once, as ``safetensors.torch.save_model`` does.
- :func:`file_size_bytes`: bytes of a file, or the sum over all files under a directory.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

__all__ = ["weights_size_bytes", "file_size_bytes", "state_dict_for_safetensors"]


def state_dict_for_safetensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict as contiguous CPU tensors, aliases dropped (first name kept)."""
    out: dict[str, torch.Tensor] = {}
    seen: set[tuple[int, int, tuple[int, ...], torch.dtype]] = set()
    for name, tensor in model.state_dict().items():
        t = tensor.detach()
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.dtype)
        if t.numel() > 0 and key in seen:
            continue
        seen.add(key)
        out[name] = t.to("cpu").contiguous().clone()
    return out


def weights_size_bytes(model: nn.Module) -> int:
    """Bytes of the safetensors serialization of ``model.state_dict()``.

    Example:
        >>> weights_size_bytes(nn.Linear(10, 5)) > 55 * 4   # 55 fp32 values plus a header
        True
    """
    from safetensors.torch import save

    return len(save(state_dict_for_safetensors(model)))


def file_size_bytes(path: str | os.PathLike[str]) -> int:
    """Size of a file in bytes, or the total size of the files under a directory.

    Raises:
        FileNotFoundError: when ``path`` does not exist.
    """
    p = Path(path)
    if p.is_dir():
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return p.stat().st_size

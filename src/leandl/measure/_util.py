"""Helpers shared by the measurement modules: input handling and temporary model state."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

__all__ = [
    "as_args",
    "batch_size_of",
    "rebatch",
    "to_device",
    "tensor_bytes",
    "state_bytes",
    "model_device",
    "eval_mode",
    "num_threads",
]


def as_args(example_inputs: Any) -> tuple[Any, ...]:
    """Positional arguments for ``model(*args)``: a tensor becomes ``(tensor,)``, a tuple or
    list is used as given, anything else becomes a one-element tuple."""
    if isinstance(example_inputs, (tuple, list)):
        return tuple(example_inputs)
    return (example_inputs,)


def _tensors(obj: Any) -> Iterator[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for item in obj:
            yield from _tensors(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from _tensors(item)


def batch_size_of(example_inputs: Any) -> int:
    """Size of dim 0 of the first tensor in ``example_inputs`` (1 for a 0-d tensor or none)."""
    for t in _tensors(example_inputs):
        return int(t.shape[0]) if t.dim() > 0 else 1
    return 1


def rebatch(example_inputs: Any, batch_size: int) -> Any:
    """Return ``example_inputs`` with every tensor's dim 0 made ``batch_size`` long.

    Slices when the batch is longer, repeats it (then slices) when shorter. Tuples, lists and
    dicts keep their structure; non-tensors pass through unchanged.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if isinstance(example_inputs, torch.Tensor):
        if example_inputs.dim() == 0:
            return example_inputs
        n = example_inputs.shape[0]
        if n >= batch_size:
            return example_inputs[:batch_size].contiguous()
        reps = [math.ceil(batch_size / n)] + [1] * (example_inputs.dim() - 1)
        return example_inputs.repeat(*reps)[:batch_size].contiguous()
    if isinstance(example_inputs, (tuple, list)):
        return type(example_inputs)(rebatch(x, batch_size) for x in example_inputs)
    if isinstance(example_inputs, dict):
        return {k: rebatch(v, batch_size) for k, v in example_inputs.items()}
    return example_inputs


def to_device(example_inputs: Any, device: torch.device) -> Any:
    """Move every tensor in ``example_inputs`` to ``device`` (structure kept)."""
    if isinstance(example_inputs, torch.Tensor):
        return example_inputs.to(device)
    if isinstance(example_inputs, (tuple, list)):
        return type(example_inputs)(to_device(x, device) for x in example_inputs)
    if isinstance(example_inputs, dict):
        return {k: to_device(v, device) for k, v in example_inputs.items()}
    return example_inputs


def tensor_bytes(obj: Any) -> int:
    """Bytes held by the tensors in ``obj`` (numel x element size, summed)."""
    return sum(t.numel() * t.element_size() for t in _tensors(obj))


def state_bytes(model: nn.Module) -> int:
    """Bytes of the model's parameters and buffers, each tensor counted once."""
    seen: set[int] = set()
    total = 0
    for t in [*model.parameters(), *model.buffers()]:
        if id(t) not in seen:
            seen.add(id(t))
            total += t.numel() * t.element_size()
    return total


def model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter or buffer (CPU for a stateless module)."""
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


@contextlib.contextmanager
def eval_mode(model: Any) -> Iterator[None]:
    """Put an ``nn.Module`` in eval mode, restoring every submodule's own flag afterwards.

    Anything that is not a module (a plain callable) passes through untouched.
    """
    if not isinstance(model, nn.Module):
        yield
        return
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


@contextlib.contextmanager
def num_threads(threads: int | None) -> Iterator[int]:
    """Temporarily ``torch.set_num_threads(threads)``; yields the value in effect.

    ``None`` keeps the current setting. The previous setting is restored on exit.
    """
    before = torch.get_num_threads()
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


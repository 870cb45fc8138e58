"""Peak memory of inference and of a training step, in bytes.

Definition (same on CPU and CUDA)::

    peak_bytes = resident_bytes + peak_extra_bytes
    resident_bytes = bytes of parameters + buffers + input tensors (live before the call)
    peak_extra_bytes = high-water mark of bytes allocated minus freed *during* the call

What ``peak_extra_bytes`` sees:

- CPU: every allocation and free made through PyTorch's CPU allocator while the call runs,
  recorded by ``torch.profiler`` with ``profile_memory=True`` and replayed in time order
  (activations, outputs, temporary buffers of operators, gradients in a training step). Memory
  a library allocates on its own (oneDNN scratchpads, OpenMP thread stacks), the Python
  interpreter and the process image are **not** included, so this is the tensor memory of the
  model, not the process RSS.
- CUDA: ``torch.cuda.max_memory_allocated() - torch.cuda.memory_allocated()`` around the call,
  after ``torch.cuda.reset_peak_memory_stats()`` (caching-allocator bytes in use, not reserved).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from leandl.measure._util import (
    as_args,
    batch_size_of,
    eval_mode,
    model_device,
    state_bytes,
    tensor_bytes,
)

__all__ = ["MemoryStats", "measure_inference_memory", "measure_training_memory"]


@dataclass(frozen=True)
class MemoryStats:
    """Peak memory of one call (units: bytes); see the module docstring for definitions."""

    peak_bytes: int
    resident_bytes: int
    peak_extra_bytes: int
    batch_size: int
    device: str
    method: str

    def to_dict(self) -> dict[str, int | str]:
        """The fields as a plain dict (units are in the key names)."""
        return asdict(self)


def measure_inference_memory(model: nn.Module, example_inputs: Any) -> MemoryStats:
    """Peak memory of one forward pass in eval mode under ``torch.inference_mode()``.

    Args:
        model: the network (flags restored afterwards).
        example_inputs: a tensor or tuple of positional arguments, on the model's device.
    """
    args = as_args(example_inputs)

    def step() -> None:
        with eval_mode(model), torch.inference_mode():
            model(*args)

    return _measure(model, args, step)


def measure_training_memory(
    model: nn.Module,
    example_inputs: Any,
    loss_fn: Callable[[Any], torch.Tensor] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
) -> MemoryStats:
    """Peak memory of one training step: forward, loss, backward (and ``optimizer.step()``).

    The model runs in train mode. Gradients that existed before are put back afterwards, as
    are buffers (BatchNorm statistics) and training flags. Parameters are unchanged unless an
    ``optimizer`` is given, which really takes its step (and allocates its state on first use,
    which is counted).

    Args:
        model: the network.
        example_inputs: a tensor or tuple of positional arguments, on the model's device.
        loss_fn: maps the model output to a scalar loss; default: sum of every output tensor.
        optimizer: optional optimizer over the model's parameters.
    """
    args = as_args(example_inputs)
    loss_fn = loss_fn or _sum_outputs
    grads = {p: p.grad for p in model.parameters()}
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    flags = [(m, m.training) for m in model.modules()]

    def step() -> None:
        model.train()
        for p in model.parameters():
            p.grad = None
        loss_fn(model(*args)).backward()
        if optimizer is not None:
            optimizer.step()

    try:
        return _measure(model, args, step)
    finally:
        for p, g in grads.items():
            p.grad = g
        with torch.no_grad():
            for name, b in model.named_buffers():
                if name in buffers:
                    b.copy_(buffers[name])
        for m, flag in flags:
            m.training = flag


def _sum_outputs(output: Any) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output.float().sum()
    if isinstance(output, dict):
        output = list(output.values())
    return sum((_sum_outputs(o) for o in output), torch.zeros(()))


def _measure(model: nn.Module, args: tuple[Any, ...], step: Callable[[], None]) -> MemoryStats:
    device = model_device(model)
    resident = state_bytes(model) + tensor_bytes(args)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        step()
        torch.cuda.synchronize(device)
        extra = torch.cuda.max_memory_allocated(device) - before
        method = "torch.cuda.max_memory_allocated"
    else:
        extra = _cpu_peak_extra(step)
        method = "torch.profiler(profile_memory=True) CPU allocator high-water mark"
    return MemoryStats(
        peak_bytes=resident + max(extra, 0),
        resident_bytes=resident,
        peak_extra_bytes=max(extra, 0),
        batch_size=batch_size_of(args),
        device=str(device),
        method=method,
    )


def _cpu_peak_extra(step: Callable[[], None]) -> int:
    """Run ``step`` under the profiler and replay its CPU allocation events in time order."""
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    with _quiet_fd2(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events: list[tuple[int, int]] = []
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        if node.tag == _EventType.Allocation and node.extra_fields.device.type == "cpu":
            events.append((node.start_time_ns, int(node.extra_fields.alloc_size)))
    live = peak = 0
    for _, size in sorted(events):
        live += size
        peak = max(peak, live)
    return peak


@contextlib.contextmanager
def _quiet_fd2() -> Iterator[None]:
    """Silence file descriptor 2 while the profiler runs.

    Kineto writes ``profiler_start``/``profiler_stop`` lines straight to fd 2 whatever its log
    level; they would clutter every CLI table. Python exceptions are unaffected.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)

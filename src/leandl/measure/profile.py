"""One call that measures everything leandl reports about a model's cost: :func:`profile`.

Every number carries its unit and conditions: MACs and energy are per sample (one forward pass
at batch 1); latency is per batch size with the thread count stated; memory is at the largest
requested batch size. See the modules beside this one for the exact definitions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from leandl.measure._util import model_device, num_threads, rebatch, state_bytes, to_device
from leandl.measure.energy import count_activation_bytes, estimate_energy, measure_energy_rapl
from leandl.measure.latency import LatencyStats, measure_latency
from leandl.measure.macs import count_macs
from leandl.measure.memory import measure_inference_memory
from leandl.measure.params import count_params
from leandl.measure.size import weights_size_bytes

__all__ = ["Profile", "profile", "UNITS"]

UNITS: dict[str, str] = {
    "params": "elements",
    "trainable_params": "elements",
    "nonzero_params": "elements",
    "macs": "multiply-accumulates per sample (forward, batch 1)",
    "flops": "floating-point operations per sample (2 x macs)",
    "macs_per_module": "multiply-accumulates per sample",
    "size_bytes": "bytes (safetensors serialization of the state dict)",
    "latency_ms": "milliseconds per forward pass (median), keyed by batch size",
    "latency": "per batch size: ms, samples/s, thread count",
    "peak_memory_bytes": "bytes (parameters + buffers + inputs + peak tensor allocation)",
    "energy_j": "joules per sample (forward pass at batch 1)",
    "threads": "torch intra-op threads",
}


@dataclass
class Profile:
    """The measured cost of a model; see :data:`UNITS` for each field's unit."""

    params: int
    trainable_params: int
    nonzero_params: int
    macs: int
    flops: int
    macs_per_module: dict[str, int]
    size_bytes: int
    input_shape: list[int]
    latency: dict[int, LatencyStats] = field(default_factory=dict)
    peak_memory_bytes: int | None = None
    memory_batch_size: int | None = None
    energy_j: float | None = None
    energy_source: str | None = None
    threads: int = 1
    device: str = "cpu"
    torch_version: str = torch.__version__

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict: plain numbers and strings, dict keys as strings, a ``units`` map."""
        return {
            "params": self.params,
            "trainable_params": self.trainable_params,
            "nonzero_params": self.nonzero_params,
            "macs": self.macs,
            "flops": self.flops,
            "macs_per_module": dict(self.macs_per_module),
            "size_bytes": self.size_bytes,
            "input_shape": list(self.input_shape),
            "latency_ms": {str(b): s.median_ms for b, s in self.latency.items()},
            "latency": {str(b): s.to_dict() for b, s in self.latency.items()},
            "peak_memory_bytes": self.peak_memory_bytes,
            "memory_batch_size": self.memory_batch_size,
            "energy_j": self.energy_j,
            "energy_source": self.energy_source,
            "energy_basis": "per sample: one forward pass at batch 1",
            "threads": self.threads,
            "device": self.device,
            "torch_version": self.torch_version,
            "units": dict(UNITS),
        }

    def summary_rows(self) -> list[tuple[str, str]]:
        """(quantity, value with unit) rows for a two-column table."""
        rows = [
            ("params", f"{self.params / 1e6:.3f} M"),
            ("MACs per sample", f"{self.macs / 1e6:.2f} M"),
            ("FLOPs per sample", f"{self.flops / 1e6:.2f} M"),
            ("size (safetensors)", f"{self.size_bytes / 1e6:.2f} MB"),
        ]
        if self.nonzero_params != self.params:
            rows.insert(1, ("non-zero params", f"{self.nonzero_params / 1e6:.3f} M"))
        for b, s in self.latency.items():
            plural = "s" if s.threads != 1 else ""
            rows.append(
                (
                    f"latency, batch {b}, {s.threads} thread{plural}",
                    f"{s.median_ms:.2f} ms (p90 {s.p90_ms:.2f} ms, "
                    f"{s.throughput_per_s:.0f} samples/s)",
                )
            )
        if self.peak_memory_bytes is not None:
            mem = f"{self.peak_memory_bytes / 1e6:.2f} MB"
            rows.append((f"peak memory, batch {self.memory_batch_size}", mem))
        if self.energy_j is not None:
            rows.append((f"energy per sample ({self.energy_source})", _joules(self.energy_j)))
        rows.append(("device / torch", f"{self.device} / {self.torch_version}"))
        return rows


def _joules(value: float) -> str:
    for scale, unit in ((1.0, "J"), (1e-3, "mJ"), (1e-6, "uJ"), (1e-9, "nJ")):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value / 1e-12:.3g} pJ"


def profile(
    model: nn.Module,
    example_inputs: Any,
    *,
    batch_sizes: Sequence[int] = (1,),
    threads: int | None = None,
    warmup: int = 5,
    repeats: int = 20,
    latency: bool = True,
    memory: bool = True,
    energy: bool = True,
) -> Profile:
    """Measure params, MACs, size, latency, peak memory and energy of ``model``.

    Args:
        model: the network; its training flags are restored afterwards.
        example_inputs: one batch (a tensor or a tuple of positional arguments) of any batch
            size; it is sliced or repeated along dim 0 to each size needed. Moved to the
            model's device.
        batch_sizes: batch sizes to time (latency keyed by these); memory uses the largest.
        threads: torch intra-op threads during timing (restored after); ``None`` keeps the
            current setting, whose value is recorded.
        warmup, repeats: per batch size, see :func:`leandl.measure.measure_latency`.
        latency, memory, energy: switch the slower measurements off.

    Returns:
        :class:`Profile`. ``energy_j`` is per sample: RAPL joules per batch-1 forward pass when
        the counters are readable (``energy_source="rapl"``), else the estimate of
        :func:`leandl.measure.estimate_energy` (``energy_source="estimated"``).
    """
    sizes = sorted({int(b) for b in batch_sizes})
    if not sizes or sizes[0] < 1:
        raise ValueError(f"batch_sizes must be positive integers, got {list(batch_sizes)}")
    device = model_device(model)
    inputs = to_device(example_inputs, device)
    one = rebatch(inputs, 1)
    counts = count_params(model)
    macs = count_macs(model, one)
    result = Profile(
        params=counts.total,
        trainable_params=counts.trainable,
        nonzero_params=counts.nonzero,
        macs=macs.total,
        flops=macs.flops,
        macs_per_module=macs.per_module,
        size_bytes=weights_size_bytes(model),
        input_shape=_first_shape(one),
        device=str(device),
    )
    with num_threads(threads) as used:
        result.threads = used
        if latency:
            result.latency = {
                b: measure_latency(model, rebatch(inputs, b), warmup=warmup, repeats=repeats)
                for b in sizes
            }
        if memory:
            mem = measure_inference_memory(model, rebatch(inputs, sizes[-1]))
            result.peak_memory_bytes, result.memory_batch_size = mem.peak_bytes, sizes[-1]
        if energy:
            result.energy_j, result.energy_source = _energy(model, one, macs.total, repeats)
    return result


def _energy(model: nn.Module, one: Any, macs: int, calls: int) -> tuple[float, str]:
    measured = measure_energy_rapl(model, one, calls=max(calls, 1))
    if measured is not None:
        return measured, "rapl"
    estimate = estimate_energy(macs, state_bytes(model), count_activation_bytes(model, one))
    return estimate.joules, estimate.source


def _first_shape(inputs: Any) -> list[int]:
    if isinstance(inputs, torch.Tensor):
        return list(inputs.shape)
    if isinstance(inputs, (tuple, list)):
        for item in inputs:
            if isinstance(item, torch.Tensor):
                return list(item.shape)
    return []

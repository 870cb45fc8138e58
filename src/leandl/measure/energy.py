"""Energy of inference: measured from RAPL counters when readable, otherwise estimated.

**Measured** (``source="rapl"``): Linux exposes Intel/AMD RAPL counters as
``/sys/class/powercap/intel-rapl:N/energy_uj`` (microjoules, one per CPU package; sub-zones
``intel-rapl:N:M`` are parts of a package and are not added again). A counter wraps to 0 after
``max_energy_range_uj``; a reading that went down is taken to have wrapped once. RAPL measures
the whole package, so other work on the machine is included; idle power is not subtracted.
Often only root may read ``energy_uj``; then RAPL is treated as unreadable.

**Estimated** (``source="estimated"``): a first-order model from the operation counts and a
published per-operation energy table, Horowitz, "Computing's energy problem (and what we can
do about it)", ISSCC 2014, 45 nm at 0.9 V (as tabulated by Han et al., NeurIPS 2015, and
Sze et al., Proc. IEEE 2017)::

    E = MACs * (E_mult + E_add)                    # arithmetic, dtype's mult and add
      + weight_bytes / 4 * E_DRAM                  # every weight read once from DRAM
      + activation_bytes / 4 * E_SRAM              # activations through an on-chip SRAM

with ``E_DRAM`` the energy of one 32-bit DRAM read (640 pJ) and ``E_SRAM`` of one 32-bit read
from an 8 KB SRAM (5 pJ); ``activation_bytes`` counts, for every leaf module, the bytes of its
input tensors (read) plus its output tensors (written), both charged at the SRAM read energy.
Caches, control, leakage and idle power are ignored, so the estimate is a lower bound useful for
comparing models, not a prediction of a meter reading.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from leandl.measure._util import as_args, eval_mode, tensor_bytes

__all__ = [
    "EnergyTable",
    "HOROWITZ_45NM",
    "EnergyEstimate",
    "estimate_energy",
    "count_activation_bytes",
    "RaplReading",
    "read_rapl",
    "rapl_energy_j",
    "measure_energy_rapl",
]

POWERCAP_ROOT = "/sys/class/powercap"
_PACKAGE = re.compile(r"^intel-rapl:\d+$")


@dataclass(frozen=True)
class EnergyTable:
    """Energy per operation in picojoules (pJ); ``mult``/``add`` keyed by dtype name."""

    mult_pj: dict[str, float]
    add_pj: dict[str, float]
    dram_read_32bit_pj: float
    sram_read_32bit_pj: float
    source: str


HOROWITZ_45NM = EnergyTable(
    mult_pj={"fp32": 3.7, "int8": 0.2},
    add_pj={"fp32": 0.9, "int8": 0.03},
    dram_read_32bit_pj=640.0,
    sram_read_32bit_pj=5.0,
    source="Horowitz, ISSCC 2014, 45 nm, 0.9 V",
)


@dataclass(frozen=True)
class EnergyEstimate:
    """Estimated energy of one forward pass (joules) with its terms (joules)."""

    joules: float
    compute_j: float
    weights_j: float
    activations_j: float
    macs: int
    weight_bytes: int
    activation_bytes: int
    dtype: str
    table: str
    source: str = field(default="estimated")

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (units are in the key names)."""
        return asdict(self)


def estimate_energy(
    macs: int,
    weight_bytes: int,
    activation_bytes: int = 0,
    *,
    dtype: str = "fp32",
    table: EnergyTable = HOROWITZ_45NM,
) -> EnergyEstimate:
    """Estimate the energy of one forward pass with the model in the module docstring.

    Args:
        macs: multiply-accumulates of the pass (see :func:`leandl.measure.count_macs`).
        weight_bytes: bytes of the weights read (parameters and buffers).
        activation_bytes: bytes of activation traffic (see :func:`count_activation_bytes`).
        dtype: arithmetic type, a key of ``table.mult_pj`` ("fp32" or "int8").
        table: per-operation energies.

    Returns:
        :class:`EnergyEstimate` labelled ``source="estimated"``.

    Example:
        >>> estimate_energy(50, 220, 0).joules   # 50*(3.7+0.9) + 55*640 pJ
        3.543e-08
    """
    if dtype not in table.mult_pj or dtype not in table.add_pj:
        raise ValueError(f"no energy for dtype '{dtype}'; known: {sorted(table.mult_pj)}")
    pj = 1e-12
    compute = macs * (table.mult_pj[dtype] + table.add_pj[dtype]) * pj
    weights = weight_bytes / 4 * table.dram_read_32bit_pj * pj
    activations = activation_bytes / 4 * table.sram_read_32bit_pj * pj
    return EnergyEstimate(
        joules=compute + weights + activations,
        compute_j=compute,
        weights_j=weights,
        activations_j=activations,
        macs=int(macs),
        weight_bytes=int(weight_bytes),
        activation_bytes=int(activation_bytes),
        dtype=dtype,
        table=table.source,
    )


def count_activation_bytes(model: nn.Module, example_inputs: Any) -> int:
    """Bytes read and written by leaf modules in one forward pass (eval, no grad).

    For each call of a module without children: bytes of its tensor inputs plus bytes of its
    tensor outputs. Work done outside leaf modules (functional calls in a parent's ``forward``)
    is not seen.
    """
    total = 0

    def hook(_module: nn.Module, inputs: Any, output: Any) -> None:
        nonlocal total
        total += tensor_bytes(inputs) + tensor_bytes(output)

    leaves = [m for m in model.modules() if next(m.children(), None) is None]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        with eval_mode(model), torch.no_grad():
            model(*as_args(example_inputs))
    finally:
        for h in handles:
            h.remove()
    return total


@dataclass(frozen=True)
class RaplReading:
    """One snapshot of the RAPL package counters (microjoules), keyed by zone directory name."""

    energy_uj: dict[str, int]
    max_range_uj: dict[str, int]


def read_rapl(root: str | Path = POWERCAP_ROOT) -> RaplReading | None:
    """Read every package-level RAPL counter under ``root``; ``None`` when none is readable."""
    base = Path(root)
    if not base.is_dir():
        return None
    energy: dict[str, int] = {}
    ranges: dict[str, int] = {}
    for zone in sorted(base.iterdir()):
        if not _PACKAGE.match(zone.name):
            continue
        try:
            energy[zone.name] = int((zone / "energy_uj").read_text().strip())
            ranges[zone.name] = int((zone / "max_energy_range_uj").read_text().strip())
        except (OSError, ValueError):
            continue
    return RaplReading(energy, ranges) if energy else None


def rapl_energy_j(start: RaplReading, end: RaplReading) -> float:
    """Joules consumed between two readings, summed over packages, counter wrap handled.

    A zone whose counter went down wrapped once: ``delta = end + max_range - start``.
    """
    total_uj = 0
    for zone, begin in start.energy_uj.items():
        if zone not in end.energy_uj:
            continue
        finish = end.energy_uj[zone]
        delta = finish - begin
        if delta < 0:
            delta += start.max_range_uj.get(zone, 0)
        total_uj += max(delta, 0)
    return total_uj / 1e6


def measure_energy_rapl(
    fn: Callable[..., Any],
    example_inputs: Any,
    *,
    calls: int = 20,
    root: str | Path = POWERCAP_ROOT,
) -> float | None:
    """Joules per call of ``fn(*example_inputs)`` from RAPL, or ``None`` when unreadable.

    Runs ``calls`` calls under ``torch.inference_mode()`` (eval mode for modules) between two
    readings and divides by ``calls``.
    """
    start = read_rapl(root)
    if start is None:
        return None
    args = as_args(example_inputs)
    with eval_mode(fn), torch.inference_mode():
        for _ in range(calls):
            fn(*args)
    end = read_rapl(root)
    if end is None:
        return None
    return rapl_energy_j(start, end) / calls

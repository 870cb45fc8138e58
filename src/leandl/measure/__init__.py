"""Measurement: the truth about a model's cost, with units and conditions on every number.

- :func:`count_params` -- parameter elements (total, trainable, non-zero)
- :func:`count_macs` -- multiply-accumulates per forward pass, per module, from PyTorch's
  ``FlopCounterMode`` (conv/linear/matmul/attention; BN, pooling, elementwise not counted)
- :func:`measure_latency`, :func:`compare_latency` -- wall time with warm-up, median/p90,
  thread count; alternating rounds for A/B comparisons on noisy machines
- :func:`measure_inference_memory`, :func:`measure_training_memory` -- peak tensor bytes
- :func:`weights_size_bytes`, :func:`file_size_bytes` -- serialized size
- :func:`read_rapl`, :func:`estimate_energy` -- joules, measured (RAPL) or estimated (labelled)
- :func:`profile` -- all of the above in one :class:`Profile`
- :func:`cpu_description` -- the CPU and the SIMD features (AVX-512 VNNI ...) int8 speed depends on

Nothing here imports from higher leandl packages.
"""

from __future__ import annotations

from leandl.measure.energy import (
    HOROWITZ_45NM,
    EnergyEstimate,
    EnergyTable,
    RaplReading,
    count_activation_bytes,
    estimate_energy,
    measure_energy_rapl,
    rapl_energy_j,
    read_rapl,
)
from leandl.measure.latency import (
    LatencyComparison,
    LatencyStats,
    compare_latency,
    measure_latency,
)
from leandl.measure.machine import cpu_description, cpu_features
from leandl.measure.macs import MacCount, count_macs
from leandl.measure.memory import MemoryStats, measure_inference_memory, measure_training_memory
from leandl.measure.params import ParamCount, count_params
from leandl.measure.profile import UNITS, Profile, profile
from leandl.measure.size import file_size_bytes, weights_size_bytes

__all__ = [
    "cpu_description",
    "cpu_features",
    "profile",
    "Profile",
    "UNITS",
    "count_params",
    "ParamCount",
    "count_macs",
    "MacCount",
    "measure_latency",
    "compare_latency",
    "LatencyStats",
    "LatencyComparison",
    "measure_inference_memory",
    "measure_training_memory",
    "MemoryStats",
    "weights_size_bytes",
    "file_size_bytes",
    "estimate_energy",
    "count_activation_bytes",
    "EnergyEstimate",
    "EnergyTable",
    "HOROWITZ_45NM",
    "read_rapl",
    "rapl_energy_j",
    "measure_energy_rapl",
    "RaplReading",
]

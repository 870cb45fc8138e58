"""Energy estimate formula and the RAPL reader on a fake sysfs tree."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from leandl.measure import (
    HOROWITZ_45NM,
    count_activation_bytes,
    estimate_energy,
    measure_energy_rapl,
    rapl_energy_j,
    read_rapl,
)


def test_table_values_are_horowitz_45nm() -> None:
    t = HOROWITZ_45NM
    assert (t.mult_pj["fp32"], t.add_pj["fp32"]) == (3.7, 0.9)
    assert (t.mult_pj["int8"], t.add_pj["int8"]) == (0.2, 0.03)
    assert (t.sram_read_32bit_pj, t.dram_read_32bit_pj) == (5.0, 640.0)


def test_estimate_equals_formula_on_hand_case() -> None:
    # Linear(10, 5) at batch 1: 50 MACs, 55 fp32 weights = 220 bytes, 100 activation bytes
    est = estimate_energy(50, 220, 100)
    assert est.source == "estimated"
    assert est.compute_j == pytest.approx(50 * 4.6e-12)
    assert est.weights_j == pytest.approx(55 * 640e-12)
    assert est.activations_j == pytest.approx(25 * 5e-12)
    assert est.joules == pytest.approx(230e-12 + 35_200e-12 + 125e-12)


def test_int8_and_unknown_dtype() -> None:
    assert estimate_energy(1000, 0, dtype="int8").joules == pytest.approx(1000 * 0.23e-12)
    with pytest.raises(ValueError, match="bf16"):
        estimate_energy(1, 1, dtype="bf16")


def test_activation_bytes_hand_case() -> None:
    model = nn.Sequential(nn.Linear(10, 5), nn.ReLU())
    # Linear reads 10 and writes 5 floats, ReLU reads 5 and writes 5: 25 floats
    assert count_activation_bytes(model, torch.randn(1, 10)) == 25 * 4


def _zone(root: Path, name: str, energy: int, max_range: int) -> None:
    zone = root / name
    zone.mkdir(exist_ok=True)
    (zone / "energy_uj").write_text(f"{energy}\n")
    (zone / "max_energy_range_uj").write_text(f"{max_range}\n")


def test_read_rapl_packages_only(tmp_path: Path) -> None:
    _zone(tmp_path, "intel-rapl:0", 1_000, 10_000)
    _zone(tmp_path, "intel-rapl:0:0", 500, 10_000)  # sub-zone: part of package 0
    _zone(tmp_path, "intel-rapl:1", 2_000, 20_000)
    reading = read_rapl(tmp_path)
    assert reading is not None
    assert reading.energy_uj == {"intel-rapl:0": 1_000, "intel-rapl:1": 2_000}
    assert reading.max_range_uj == {"intel-rapl:0": 10_000, "intel-rapl:1": 20_000}


def test_rapl_delta_with_wrap_around(tmp_path: Path) -> None:
    _zone(tmp_path, "intel-rapl:0", 9_000, 10_000)
    _zone(tmp_path, "intel-rapl:1", 2_000, 20_000)
    start = read_rapl(tmp_path)
    _zone(tmp_path, "intel-rapl:0", 500, 10_000)  # wrapped: 1_000 + 500
    _zone(tmp_path, "intel-rapl:1", 5_000, 20_000)  # plain: 3_000
    end = read_rapl(tmp_path)
    assert start is not None and end is not None
    assert rapl_energy_j(start, end) == pytest.approx(4_500 / 1e6)


def test_unreadable_rapl_is_none(tmp_path: Path) -> None:
    assert read_rapl(tmp_path / "missing") is None
    assert read_rapl(tmp_path) is None  # directory without zones
    assert measure_energy_rapl(nn.Identity(), torch.zeros(1), root=tmp_path) is None


def test_measure_energy_rapl_divides_by_calls(tmp_path: Path) -> None:
    _zone(tmp_path, "intel-rapl:0", 100, 10_000)
    calls = 0

    def fn(x: torch.Tensor) -> None:
        nonlocal calls
        calls += 1
        if calls == 4:  # the counter moves by 8_000 uJ during the 4 calls
            _zone(tmp_path, "intel-rapl:0", 8_100, 10_000)

    assert measure_energy_rapl(fn, torch.zeros(1), calls=4, root=tmp_path) == pytest.approx(0.002)

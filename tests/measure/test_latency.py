"""Latency statistics, thread handling and alternating comparisons."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from leandl.measure import compare_latency, measure_latency
from leandl.measure.latency import percentile


def test_percentile_linear_interpolation() -> None:
    assert percentile([4.0, 1.0, 3.0, 2.0], 90) == pytest.approx(3.7)
    assert percentile([5.0], 90) == 5.0
    assert percentile([1.0, 2.0, 3.0], 50) == 2.0


def test_stats_fields_are_consistent() -> None:
    model = nn.Linear(16, 4)
    model.train()
    stats = measure_latency(model, torch.randn(8, 16), warmup=1, repeats=7)
    assert stats.repeats == 7
    assert stats.batch_size == 8
    assert 0 < stats.median_ms <= stats.p90_ms
    assert stats.mean_ms > 0
    assert stats.throughput_per_s == pytest.approx(8 / (stats.median_ms / 1000))
    assert model.training  # eval during timing, flag restored


def test_threads_set_during_and_restored_after() -> None:
    before = torch.get_num_threads()
    seen: list[int] = []

    def fn(x: torch.Tensor) -> torch.Tensor:
        seen.append(torch.get_num_threads())
        return x

    stats = measure_latency(fn, torch.zeros(2, 3), warmup=0, repeats=2, threads=1)
    assert stats.threads == 1 and set(seen) == {1}
    assert torch.get_num_threads() == before
    assert measure_latency(fn, torch.zeros(1), warmup=0, repeats=1).threads == before


def test_runs_under_inference_mode_and_min_time_extends_repeats() -> None:
    modes: list[bool] = []

    def fn(x: torch.Tensor) -> None:
        modes.append(torch.is_inference_mode_enabled())
        time.sleep(0.002)

    stats = measure_latency(fn, torch.zeros(1), warmup=0, repeats=2, min_time_s=0.03)
    assert all(modes)
    assert stats.repeats >= 10  # 2 ms per call, 30 ms asked for


def test_compare_latency_alternates_and_reports_ratios() -> None:
    order: list[str] = []

    def variant(name: str, seconds: float):  # noqa: ANN202
        def fn(x: torch.Tensor) -> None:
            order.append(name)
            time.sleep(seconds)

        return fn

    result = compare_latency(
        {"fast": variant("fast", 0.001), "slow": variant("slow", 0.004)},
        torch.zeros(1),
        rounds=3,
        warmup=0,
        repeats=2,
    )
    # a warm-up of 3 calls each, then round 0 fast then slow, round 1 reversed, round 2 forward
    assert order[:6] == ["fast"] * 3 + ["slow"] * 3
    assert order[6:] == ["fast"] * 2 + ["slow"] * 4 + ["fast"] * 4 + ["slow"] * 2
    assert result.baseline == "fast"
    assert result.speedup["fast"] == [1.0, 1.0, 1.0]
    assert len(result.speedup["slow"]) == 3 and len(result.round_ms["slow"]) == 3
    assert result.speedup_median["slow"] < 1.0
    assert result.median_ms["slow"] > result.median_ms["fast"]

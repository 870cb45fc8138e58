"""profile(): fields, re-batching, JSON round trip, energy labelling."""

from __future__ import annotations

import importlib
import json

import pytest
import torch
from torch import nn

from leandl.measure import Profile, count_macs, profile
from leandl.measure._util import rebatch

# the package re-exports the function ``profile``, which shadows the submodule's name
profile_module = importlib.import_module("leandl.measure.profile")


def _tiny() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3)
    )


def test_rebatch_slices_and_repeats() -> None:
    x = torch.arange(3.0).reshape(3, 1)
    assert rebatch(x, 2).flatten().tolist() == [0.0, 1.0]
    assert rebatch(x, 7).flatten().tolist() == [0, 1, 2, 0, 1, 2, 0]
    a, b = rebatch((x, x[:1]), 4)
    assert a.shape == (4, 1) and b.shape == (4, 1)


def test_profile_fields_and_json_round_trip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(profile_module, "measure_energy_rapl", lambda *a, **k: None)
    model = _tiny()
    before = torch.get_num_threads()
    result = profile(
        model, torch.randn(2, 3, 4, 4), batch_sizes=(3, 1), threads=1, warmup=1, repeats=3
    )
    assert isinstance(result, Profile)
    assert torch.get_num_threads() == before
    macs_b1 = count_macs(model, torch.randn(1, 3, 4, 4)).total
    assert result.macs == macs_b1 == 4 * 4 * 4 * 3 * 9 + 64 * 3
    assert result.flops == 2 * macs_b1
    assert result.params == (4 * 27 + 4) + (64 * 3 + 3)
    assert result.input_shape == [1, 3, 4, 4]
    assert sorted(result.latency) == [1, 3]
    assert result.latency[3].batch_size == 3 and result.latency[3].threads == 1
    assert result.threads == 1
    assert result.memory_batch_size == 3 and result.peak_memory_bytes > 0
    assert result.energy_source == "estimated" and result.energy_j > 0
    data = json.loads(json.dumps(result.to_dict()))
    medians = {"1": result.latency[1].median_ms, "3": result.latency[3].median_ms}
    assert data["latency_ms"] == medians
    for key in ("params", "macs", "flops", "size_bytes", "energy_j", "energy_source", "units"):
        assert key in data
    assert dict(result.summary_rows())["params"] == "0.000 M"


def test_profile_uses_rapl_when_readable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(profile_module, "measure_energy_rapl", lambda *a, **k: 0.25)
    result = profile(_tiny(), torch.randn(1, 3, 4, 4), latency=False, memory=False)
    assert (result.energy_j, result.energy_source) == (0.25, "rapl")
    assert result.latency == {} and result.peak_memory_bytes is None


def test_profile_rejects_bad_batch_sizes() -> None:
    with pytest.raises(ValueError, match="batch_sizes"):
        profile(_tiny(), torch.randn(1, 3, 4, 4), batch_sizes=(0,))

"""Peak memory on hand-sized tensors and serialized size."""

from __future__ import annotations

import torch
from safetensors.torch import save
from torch import nn

from leandl.measure import (
    file_size_bytes,
    measure_inference_memory,
    measure_training_memory,
    weights_size_bytes,
)


def test_inference_peak_is_output_bytes_plus_resident() -> None:
    model = nn.Linear(100, 50, bias=False)
    x = torch.randn(8, 100)
    stats = measure_inference_memory(model, x)
    assert stats.resident_bytes == 50 * 100 * 4 + 8 * 100 * 4
    assert stats.peak_extra_bytes == 8 * 50 * 4  # the one output tensor
    assert stats.peak_bytes == stats.resident_bytes + stats.peak_extra_bytes
    assert stats.batch_size == 8 and stats.device == "cpu"


def test_two_live_activations_counted() -> None:
    model = nn.Sequential(nn.Linear(100, 50, bias=False), nn.ReLU())
    stats = measure_inference_memory(model, torch.randn(8, 100))
    assert stats.peak_extra_bytes == 2 * 8 * 50 * 4  # Linear output and ReLU output


def test_training_step_counts_gradients_and_restores_state() -> None:
    model = nn.Sequential(nn.Linear(100, 50, bias=False), nn.BatchNorm1d(50))
    model.eval()
    mean_before = model[1].running_mean.clone()
    stats = measure_training_memory(model, torch.randn(8, 100) + 3.0)
    assert stats.peak_extra_bytes >= 50 * 100 * 4 + 8 * 50 * 4  # weight gradient + activation
    assert not model.training
    assert model[0].weight.grad is None
    torch.testing.assert_close(model[1].running_mean, mean_before)


def test_weights_size_equals_safetensors_bytes() -> None:
    model = nn.Sequential(nn.Linear(10, 5), nn.BatchNorm1d(5))
    expected = len(save({k: v.contiguous() for k, v in model.state_dict().items()}))
    assert weights_size_bytes(model) == expected


def test_tied_weights_stored_once() -> None:
    a, b = nn.Linear(8, 8, bias=False), nn.Linear(8, 8, bias=False)
    b.weight = a.weight
    tied = weights_size_bytes(nn.Sequential(a, b))
    assert tied == len(save({"0.weight": a.weight.detach().clone()}))


def test_file_size_of_file_and_directory(tmp_path) -> None:  # noqa: ANN001
    (tmp_path / "a.bin").write_bytes(b"x" * 10)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.bin").write_bytes(b"y" * 7)
    assert file_size_bytes(tmp_path / "a.bin") == 10
    assert file_size_bytes(tmp_path) == 17

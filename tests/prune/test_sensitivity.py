"""Sensitivity analysis: per-group curves, ratios for an accuracy drop, JSON + PNG."""

from __future__ import annotations

import json

import pytest
import torch

from leandl.prune.sensitivity import ratios_for_drop, save_sensitivity, sensitivity_curves
from tests.prune.test_schedules_agp import _net


def test_ratios_for_drop_by_hand() -> None:
    curves = {"baseline": 0.90, "ratios": [0.25, 0.5, 0.75],
              "groups": {"a": {"accuracy": [0.90, 0.895, 0.70]}, "b": {"accuracy": [0.85, 0.9, 0.9]}}}
    assert ratios_for_drop(curves, 0.01) == {"a": 0.5, "b": 0.0}
    assert ratios_for_drop(curves, 0.3) == {"a": 0.75, "b": 0.75}


def test_curves_restore_model_and_write_files(tmp_path) -> None:
    model = _net().eval()
    x = torch.randn(32, 1, 6, 6)
    ref = model(x).detach()
    target = ref.argmax(1)
    acc = lambda m: float((m(x).argmax(1) == target).float().mean())  # noqa: E731
    curves = sensitivity_curves(model, x[:2], acc, ratios=(0.25, 0.5, 0.875))
    torch.testing.assert_close(model(x), ref, atol=0, rtol=0)  # weights restored exactly
    assert curves["baseline"] == 1.0
    (name, g), = curves["groups"].items()
    assert g["size"] == 16 and g["removed"] == [4, 8, 14]
    assert g["accuracy"][-1] <= g["accuracy"][0] + 1e-9  # pruning more hurts at least as much here
    paths = save_sensitivity(curves, tmp_path, max_drop=0.05)
    data = json.loads(paths["json"].read_text())
    assert name in data["ratios_for_drop"] and paths["png"].stat().st_size > 1000
    with pytest.raises(ValueError):
        sensitivity_curves(model, x[:2], acc, ratios=(1.0,))

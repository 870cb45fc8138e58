"""Parameter and MAC counts against the published / measured references (within 0.5 %)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from leandl.models import create_model


def _params_and_macs(model: nn.Module, shape: tuple[int, ...]) -> tuple[float, float]:
    """(millions of parameters, millions of MACs) at batch 1; MACs = FlopCounterMode flops / 2."""
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, *shape))
    params = sum(p.numel() for p in model.parameters())
    return params / 1e6, counter.get_total_flops() / 2e6


@pytest.mark.parametrize(
    ("name", "kwargs", "params_m", "macs_m"),
    [
        ("resnet56", {"shortcut": "B"}, 0.856, 125.75),
        ("resnet56", {"shortcut": "A"}, 0.853, 125.49),
        ("resnet20", {"shortcut": "B"}, 0.272, 40.81),
        ("resnet20", {"shortcut": "A"}, 0.270, 40.55),
        ("mobilenetv2", {}, 2.24, 88.0),
    ],
)
def test_counts_at_32x32(name: str, kwargs: dict, params_m: float, macs_m: float) -> None:
    model = create_model(name, input_shape=(3, 32, 32), **kwargs)
    params, macs = _params_and_macs(model, (3, 32, 32))
    assert params == pytest.approx(params_m, rel=5e-3)
    assert macs == pytest.approx(macs_m, rel=5e-3)


def test_shortcut_b_is_the_default() -> None:
    default = create_model("resnet56")
    params, _ = _params_and_macs(default, (3, 32, 32))
    assert params == pytest.approx(0.856, rel=5e-3)


@pytest.mark.parametrize(("name", "params_m"), [("wrn16_2", 0.69), ("wrn40_2", 2.24), ("resnet18", 11.17)])
def test_param_counts(name: str, params_m: float) -> None:
    model = create_model(name)
    assert sum(p.numel() for p in model.parameters()) / 1e6 == pytest.approx(params_m, rel=5e-3)

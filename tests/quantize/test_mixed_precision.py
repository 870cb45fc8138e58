from __future__ import annotations

import pytest
import torch
from torch import nn

from leandl.errors import ConfigError
from leandl.quantize.mixed_precision import allocate_bits, choose_bits, layer_sensitivity, weight_bytes


def test_knapsack_hand_case() -> None:
    counts = {"a": 100, "b": 100}
    sens = {"a": {2: 10.0, 4: 1.0, 8: 0.0}, "b": {2: 0.5, 4: 0.1, 8: 0.0}}
    # 150 bytes = 1200 bits: (8, 4) is 1200 bits with cost 0.1; (4, 4) 800 bits cost 1.1
    bits = allocate_bits(sens, counts, 150.0)
    assert bits == {"a": 8, "b": 4}
    assert weight_bytes(counts, bits) <= 150.0
    assert allocate_bits(sens, counts, 75.0) == {"a": 4, "b": 2}  # 600 bits
    with pytest.raises(ConfigError):
        allocate_bits(sens, counts, 10.0)


def test_mixed_beats_uniform_sensitivity_at_equal_size() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4))
    with torch.no_grad():
        model[4].weight.mul_(20)  # a sensitive last layer
    x = torch.randn(256, 16)
    bits, info = choose_bits(model, x, 0.25, candidates=(1, 2, 4, 8))
    assert info["weight_bytes"] <= info["budget_bytes"]
    sens = info["sensitivity"]
    mixed = sum(sens[n][b] for n, b in bits.items())
    uniform = sum(sens[n][2] for n in bits)
    assert mixed < uniform
    s2 = layer_sensitivity(model, x, (2, 8))
    assert all(s2[n][8] < s2[n][2] for n in s2)  # more bits, less damage


def test_multi_exit_sensitivity_sums_every_exits_change() -> None:
    """A model returning one logits tensor per exit (as after an ``exits`` stage): quantising the
    first exit's head changes only that exit, and the MSE is summed over exits."""
    from leandl.quantize.mixed_precision import ptq_weight

    class TwoExits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = torch.nn.Linear(4, 3, bias=False)
            self.b = torch.nn.Linear(4, 3, bias=False)

        def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
            return [self.a(x), self.b(x)]

    torch.manual_seed(0)
    m, x = TwoExits(), torch.randn(16, 4)
    y = torch.randint(0, 3, (16,))
    sens = layer_sensitivity(m, x, [2], targets=y, names=["a", "b"])
    for name in ("a", "b"):
        w = getattr(m, name).weight.detach()
        expect = float((x @ (ptq_weight(w, 2) - w).T).pow(2).sum(1).mean())
        assert abs(sens[name][2] - expect) < 1e-5
    loss = layer_sensitivity(m, x, [2], targets=y, metric="loss", names=["a"])["a"][2]
    ce = torch.nn.functional.cross_entropy
    with torch.no_grad():
        expect = (ce(x @ ptq_weight(m.a.weight, 2).T, y) - ce(m.a(x), y)) / 2  # mean over the 2 exits
    assert abs(loss - float(expect)) < 1e-5

"""Parameter and MAC counts on hand-computed cases."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from leandl.measure import count_macs, count_params


def test_count_params_total_trainable_nonzero() -> None:
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    with torch.no_grad():
        model[0].weight.fill_(1.0)
        model[0].weight[0, :] = 0.0  # 4 zeros
        model[0].bias.zero_()  # 3 zeros
        model[1].weight.fill_(2.0)
        model[1].bias.fill_(2.0)
    model[1].requires_grad_(False)
    counts = count_params(model)
    assert counts.total == 4 * 3 + 3 + 3 * 2 + 2 == 23
    assert counts.trainable == 15
    assert counts.nonzero == 23 - 4 - 3


def test_count_params_shared_counted_once() -> None:
    lin = nn.Linear(10, 10)
    assert count_params(nn.Sequential(lin, lin)).total == 110


def test_conv_macs_hand_computed() -> None:
    conv = nn.Conv2d(3, 8, 3, padding=1)
    macs = count_macs(conv, torch.randn(1, 3, 8, 8))
    assert macs.total == 8 * 8 * 8 * 3 * 9 == 13_824
    assert macs.flops == 2 * 13_824
    assert macs.per_module == {"": 13_824}


def test_linear_macs_hand_computed_and_batch_scaling() -> None:
    assert count_macs(nn.Linear(10, 5), torch.randn(1, 10)).total == 50
    assert count_macs(nn.Linear(10, 5), torch.randn(4, 10)).total == 200


def test_per_module_keys_are_dotted_names_and_sum_to_total() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Sequential(nn.Flatten(), nn.Linear(8 * 8 * 8, 5)),
    )
    macs = count_macs(model, torch.randn(1, 3, 8, 8))
    assert macs.per_module == {"0": 13_824, "3.1": 512 * 5}
    assert macs.total == sum(macs.per_module.values()) == 13_824 + 2_560


class _Block(nn.Module):
    """A parent that does work itself (F.linear) beside a child layer."""

    def __init__(self) -> None:
        super().__init__()
        self.child = nn.Linear(6, 4)
        self.weight = nn.Parameter(torch.randn(3, 4))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = self.child(x)
        return [h, F.linear(h, self.weight)]


def test_own_work_of_parent_and_list_outputs() -> None:
    model = nn.Sequential(_Block())
    macs = count_macs(model, torch.randn(2, 6))
    assert macs.per_module == {"0.child": 2 * 6 * 4, "0": 2 * 4 * 3}
    assert macs.total == 48 + 24


def test_training_flags_restored() -> None:
    model = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5))
    model.train()
    model[1].eval()
    count_macs(model, torch.randn(1, 3))
    assert model.training and model[0].training and not model[1].training

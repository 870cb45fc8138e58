"""mnist1d_cnn(blocks=...): the default network is unchanged; deeper stages add exit points."""

from __future__ import annotations

import pytest
import torch

from leandl.dynamic import attach_exits, backbone_macs, exit_costs
from leandl.errors import ModelError
from leandl.measure import count_macs
from leandl.models import create_model


def test_default_is_the_original_three_layer_network() -> None:
    net = create_model("mnist1d_cnn", input_shape=(1, 40), width=8)
    assert net.exit_points == ("stem", "layer1", "layer2")
    assert [n for n, _ in net.named_children()] == ["stem", "layer1", "layer2", "head"]
    assert isinstance(net.stem[0], torch.nn.Conv1d)
    # conv MACs: 1*8*5*40 + 8*16*5*20 + 16*16*5*10 = 1600 + 12800 + 12800; fc: 16*10*10
    assert count_macs(net, torch.zeros(1, 1, 40)).total == 1600 + 12800 + 12800 + 1600


def test_blocks_deepen_every_stage_and_list_exit_points() -> None:
    net = create_model("mnist1d_cnn", input_shape=(1, 40), width=8, blocks=3)
    assert net.exit_points == ("stem.0", "stem.1", "stem.2", "layer1.0", "layer1.1",
                               "layer1.2", "layer2.0", "layer2.1")
    # extra blocks: 2 * (8*8*5*40) + 2 * (16*16*5*20) + 2 * (16*16*5*10)
    extra = 2 * 12800 + 2 * 25600 + 2 * 12800
    assert count_macs(net, torch.zeros(1, 1, 40)).total == 1600 + 12800 + 12800 + 1600 + extra
    assert net(torch.randn(3, 1, 40)).shape == (3, 10)


def test_block_exits_are_spread_over_the_macs() -> None:
    torch.manual_seed(0)
    net = create_model("mnist1d_cnn", input_shape=(1, 40), width=8, blocks=3)
    model = attach_exits(net, list(net.exit_points), pool=2)
    costs, full = exit_costs(model, (1, 40)), backbone_macs(model, (1, 40))
    fracs = [c / full for c in costs[:-1]]
    assert all(b > a for a, b in zip(fracs, fracs[1:]))
    assert max(b - a for a, b in zip(fracs, fracs[1:])) < 0.25  # no gap above a quarter
    outs = model(torch.randn(2, 1, 40))
    assert len(outs) == 9


def test_bad_blocks_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="blocks"):
        create_model("mnist1d_cnn", input_shape=(1, 40), blocks=0)

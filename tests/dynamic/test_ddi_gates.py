from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import leandl
from leandl.dynamic.ddi_gates import (
    DDIBudget,
    GatedBlock,
    attach_ddi_gates,
    calibrate_gates,
    expected_fraction,
    gated_blocks,
    per_sample_macs,
    strip_gates,
)
from leandl.errors import ConfigError, ModelError
from leandl.measure import count_macs
from leandl.models import create_model


def _tiny_block() -> GatedBlock:
    """C=4, k=3, L=6: the gate picks option 0 (skip), 1 (2 channels) or 2 (all) from the input's mean."""
    torch.manual_seed(0)
    block = nn.Sequential(nn.Conv1d(4, 4, 3, 1, 1, bias=False), nn.BatchNorm1d(4), nn.ReLU())
    with torch.no_grad():
        block[1].running_mean.copy_(torch.tensor([0.1, -0.2, 0.3, 0.0]))
        block[1].running_var.copy_(torch.tensor([1.5, 0.5, 2.0, 1.0]))
        block[1].weight.copy_(torch.tensor([1.0, 2.0, 0.5, -1.0]))
        block[1].bias.copy_(torch.tensor([0.0, 0.1, -0.1, 0.2]))
    g = GatedBlock(block, 4, (0.0, 0.5, 1.0), hidden=1)
    with torch.no_grad():  # hidden unit = relu(mean of channel 0); logits = [2 - h, 0, h - 2] * 3
        g.gate.fc1.weight.copy_(torch.tensor([[1.0, 0.0, 0.0, 0.0]]))
        g.gate.fc1.bias.zero_()
        g.gate.fc2.weight.copy_(torch.tensor([[-3.0], [0.0], [3.0]]))
        g.gate.fc2.bias.copy_(torch.tensor([6.0, 0.0, -6.0]))
    g.block_macs, g.gate_macs = 4 * 4 * 3 * 6, 4 * 1 + 1 * 3
    return g.eval()


def test_gated_block_by_hand_skip_half_and_full():
    g = _tiny_block()
    x = torch.randn(3, 4, 6)
    x[0, 0], x[1, 0], x[2, 0] = 0.0, 2.1, 1.9  # h = 0, 2.1, 1.9 -> logits [6,0,-6], [-.3,0,.3], [.3,0,-.3]
    out = g(x)
    conv, bn = g.block[0], g.block[1]
    full = F.relu((F.conv1d(x, conv.weight, None, 1, 1) - bn.running_mean[:, None])
                  / torch.sqrt(bn.running_var[:, None] + bn.eps) * bn.weight[:, None] + bn.bias[:, None])
    assert g.last_fraction.tolist() == [0.0, 1.0, 0.0]
    torch.testing.assert_close(out[0], x[0])
    torch.testing.assert_close(out[1], full[1])
    torch.testing.assert_close(out[2], x[2])
    with torch.no_grad():  # logits now [6, 5.95, -6], [-.3, 5.95, .3], [.3, 5.95, -.3]
        g.gate.fc2.bias.copy_(torch.tensor([6.0, 5.95, -6.0]))
    out = g(x)
    assert g.last_fraction.tolist() == [0.0, 0.5, 0.5]
    torch.testing.assert_close(out[0], x[0])
    for i in (1, 2):  # first 2 channels computed, the other 2 pass the input through
        torch.testing.assert_close(out[i, :2], full[i, :2])
        torch.testing.assert_close(out[i, 2:], x[i, 2:])
    with torch.no_grad():  # a cost bias of 20 subtracts [0, 10, 20]: everything skips
        g.gate.cost_bias.fill_(20.0)
    g(x)
    assert g.last_fraction.tolist() == [0.0, 0.0, 0.0]


def test_partitioned_inference_equals_masked_training_formula():
    g = _tiny_block()
    with torch.no_grad():
        g.gate.fc2.weight.copy_(torch.randn(3, 1) * 4)
        g.gate.fc2.bias.copy_(torch.randn(3))
    x = torch.randn(64, 4, 6) * torch.linspace(0.1, 4, 64)[:, None, None]
    out = g(x)
    choice = g.logits(x).argmax(-1)
    assert len(set(choice.tolist())) > 1  # a mixed batch: the partitioned path is exercised
    ref = x + (g.block(x) - x) * g.masks[choice][:, :, None]
    torch.testing.assert_close(out, ref)


def test_per_sample_macs_match_the_counted_sliced_forward():
    torch.manual_seed(1)
    m = attach_ddi_gates(create_model("mnist1d_cnn", input_shape=(1, 40), width=8, blocks=2))
    assert [n for n, _ in gated_blocks(m)] == ["stem.1", "layer1.1", "layer2.1"]
    for _, g in gated_blocks(m):
        nn.init.normal_(g.gate.fc2.weight, std=4.0)
    x = torch.randn(12, 1, 40) * torch.linspace(0.1, 8, 12)[:, None, None] + torch.linspace(-2, 2, 12)[:, None, None]
    macs = per_sample_macs(m, x)
    assert len(set(macs.tolist())) > 1
    for i in range(12):  # FlopCounterMode counts the convs really run for one input
        assert count_macs(m, x[i:i + 1]).total == int(macs[i])
    # by hand: stem.1 is an 8->8 k5 conv at L40 = 12800 MACs; its gate 8*16 + 16*5 = 208
    g = dict(gated_blocks(m))["stem.1"]
    assert (g.block_macs, g.gate_macs) == (8 * 8 * 5 * 40, 8 * 16 + 16 * 5)


def test_calibration_meets_budget_and_refuses_impossible_ones():
    torch.manual_seed(2)
    m = attach_ddi_gates(create_model("mnist1d_cnn", input_shape=(1, 40), width=8, blocks=2))
    for _, g in gated_blocks(m):
        nn.init.normal_(g.gate.fc2.weight, std=1.0)
    x = torch.randn(50, 1, 40)
    res = calibrate_gates(m, x, 0.7)
    assert res["fraction"] <= 0.7
    assert float(per_sample_macs(m, x).mean()) / m.ddi_full_macs == pytest.approx(res["fraction"])
    with pytest.raises(ConfigError, match="budget"):
        calibrate_gates(m, x, 0.05)


def test_attach_errors_name_the_block():
    m = create_model("mnist1d_cnn", input_shape=(1, 40), width=8, blocks=2)
    with pytest.raises(ModelError, match="layer1.0"):
        attach_ddi_gates(m, ["layer1.0"])  # 8 -> 16 channels, stride 2
    with pytest.raises(ModelError, match="nope"):
        attach_ddi_gates(m, ["nope"])
    with pytest.raises(ConfigError, match="fractions"):
        attach_ddi_gates(m, fractions=[0.5, 1.0])


def test_save_load_rebuilds_gates_and_cost_bias(tmp_path):
    torch.manual_seed(3)
    m = attach_ddi_gates(create_model("mnist1d_cnn", input_shape=(1, 40), width=8, blocks=2))
    for _, g in gated_blocks(m):
        nn.init.normal_(g.gate.fc2.weight, std=3.0)
        g.gate.cost_bias.fill_(0.7)
    leandl.save(m.eval(), tmp_path / "ck")
    back = leandl.load(tmp_path / "ck").eval()
    x = torch.randn(9, 1, 40) * 3
    torch.testing.assert_close(back(x), m(x))
    torch.testing.assert_close(per_sample_macs(back, x), per_sample_macs(m, x))
    assert len(gated_blocks(strip_gates(back))) == 0


def test_budget_penalty_drives_training_compute_down_to_the_target():
    """The paper's direction: CE + compute penalty makes the gates skip work (here to 40 % MACs)."""
    torch.manual_seed(4)
    m = attach_ddi_gates(create_model("mnist1d_cnn", input_shape=(1, 40), width=8, blocks=2))
    x, y = torch.randn(64, 1, 40), torch.randint(0, 10, (64,))
    opt = torch.optim.Adam(m.parameters(), 0.03)
    pen = DDIBudget(target=0.4, weight=10.0)
    m.train()
    m(x)
    start = float(expected_fraction(m).detach())
    for _ in range(60):
        loss = F.cross_entropy(m(x), y) + pen.weight * (expected_fraction(m) - pen.target) ** 2
        opt.zero_grad()
        loss.backward()
        opt.step()
    fracs = []
    with torch.no_grad():
        for _ in range(5):
            m(x)
            fracs.append(float(expected_fraction(m)))
    assert start > 0.85
    assert abs(sum(fracs) / len(fracs) - 0.4) < 0.12


def test_penalty_target_ramp_by_hand():
    pen = DDIBudget(target=0.5, weight=1.0, ramp=0.5)
    assert [pen.current_target(p) for p in (0.0, 0.25, 0.5, 0.9)] == [1.0, 0.75, 0.5, 0.5]
    assert DDIBudget(target=0.3).current_target(0.0) == 0.3
    with pytest.raises(ConfigError, match="ramp"):
        DDIBudget(ramp=2.0)

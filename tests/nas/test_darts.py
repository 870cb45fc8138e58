from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from leandl.distill.kd import kd_loss
from leandl.errors import ConfigError
from leandl.measure import count_macs
from leandl.nas.darts import MixedOp, SearchConfig, SearchNet, _loss, darts_search


def test_mixed_op_is_the_softmax_weighted_sum_by_hand():
    op = MixedOp(1, 1, 1, ["none", "skip", "avg_pool_3"]).eval()
    x = torch.tensor([[[1.0, 2.0, 3.0, 4.0]]])
    w = torch.tensor([0.2, 0.3, 0.5])
    pooled = torch.tensor([[[1.5, 2.0, 3.0, 3.5]]]) / (1 + 1e-5) ** 0.5  # fresh BN, affine=False
    torch.testing.assert_close(op(x, w), 0.3 * x + 0.5 * pooled)


def test_op_mac_tables_add_up_and_expected_macs_by_hand():
    net = SearchNet((1, 16), 3, width=4, cells=3, nodes=2)
    norm, red, fixed = net.op_macs()
    assert fixed + int(norm.sum() + red.sum()) == count_macs(net, torch.zeros(1, 1, 16)).total
    with torch.no_grad():
        net.alpha_normal.zero_()
        net.alpha_reduce.zero_()
    uniform = fixed + float(norm.sum() + red.sum()) / len(net.op_names)
    assert float(net.expected_macs((norm, red, fixed)).detach()) == pytest.approx(uniform)
    with torch.no_grad():  # all weight on 'none' (index 0): only the fixed part is left
        net.alpha_normal[:, 0] = 50.0
        net.alpha_reduce[:, 0] = 50.0
    assert float(net.expected_macs((norm, red, fixed)).detach()) == pytest.approx(fixed, rel=1e-6)


def test_nas_kd_loss_by_hand():
    torch.manual_seed(0)
    net, teacher = torch.nn.Linear(5, 3), torch.nn.Linear(5, 3)
    x, y = torch.randn(4, 5), torch.tensor([0, 1, 2, 1])
    cfg = SearchConfig(kd_beta=0.3, kd_temperature=2.0)
    want = 0.7 * F.cross_entropy(net(x), y) + 0.3 * kd_loss(net(x), teacher(x), 2.0)
    torch.testing.assert_close(_loss(net, x, y, teacher, cfg), want)
    torch.testing.assert_close(_loss(net, x, y, None, cfg), F.cross_entropy(net(x), y))


def _toy(n: int = 128) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 1, 8, generator=g)
    y = (x.mean(dim=(1, 2)) > 0).long()
    return list(zip(x, y, strict=True))


def test_architecture_step_prefers_the_op_that_carries_the_signal():
    """DARTS's direction: alpha grows for the op that lowers the validation loss ('skip' over 'none')."""
    cfg = SearchConfig(epochs=3, batch_size=16, width=4, cells=1, nodes=2, ops=["none", "skip"], arch_lr=0.05)
    res = darts_search(_toy(), (1, 8), 2, cfg)
    a = torch.tensor(res.alphas["normal"])
    assert bool((a[:, 1] > a[:, 0]).all())
    assert all(e[0] == "skip" for e in res.genotype["normal"])
    assert res.seconds > 0 and len(res.history) == 3


def test_macs_penalty_steers_the_search_to_cheaper_cells():
    ops = ["skip", "conv_5", "sep_conv_5"]
    base = dict(epochs=2, batch_size=16, width=4, cells=3, nodes=2, ops=ops, arch_lr=0.05, max_macs=5000.0)
    plain = darts_search(_toy(), (1, 8), 2, SearchConfig(**base))
    cheap = darts_search(_toy(), (1, 8), 2, SearchConfig(**base, macs_weight=5.0))
    net = SearchNet((1, 8), 2, width=4, cells=3, nodes=2, ops=ops)
    tables = net.op_macs()

    def expected(alphas):
        with torch.no_grad():
            net.alpha_normal.copy_(torch.tensor(alphas["normal"]))
            net.alpha_reduce.copy_(torch.tensor(alphas["reduce"]))
        return float(net.expected_macs(tables).detach())

    assert expected(cheap.alphas) < expected(plain.alphas)


def test_search_settings_are_checked():
    with pytest.raises(ConfigError, match="max_macs"):
        darts_search(_toy(8), (1, 8), 2, SearchConfig(epochs=1, macs_weight=1.0))
    with pytest.raises(ConfigError, match="arch_warmup"):
        darts_search(_toy(8), (1, 8), 2, SearchConfig(epochs=1, arch_warmup=1))

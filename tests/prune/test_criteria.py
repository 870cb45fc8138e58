"""Every criterion: an importance ranking computed by hand on a tiny layer."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from leandl.prune.criteria import get_criterion
from leandl.prune.criteria.bn_scale import L1BN, add_bn_l1_grad_
from leandl.prune.criteria.di import di_importance
from leandl.prune.groups import channel_groups
from leandl.train.config import TrainConfig
from leandl.train.trainer import Trainer


class Net(nn.Module):
    """c1 (first layer, kept) -> c2 (3 units, the group under test) -> BN -> ReLU -> fc."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 2, 1, bias=False)
        self.c2 = nn.Conv2d(2, 3, 1, bias=False)
        self.bn = nn.BatchNorm2d(3)
        self.fc = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.bn(self.c2(self.c1(x)))).mean(dim=(2, 3)))


def _net() -> tuple[Net, object]:
    torch.manual_seed(0)
    m = Net().eval()
    with torch.no_grad():
        m.c2.weight.copy_(torch.tensor([[1.0, 1.0], [0.0, 1.8], [3.0, 0.0]]).reshape(3, 2, 1, 1))
        m.bn.weight.copy_(torch.tensor([0.5, -2.0, 1.0]))
        m.bn.bias.copy_(torch.tensor([0.1, 0.2, -0.1]))
    (g,) = channel_groups(m, torch.randn(1, 1, 2, 2))
    return m, g


def _batches(n: int = 3) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(3)
    return [(torch.randn(6, 1, 2, 2, generator=gen), torch.arange(6) % 2) for _ in range(n)]


def test_l1_by_hand() -> None:
    m, g = _net()
    s = get_criterion("l1")(m, g)
    torch.testing.assert_close(s, torch.tensor([2.0, 1.8, 3.0]))
    assert s.argsort(descending=True).tolist() == [2, 0, 1]


def test_l2_by_hand_ranks_differently_from_l1() -> None:
    m, g = _net()
    s = get_criterion("l2")(m, g)
    torch.testing.assert_close(s, torch.tensor([math.sqrt(2), 1.8, 3.0]))
    assert s.argsort(descending=True).tolist() == [2, 1, 0]


def test_fpgm_by_hand() -> None:
    m, g = _net()
    d01, d02, d12 = math.sqrt(1 + 0.8**2), math.sqrt(4 + 1), math.sqrt(9 + 1.8**2)
    s = get_criterion("fpgm")(m, g)
    torch.testing.assert_close(s, torch.tensor([d01 + d02, d01 + d12, d02 + d12]))
    assert s.argmin().item() == 0  # closest to the geometric median: pruned first


def test_bn_scale_by_hand() -> None:
    m, g = _net()
    s = get_criterion("bn_scale")(m, g)
    torch.testing.assert_close(s, torch.tensor([0.5, 2.0, 1.0]))
    assert s.argsort(descending=True).tolist() == [1, 2, 0]


def test_random_is_seeded() -> None:
    m, g = _net()
    a, b = get_criterion("random")(m, g), get_criterion("random")(m, g)
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, get_criterion("random", seed=1)(m, g))


def test_taylor_equals_the_gate_after_bn() -> None:
    m, g = _net()
    batches = _batches()
    ref = torch.zeros(3, dtype=torch.float64)
    for x, y in batches:  # the paper's definition: gate z = 1 after BN, (z * dL/dz)^2 per batch
        z = torch.ones(1, 3, 1, 1, requires_grad=True)
        h = m.bn.register_forward_hook(lambda _m, _i, out: out * z)
        F.cross_entropy(m(x), y).backward()
        h.remove()
        ref += (z.grad.reshape(3).double()) ** 2
    m.zero_grad()
    s = get_criterion("taylor")(m, g, batches)
    torch.testing.assert_close(s, (ref / len(batches)).float(), rtol=1e-4, atol=1e-7)


def test_di_matches_the_closed_form_and_prefers_a_separating_channel() -> None:
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(8) % 2
    feats = torch.stack([y.float() * 2 + 0.1 * torch.randn(8, generator=gen),
                         torch.randn(8, generator=gen)], dim=1)[:, :, None]  # (B, C=2, R=1)
    imp = di_importance(feats, y, num_classes=2, rho=0.1)
    x = feats[:, :, 0].double()
    xc = x - x.mean(0)
    yo = F.one_hot(y, 2).double()
    yc = yo - yo.mean(0)
    kinv = torch.linalg.inv(xc @ xc.T + 0.1 * torch.eye(8, dtype=torch.float64))
    a = kinv @ yc @ yc.T @ kinv
    by_hand = torch.stack([(2 * 0.1 * (a * torch.outer(xc[:, c], xc[:, c])).sum()).abs() for c in range(2)])
    torch.testing.assert_close(imp, by_hand, rtol=1e-6, atol=1e-9)
    assert imp[0] > imp[1]


def test_di_by_hand_two_samples_and_rises_with_separation() -> None:
    """x = (+a, -a), labels (0, 1): Yc columns are +-v/sqrt2 with K v = 2a^2 v, so DI = 2a^2/(2a^2+rho)."""
    from leandl.prune.criteria.di import discriminant_information

    y = torch.tensor([0, 1])
    for a, rho in ((1.0, 0.5), (0.3, 0.1), (2.0, 0.1)):
        x = torch.tensor([[a], [-a]], dtype=torch.float64)
        want = 2 * a * a / (2 * a * a + rho)
        assert abs(float(discriminant_information(x, y, 2, rho)) - want) < 1e-12
    # more separated classes, same noise -> higher DI; adding a channel never lowers it
    gen = torch.Generator().manual_seed(0)
    y8 = torch.arange(40) % 2
    noise = torch.randn(40, 2, generator=gen)
    di = [float(discriminant_information(noise[:, :1] + s * y8[:, None], y8, 2)) for s in (0.0, 0.5, 2.0)]
    assert di[0] < di[1] < di[2] <= 1.0 * 20 * 2 * 0.25 * 2
    both = float(discriminant_information(torch.cat([noise[:, :1] + 0.5 * y8[:, None], noise[:, 1:]], 1), y8, 2))
    assert both >= di[1] - 1e-12


def test_di_criterion_runs_on_a_group() -> None:
    m, g = _net()
    s = get_criterion("di")(m, g, _batches())
    assert s.shape == (3,) and torch.isfinite(s).all() and (s >= 0).all()


def test_l1_bn_adds_sign_gamma_and_trains_two_batches() -> None:
    m, _ = _net()
    m.bn.weight.grad = torch.zeros(3)
    add_bn_l1_grad_(m, 0.1)
    torch.testing.assert_close(m.bn.weight.grad, torch.tensor([0.1, -0.1, 0.1]))

    class Data(Dataset):
        def __len__(self) -> int:
            return 8

        def __getitem__(self, i: int):
            return torch.randn(1, 2, 2), torch.tensor(i % 2), torch.tensor(i)

    model = Net()
    before = model.bn.weight.detach().abs().sum()
    cfg_l1 = TrainConfig(epochs=1, batch_size=4, progress=False, checkpoint_every=0, lr=0.1,
                         weight_decay=0.0, momentum=0.0)
    model.fc.weight.requires_grad_(False)  # only the L1 term moves gamma towards 0
    Trainer(model, cfg_l1, train_data=Data(), val_data=None, num_classes=2,
            techniques=[L1BN(lam=1.0)]).fit()
    assert model.bn.weight.detach().abs().sum() < before

"""Exit-training techniques: maths on tiny tensors, two-batch training through the Trainer."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from leandl.dynamic import attach_exits
from leandl.dynamic.exit_loss_weights import ExitLossWeights, sdn_weights
from leandl.dynamic.gradient_equilibrium import GradientEquilibrium
from leandl.dynamic.inline_collaboration import InlineCollaboration
from leandl.dynamic.one_for_all_kd import OneForAllKD, one_for_all_kd_loss
from leandl.registry import TECHNIQUES
from leandl.train import TrainConfig, Trainer


def _exit_model() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3))
    return attach_exits(net, ["1", "3"], input_shape=(4,), layout="nc")


def test_ofa_loss_value() -> None:
    z = [torch.zeros(2, 3), torch.log(torch.tensor([[0.5, 0.25, 0.25]] * 2))]
    y = torch.tensor([0, 0])
    kl = 0.5 * math.log(0.5 / (1 / 3)) + 2 * 0.25 * math.log(0.25 / (1 / 3))
    want = math.log(2) + 0.9 * math.log(3) + 0.1 * kl
    torch.testing.assert_close(one_for_all_kd_loss(z, y, 0.1, 1.0), torch.tensor(want), rtol=1e-5, atol=1e-6)


def test_sdn_weights() -> None:
    assert sdn_weights(0.0, [0.5]) == [0.01, 1.0]
    assert sdn_weights(1.0, [0.5]) == [0.5, 1.0]


def test_techniques_registered_and_validated() -> None:
    for name in ("exit_loss_weights", "gradient_equilibrium", "inline_collaboration", "one_for_all_kd"):
        assert name in TECHNIQUES.names()
    with pytest.raises(ValueError):
        OneForAllKD(gamma=1.5)
    with pytest.raises(ValueError):
        InlineCollaboration(width=0)


@pytest.mark.parametrize("techniques", [
    lambda: [ExitLossWeights(weights=[0.5, 0.5, 1.0])],
    lambda: [ExitLossWeights(schedule="sdn")],
    lambda: [GradientEquilibrium()],
    lambda: [InlineCollaboration(width=4)],
    lambda: [GradientEquilibrium(), InlineCollaboration(width=4), OneForAllKD(gamma=0.3, temperature=2.0)],
])
def test_two_batches_through_trainer(blobs, techniques) -> None:
    train, val = blobs
    model = _exit_model()
    cfg = TrainConfig(epochs=1, batch_size=32, progress=False, checkpoint_every=0)
    techs = techniques()
    res = Trainer(model, cfg, train_data=train, val_data=val, num_classes=3, techniques=techs).fit()
    assert len(res.metrics["val_output_accuracy"]) == 3
    assert model.gradient_equilibrium is False  # switched off after the fit
    if any(isinstance(t, InlineCollaboration) for t in techs):
        assert len(res.model.links) == 2


def test_ge_shrinks_early_block_gradient() -> None:
    """The paper's claim: without GE early blocks get the summed (larger) gradient."""
    model = _exit_model()
    x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    norms = {}
    for ge in (False, True):
        model.zero_grad()
        model.gradient_equilibrium = ge
        sum(F.cross_entropy(z, y) for z in model(x)).backward()
        norms[ge] = model.backbone[0].weight.grad.norm().item()
    assert norms[True] < norms[False]

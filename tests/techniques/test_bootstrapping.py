from __future__ import annotations

import math

import pytest
import torch

from leandl.techniques.bootstrapping import Bootstrapping, bootstrap_targets
from leandl.train import State, TrainConfig, Trainer


def test_soft_and_hard_targets_hand_case():
    q = torch.tensor([[1.0, 0.0, 0.0]])
    p = torch.tensor([[0.2, 0.7, 0.1]])
    z = p.log()
    torch.testing.assert_close(bootstrap_targets(q, z, mode="soft"), 0.95 * q + 0.05 * p)
    torch.testing.assert_close(bootstrap_targets(q, z, mode="hard"), torch.tensor([[0.8, 0.2, 0.0]]))
    torch.testing.assert_close(bootstrap_targets(q, z, 0.5, "soft"), torch.tensor([[0.6, 0.35, 0.05]]))


def test_soft_gradient_flows_through_target_unless_detached():
    q = torch.tensor([[1.0, 0.0, 0.0]])
    p = torch.tensor([[0.2, 0.7, 0.1]])
    grads = []
    for detach in (False, True):
        z = p.log().clone().requires_grad_(True)
        t = bootstrap_targets(q, z, 0.5, "soft", detach=detach)
        (-(t * torch.log_softmax(z, -1)).sum()).backward()
        grads.append(z.grad)
    torch.testing.assert_close(grads[1], p - (0.5 * q + 0.5 * p), atol=1e-6, rtol=1e-5)
    # live target adds 0.5 * H(p): gradient -0.5 p (log p + H)
    h = -(p * p.log()).sum()
    torch.testing.assert_close(grads[0], grads[1] - 0.5 * p * (p.log() + h), atol=1e-6, rtol=1e-5)


def test_technique_defaults_and_validation(mlp):
    assert Bootstrapping("hard").beta == 0.8 and Bootstrapping().beta == 0.95
    with pytest.raises(ValueError):
        Bootstrapping(beta=1.5)
    st = State(model=mlp, num_classes=3)
    st.outputs = torch.tensor([[0.0, 5.0, 0.0]])
    st.targets_soft = torch.tensor([[1.0, 0.0, 0.0]])
    Bootstrapping("hard").before_loss(st)
    torch.testing.assert_close(st.targets_soft, torch.tensor([[0.8, 0.2, 0.0]]))


def test_two_batch_training(mlp, blobs):
    train, val = blobs
    cfg = TrainConfig(epochs=1, batch_size=32, progress=False, checkpoint_every=0)
    res = Trainer(mlp, cfg, train_data=train, val_data=val, num_classes=3,
                  techniques=[Bootstrapping("hard")]).fit()
    assert math.isfinite(res.history[0]["train_loss"])

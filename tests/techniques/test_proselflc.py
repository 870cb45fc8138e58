from __future__ import annotations

import math

import pytest
import torch

from leandl.techniques.proselflc import ProSelfLC, global_trust, local_trust, proselflc_targets
from leandl.train import State, TrainConfig, Trainer


def test_global_trust_values():
    assert global_trust(0.5, 8.0, 0.5) == pytest.approx(0.5)
    assert global_trust(1.0, 8.0, 0.5) == pytest.approx(1 / (1 + math.exp(-4)))
    assert global_trust(0.25, 8.0, 0.5) < 0.5


def test_local_trust_values():
    p = torch.tensor([[1 / 3, 1 / 3, 1 / 3], [0.95, 0.01, 0.04]])
    h = -(0.95 * math.log(0.95) + 0.01 * math.log(0.01) + 0.04 * math.log(0.04))
    torch.testing.assert_close(local_trust(p, "entropy"), torch.tensor([0.0, 1 - h / math.log(3)]),
                               atol=1e-6, rtol=0)
    torch.testing.assert_close(local_trust(p, "max_p"), torch.tensor([1 / 3, 0.95]))


def test_paper_example_target():
    """Paper: p=[0.95,0.01,0.04], q=[0,0,1], eps=0.8 -> q~=[0.76,0.008,0.232]."""
    p = torch.tensor([[0.95, 0.01, 0.04]])
    q = torch.tensor([[0.0, 0.0, 1.0]])
    # choose progress so that g * l = 0.8 with trust_mode global (l = 1)
    prog = 0.5 + math.log(0.8 / 0.2) / 8.0
    t, eps = proselflc_targets(q, p.log(), prog, trust_mode="global")
    torch.testing.assert_close(eps, torch.tensor([0.8]))
    torch.testing.assert_close(t, torch.tensor([[0.76, 0.008, 0.232]]), atol=1e-6, rtol=0)


def test_gradient_detached_vs_live_target():
    p = torch.tensor([[0.6, 0.3, 0.1]])
    q = torch.tensor([[0.0, 1.0, 0.0]])
    grads = {}
    for live in (False, True):
        z = p.log().clone().requires_grad_(True)
        t, eps = proselflc_targets(q, z, 1.0, trust_mode="entropy", target_grad=live)
        (-(t * torch.log_softmax(z, -1)).sum()).backward()
        grads[live] = z.grad
    e = float(eps)
    torch.testing.assert_close(grads[False], p - ((1 - e) * q + e * p), atol=1e-6, rtol=1e-5)
    h = -(p * p.log()).sum()
    torch.testing.assert_close(grads[True], grads[False] - e * p * (p.log() + h), atol=1e-6, rtol=1e-5)


def test_early_training_keeps_label_dominant(mlp):
    st = State(model=mlp, num_classes=3, max_epochs=1, steps_per_epoch=100)
    st.step = 10
    st.outputs = torch.tensor([[9.0, 0.0, 0.0]])
    st.targets_soft = torch.tensor([[0.0, 1.0, 0.0]])
    ProSelfLC().before_loss(st)
    assert float(st.targets_soft[0, 1]) > 0.5 and float(st.targets_soft.sum()) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        ProSelfLC(temperature=0.0)


def test_two_batch_training(mlp, blobs):
    train, val = blobs
    cfg = TrainConfig(epochs=1, batch_size=32, progress=False, checkpoint_every=0)
    tech = ProSelfLC()
    res = Trainer(mlp, cfg, train_data=train, val_data=val, num_classes=3, techniques=[tech]).fit()
    assert math.isfinite(res.history[0]["train_loss"])
    assert 0.0 <= res.metrics["proselflc_mean_eps_last_epoch"] < 0.5

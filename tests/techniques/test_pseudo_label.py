from __future__ import annotations

import math

import pytest
import torch

from leandl.techniques.pseudo_label import PseudoLabel, pseudo_label_alpha, pseudo_label_targets
from leandl.train import State, TrainConfig, Trainer


def test_alpha_ramp():
    assert pseudo_label_alpha(0.1, 0.2, 0.6, 3.0) == 0.0
    assert pseudo_label_alpha(0.4, 0.2, 0.6, 3.0) == pytest.approx(1.5)
    assert pseudo_label_alpha(0.9, 0.2, 0.6, 3.0) == 3.0


def test_targets_hand_case():
    q = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    z = torch.tensor([[0.0, 3.0, 0.0], [0.1, 0.0, 0.0]])
    t = pseudo_label_targets(q, z, alpha=3.0, threshold=0.5)
    # row 0: confident pseudo-label 1 -> (q + 3 e1)/4; row 1: max p < 0.5 -> unchanged
    torch.testing.assert_close(t, torch.tensor([[0.25, 0.75, 0.0], [1.0, 0.0, 0.0]]))
    # Lee's loss CE(q) + alpha CE(y^) equals (1 + alpha) * CE(q~)
    logp = torch.log_softmax(z[:1], -1)
    lee = -logp[0, 0] - 3.0 * logp[0, 1]
    torch.testing.assert_close(-(t[:1] * logp).sum() * 4.0, lee)


def test_warmup_leaves_targets(mlp):
    st = State(model=mlp, num_classes=3, max_epochs=1, steps_per_epoch=10)
    st.step = 1
    st.outputs = torch.tensor([[0.0, 3.0, 0.0]])
    st.targets_soft = torch.tensor([[1.0, 0.0, 0.0]])
    PseudoLabel().before_loss(st)
    torch.testing.assert_close(st.targets_soft, torch.tensor([[1.0, 0.0, 0.0]]))
    with pytest.raises(ValueError):
        PseudoLabel(start=0.8, end=0.2)


def test_two_batch_training(mlp, blobs):
    train, val = blobs
    cfg = TrainConfig(epochs=1, batch_size=32, progress=False, checkpoint_every=0)
    res = Trainer(mlp, cfg, train_data=train, val_data=val, num_classes=3,
                  techniques=[PseudoLabel(start=0.0, end=0.5)]).fit()
    assert math.isfinite(res.history[0]["train_loss"])

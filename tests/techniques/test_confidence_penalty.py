from __future__ import annotations

import math

import pytest
import torch

from leandl.techniques.confidence_penalty import ConfidencePenalty, confidence_penalty, entropy
from leandl.train import State, TrainConfig, Trainer


def test_values_hand_case():
    z = torch.tensor([[0.0, 0.0], [math.log(0.2), math.log(0.8)]])
    h2 = -(0.2 * math.log(0.2) + 0.8 * math.log(0.8))
    torch.testing.assert_close(entropy(z), torch.tensor([math.log(2), h2]))
    torch.testing.assert_close(confidence_penalty(z, 0.5), -0.5 * torch.tensor([math.log(2), h2]))
    # hinge: only entropies below tau = 0.6 nats are penalised
    torch.testing.assert_close(confidence_penalty(z, 0.5, threshold=0.6), torch.tensor([0.0, 0.5 * (0.6 - h2)]))


def test_gradient_of_entropy_term():
    p = torch.tensor([[0.2, 0.5, 0.3]])
    z = p.log().clone().requires_grad_(True)
    confidence_penalty(z, 1.0).sum().backward()
    h = -(p * p.log()).sum()
    torch.testing.assert_close(z.grad, p * (p.log() + h), atol=1e-6, rtol=1e-5)  # -dH/dz


def test_penalty_raises_entropy_of_trained_model(mlp, blobs):
    """The paper's claim: predictions are less confident (higher entropy) with the penalty."""
    train, _ = blobs
    ents = []
    for techs in ([], [ConfidencePenalty(beta=1.0)]):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
        cfg = TrainConfig(epochs=15, batch_size=32, optimizer="adam", lr=0.01, progress=False, checkpoint_every=0)
        Trainer(model, cfg, train_data=train, val_data=None, num_classes=3, techniques=techs).fit()
        with torch.no_grad():
            ents.append(float(entropy(model(train.x)).mean()))
    assert ents[1] > ents[0] + 0.05


def test_adds_named_term(mlp):
    st = State(model=mlp, num_classes=3)
    st.outputs = torch.zeros(2, 3)
    st.loss = torch.tensor(1.0)
    ConfidencePenalty(beta=0.5).after_loss(st)
    torch.testing.assert_close(st.loss, torch.tensor(1.0 - 0.5 * math.log(3)))
    assert "confidence_penalty" in st.loss_terms
    with pytest.raises(ValueError):
        ConfidencePenalty(beta=-1.0)


def test_two_batch_training(mlp, blobs):
    train, val = blobs
    cfg = TrainConfig(epochs=1, batch_size=32, progress=False, checkpoint_every=0)
    res = Trainer(mlp, cfg, train_data=train, val_data=val, num_classes=3, techniques=[ConfidencePenalty()]).fit()
    assert math.isfinite(res.history[0]["train_loss"])

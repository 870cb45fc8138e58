from __future__ import annotations

import math

import pytest
import torch

from leandl.techniques.gradient_rescaling import GradientRescaling, emphasis_weights, rescaled_cross_entropy
from leandl.train import TrainConfig, Trainer


def _case():
    p = torch.tensor([[0.2, 0.5, 0.3], [0.6, 0.3, 0.1]])
    z = p.log().clone().requires_grad_(True)
    q = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    return p, z, q


def test_weights_hand_values_and_mode():
    p = torch.tensor([0.0, 0.5, 1.0])
    torch.testing.assert_close(emphasis_weights(p, 8.0, 1.0), torch.tensor([1.0, math.exp(2.0), 1.0]))
    torch.testing.assert_close(emphasis_weights(p, 2.0, 0.0), torch.tensor([math.exp(2.0), math.exp(1.0), 1.0]))
    grid = torch.linspace(0, 1, 1001)
    assert float(grid[emphasis_weights(grid, 8.0, 0.5).argmax()]) == pytest.approx(0.5 / 1.5, abs=1e-3)


def test_gradient_matches_reference_rule():
    p, z, q = _case()
    loss = rescaled_cross_entropy(z, q, beta=8.0, lam=0.5)
    # the value is plain CE: -log p_y
    torch.testing.assert_close(loss.detach(), torch.tensor([-math.log(0.5), -math.log(0.1)]), atol=1e-6, rtol=0)
    loss.mean().backward()
    p_y = torch.tensor([0.5, 0.1])
    w = torch.exp(8.0 * p_y.sqrt() * (1 - p_y))
    want = (p - q) * (w / (2 * (1 - p_y)))[:, None] / w.sum()
    torch.testing.assert_close(z.grad, want, atol=1e-6, rtol=1e-5)
    # ||g_i||_1 = w_i / sum_j w_j
    torch.testing.assert_close(z.grad.abs().sum(-1), w / w.sum(), atol=1e-6, rtol=1e-5)


def test_unnormalised_and_beta_zero_is_scaled_ce():
    p, z, q = _case()
    rescaled_cross_entropy(z, q, beta=0.0, lam=0.5, normalize=False).mean().backward()
    p_y = torch.tensor([0.5, 0.1])
    torch.testing.assert_close(z.grad, (p - q) / (2 * (1 - p_y))[:, None] / 2, atol=1e-6, rtol=1e-5)


def test_emphasis_shifts_weight_to_easy_samples():
    """lam=1 (mode 0.5) gives a sample at p_y=0.5 more weight than a hard one at p_y=0.05."""
    p = torch.tensor([[0.05, 0.95], [0.5, 0.5]])
    z = p.log().clone().requires_grad_(True)
    q = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    rescaled_cross_entropy(z, q, beta=8.0, lam=1.0).mean().backward()
    norms = z.grad.abs().sum(-1)
    assert float(norms[1]) > 3 * float(norms[0])


def test_two_batch_training(mlp, blobs):
    train, val = blobs
    with pytest.raises(ValueError):
        GradientRescaling(lam=-1.0)
    cfg = TrainConfig(epochs=1, batch_size=32, progress=False, checkpoint_every=0)
    res = Trainer(mlp, cfg, train_data=train, val_data=val, num_classes=3,
                  techniques=[GradientRescaling()]).fit()
    assert math.isfinite(res.history[0]["train_loss"])

"""BYOT's feature term: hand-computed loss, plumbing through the trainer, and its behaviour."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from leandl.data import load_data
from leandl.data.loader import make_loader
from leandl.distill.self_distill import SelfDistillation, _InputTap, _last_linear, feature_hint_loss
from leandl.dynamic import attach_exits
from leandl.errors import ModelError
from leandl.models import create_model
from leandl.train.config import TrainConfig
from leandl.train.trainer import Trainer


def test_feature_hint_loss_hand_values() -> None:
    r1, r2 = nn.Linear(2, 3, bias=False), nn.Linear(1, 3, bias=False)
    with torch.no_grad():
        r1.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]))
        r2.weight.copy_(torch.tensor([[2.0], [0.0], [1.0]]))
    f1, f2 = torch.tensor([[1.0, 2.0]]), torch.tensor([[1.0]])
    deep = torch.tensor([[0.0, 0.0, 1.0]], requires_grad=True)
    # r1(f1) - deep = [1, 2, -1] -> 6; r2(f2) - deep = [2, 0, 0] -> 4
    loss = feature_hint_loss([f1, f2], deep, [r1, r2])
    assert loss.item() == pytest.approx(10.0)
    loss.backward()
    assert deep.grad is None  # the deepest feature is the teacher: a constant
    assert r1.weight.grad is not None


def _exit_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return attach_exits(create_model("mnist1d_cnn", input_shape=(1, 40), width=16), ["stem", "layer1"], pool=2)


def test_feature_term_trains_its_regressors_and_resumes() -> None:
    data = load_data("mnist1d", num_samples=200)
    cfg = TrainConfig(epochs=1, batch_size=32, lr=0.05, progress=False, checkpoint_every=0, log_every=0)
    tech = SelfDistillation(feature_weight=0.03)
    tr = Trainer(_exit_model(0), cfg, train_data=data.train, val_data=None, num_classes=10, techniques=[tech])
    tr.fit()
    assert tr.state.loss_terms["self_feature"] > 0
    assert [r.in_features for r in tech.aux.modules] == [32, 64] and tech.aux.modules[0].out_features == 320  # 64 channels x 5 positions, flattened
    saved = tech.state_dict()
    assert saved["regressors"]["optimizer"]["state"]  # momentum buffers: the regressors were stepped
    fresh = SelfDistillation(feature_weight=0.03)
    fresh.load_state_dict(saved)
    Trainer(_exit_model(0), TrainConfig(epochs=1, batch_size=32, progress=False, checkpoint_every=0, log_every=0),
            train_data=data.train, val_data=None, num_classes=10, techniques=[fresh]).fit()
    assert fresh._pending is None and fresh.aux.optimizer is not None


def test_feature_term_needs_a_multi_exit_model() -> None:
    data = load_data("mnist1d", num_samples=200)
    cfg = TrainConfig(epochs=1, batch_size=32, progress=False, checkpoint_every=0, log_every=0)
    with pytest.raises(ModelError, match="feature_weight"):
        Trainer(create_model("mnist1d_cnn", input_shape=(1, 40)), cfg, train_data=data.train, val_data=None,
                num_classes=10, techniques=[SelfDistillation(feature_weight=0.1)]).fit()


def _residual(feature_weight: float, seed: int, data) -> list[float]:
    """Share of the deepest feature's variance a linear map of each shallow feature leaves unexplained."""
    model = _exit_model(seed)
    cfg = TrainConfig(epochs=6, batch_size=64, lr=0.05, progress=False, checkpoint_every=0, log_every=0, seed=seed)
    Trainer(model, cfg, train_data=data.train, val_data=None, num_classes=10,
            techniques=[SelfDistillation(feature_weight=feature_weight)]).fit()
    model.eval()
    tap = _InputTap([_last_linear(h, "exit") for h in model.exits] + [model.get_classifier()])
    feats: list[list[torch.Tensor]] = [[], [], []]
    with torch.no_grad():
        for x, *_ in make_loader(data.test, 256, shuffle=False):
            model(x)
            for i, f in enumerate(tap.take()):
                feats[i].append(f.flatten(1))
    tap.remove()
    f_all = [torch.cat(f).double() for f in feats]
    deep = f_all[-1]
    out = []
    for f in f_all[:-1]:
        a = torch.cat([f, torch.ones(len(f), 1, dtype=f.dtype)], 1)
        fit = a @ torch.linalg.lstsq(a, deep).solution
        out.append(float((fit - deep).pow(2).sum() / (deep - deep.mean(0)).pow(2).sum()))
    return out


def test_feature_term_makes_shallow_features_predict_the_deepest() -> None:
    """BYOT's hint pulls each exit's feature towards the deepest one: on held-out MNIST-1D a linear
    map of the shallow features explains more of the deepest feature (2 seeds, lambda 0.03)."""
    data = load_data("mnist1d", num_samples=2000)
    for seed in (0, 1):
        plain, hinted = _residual(0.0, seed, data), _residual(0.03, seed, data)
        assert sum(hinted) < 0.92 * sum(plain), (seed, plain, hinted)

"""ICE: the loss by hand on four embeddings; training with ICE separates the class embeddings."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from leandl.registry import LOSSES
from leandl.techniques.ice import ICE, ice_loss
from leandl.train import TrainConfig, Trainer

F4 = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])  # normalised: e1, e1, e2, -e1
Y4 = torch.tensor([0, 0, 1, 1])


def _by_hand_ps() -> list[float]:
    e = math.e
    p01 = e / (e + 1 + 1 / e)  # anchors 0 and 1: positive cos 1, negatives cos 0 and -1
    p23 = 1 / (1 + 2)  # anchor 2: positive cos 0, negatives cos 0, 0
    p32 = 1 / (1 + 2 / e)  # anchor 3: positive cos 0, negatives cos -1, -1
    return [p01, p01, p23, p32]


def test_ice_by_hand():
    ps = _by_hand_ps()
    want = sum(-math.log(p) for p in ps) / 4
    assert float(ice_loss(F4, Y4, scale=1.0)) == pytest.approx(want, rel=1e-6)
    w = [math.exp(1.0 * (1 - p)) for p in ps]  # weight_scale 1: harder pairs weigh more
    want_w = sum(wi * -math.log(p) for wi, p in zip(w, ps)) / sum(w)
    assert float(ice_loss(F4, Y4, scale=1.0, weight_scale=1.0)) == pytest.approx(want_w, rel=1e-6)
    assert LOSSES.get("ice") is ice_loss


def test_ice_positives_do_not_compete_and_lonely_anchors_are_skipped():
    # anchor 0 with two identical positives: each p = e^s / (e^s + negatives), not e^s / (2 e^s + ...)
    f = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    y = torch.tensor([0, 0, 0, 1, 2])  # classes 1 and 2 have no positive: not anchors
    p = math.e / (math.e + 2)
    assert float(ice_loss(f, y, scale=1.0)) == pytest.approx(-math.log(p), rel=1e-6)
    zero = ice_loss(torch.randn(3, 2, requires_grad=True), torch.tensor([0, 1, 2]))
    assert float(zero.detach()) == 0.0 and zero.requires_grad
    with pytest.raises(ValueError, match="features"):
        ice_loss(torch.randn(3, 2), torch.tensor([0, 1]))


def _margin(model, data) -> float:
    """Mean same-class minus mean different-class cosine of the classifier's input embeddings."""
    x, y = data.x, data.y
    with torch.no_grad():
        h = F.normalize(model[:-1](x), dim=1)
    cos = h @ h.t()
    same = y[:, None] == y[None, :]
    eye = torch.eye(len(y), dtype=torch.bool)
    return float(cos[same & ~eye].mean() - cos[~same].mean())


def test_ice_pulls_classes_apart_in_embedding_space(blobs):
    train, val = blobs
    margins = {}
    for name, techs in (("ce", []), ("ice", [ICE(scale=8.0)])):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
        cfg = TrainConfig(epochs=5, batch_size=32, lr=0.05, progress=False, checkpoint_every=0, eval_every=5)
        res = Trainer(model, cfg, train_data=train, val_data=val, num_classes=3, techniques=techs).fit()
        assert res.metrics["val_accuracy"] >= 0.9
        margins[name] = _margin(model, val)
    assert margins["ice"] > margins["ce"] + 0.05


def test_reachable_from_a_recipe():
    from leandl.errors import ConfigError
    from leandl.recipes.techniques import build_techniques, check_technique

    cls, kwargs = check_technique({"name": "ice", "scale": 8.0, "weight": 0.5}, "stages[0].techniques[0]")
    assert cls.name == "ice" and build_techniques([{"name": "ice", "scale": 8.0, "weight": 0.5}], "stages[0]")[0].name == "ice"
    with pytest.raises(ConfigError, match="unknown argument"):
        check_technique({"name": "ice", "no_such_option": 1}, "stages[0].techniques[0]")

"""Group-wise quantisation by hand; two-stage KD brings a 2-bit model closer to its fp32 teacher."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from leandl.quantize.groupwise import GroupwiseQuant, channel_groups, groupwise_quantize
from leandl.train import TrainConfig, Trainer


def test_groupwise_quantize_by_hand():
    w = torch.tensor([[3.0, 1.2], [0.1, -0.04], [1.0, -0.5], [0.3, 0.2]])
    ids = channel_groups(w, 2)  # channel ranges 3, .1, 1, .3 -> sorted .1 .3 | 1 3
    assert ids.tolist() == [1, 0, 1, 0]
    assert channel_groups(w, 2, "contiguous").tolist() == [0, 0, 1, 1]
    # 3 bits: q in [-3, 3]; group 0 scale .3 / 3 = .1, group 1 scale 3 / 3 = 1
    want = torch.tensor([[3.0, 1.0], [0.1, -0.0], [1.0, -0.0], [0.3, 0.2]])
    torch.testing.assert_close(groupwise_quantize(w, ids, 3), want)
    # one group (per tensor): scale 1 -> the small channels vanish
    per_tensor = groupwise_quantize(w, torch.zeros(4, dtype=torch.long), 3)
    assert per_tensor[1].abs().sum() == 0 and per_tensor[3].abs().sum() == 0
    err = lambda q: float((q - w).square().sum())  # noqa: E731
    assert err(groupwise_quantize(w, ids, 3)) < err(per_tensor)
    with pytest.raises(ValueError, match="grouping"):
        channel_groups(w, 2, "random")


def _task():
    """10 Gaussian classes in 16-D: a 2-bit round-to-nearest MLP loses ~10 points here."""
    from tests.conftest import IndexedTensors

    g = torch.Generator().manual_seed(0)
    centers = torch.randn(10, 16, generator=g)
    y = torch.arange(600) % 10
    x = centers[y] + 0.7 * torch.randn(600, 16, generator=g)
    return IndexedTensors(x[:400], y[:400]), IndexedTensors(x[400:], y[400:])


def _teacher(train, val):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.ReLU(),
                                torch.nn.Linear(64, 10))
    cfg = TrainConfig(epochs=20, batch_size=32, lr=0.05, progress=False, checkpoint_every=0, eval_every=20)
    assert Trainer(model, cfg, train_data=train, val_data=val, num_classes=10).fit().metrics["val_accuracy"] > 0.95
    return model


def _kl(student, teacher, x):
    with torch.no_grad():
        return float(F.kl_div(F.log_softmax(student(x), -1), F.softmax(teacher(x), -1), reduction="batchmean"))


def test_two_stage_kd_beats_either_stage_alone_with_few_samples():
    """40 labelled samples, 2-bit weights: block-wise + joint KD ends closest to the fp32 teacher."""
    from tests.conftest import IndexedTensors

    train, val = _task()
    teacher = _teacher(train, val)
    few = IndexedTensors(train.x[:40], train.y[:40])
    kl, techs = {}, {}
    for name, steps, epochs in (("rtn", 0, 0), ("joint", 0, 20), ("two_stage", 100, 20)):
        model = copy.deepcopy(teacher)
        techs[name] = GroupwiseQuant(bits=2, groups=4, block_steps=steps)
        cfg = TrainConfig(epochs=epochs, batch_size=20, lr=1e-3, optimizer="adam", weight_decay=0.0,
                          progress=False, checkpoint_every=0, eval_every=max(epochs, 1))
        res = Trainer(model, cfg, train_data=few, val_data=val, num_classes=10, techniques=[techs[name]]).fit()
        kl[name] = _kl(res.model, teacher, val.x)
        for m in (res.model[0], res.model[4]):  # baked onto a 2-bit grid with at most 4 scales
            assert not hasattr(m, "parametrizations")
            assert len(m.weight.detach().abs().unique()) <= 1 + 4
    assert all(after <= before for before, after in techs["two_stage"].block_mse)
    assert techs["two_stage"].block_mse[-1][1] < techs["two_stage"].block_mse[-1][0]
    assert kl["two_stage"] < kl["joint"] < kl["rtn"]


def test_reachable_from_a_recipe():
    from leandl.errors import ConfigError
    from leandl.recipes.techniques import build_techniques, check_technique

    cls, kwargs = check_technique({"name": "groupwise_quant", "bits": 3, "groups": 8, "block_steps": 50}, "stages[0].techniques[0]")
    assert cls.name == "groupwise_quant" and build_techniques([{"name": "groupwise_quant", "bits": 3, "groups": 8, "block_steps": 50}], "stages[0]")[0].name == "groupwise_quant"
    with pytest.raises(ConfigError, match="unknown argument"):
        check_technique({"name": "groupwise_quant", "no_such_option": 1}, "stages[0].techniques[0]")

"""CondenseNet learned group convolution: stages and column dropping by hand, exact conversion, reload."""

from __future__ import annotations

import pytest
import torch

from leandl.models import create_model
from leandl.models.blocks.learned_group_conv import (
    Condense,
    CondensedGroupConv,
    LearnedGroupConv,
    condense_model,
    condense_stage,
)
from leandl.train import TrainConfig, Trainer


def test_condense_stage_by_hand():
    # C = 4: three stages over the first half of training, boundaries at 1/6, 1/3, 1/2
    got = [condense_stage(p, 4) for p in (0.0, 0.16, 0.17, 0.33, 0.34, 0.49, 0.5, 1.0)]
    assert got == [0, 0, 1, 1, 2, 2, 3, 3]
    assert [condense_stage(p, 2) for p in (0.0, 0.49, 0.5)] == [0, 0, 1]


def test_columns_dropped_by_group_importance_by_hand():
    layer = LearnedGroupConv(4, 4, groups=2, condense_factor=2)
    w = torch.tensor([[1.0, 0.1, 5.0, 0.2],   # filter 0 -> group 0
                      [0.3, 4.0, 0.1, 2.0],   # filter 1 -> group 1
                      [1.0, 0.1, 0.0, 0.3],   # filter 2 -> group 0: column sums 2, .2, 5, .5
                      [0.3, 1.0, 0.1, 2.0]])  # filter 3 -> group 1: column sums .6, 5, .2, 4
    with torch.no_grad():
        layer.conv.weight.copy_(w[:, :, None, None])
    assert layer.condense_to(0.4) == 0 and layer.dropped() == 0  # stage 0 before progress 1/2
    assert layer.condense_to(0.5) == 2 and layer.dropped() == 2
    assert layer.kept_inputs() == [[0, 2], [1, 3]]
    assert layer.mask[0].tolist() == [1, 0, 1, 0] and layer.mask[1].tolist() == [0, 1, 0, 1]
    # group lasso over kept columns: group 0 sqrt(1+1) + sqrt(25+0); group 1 sqrt(16+1) + sqrt(4+4)
    want = 2 ** 0.5 + 5 + 17 ** 0.5 + 8 ** 0.5
    assert float(layer.group_lasso().detach()) == pytest.approx(want, rel=1e-5)
    with pytest.raises(ValueError, match="multiple"):
        LearnedGroupConv(6, 4, groups=2, condense_factor=4)


def test_conversion_is_exact_and_cuts_the_1x1_weights_by_c():
    torch.manual_seed(0)
    layer = LearnedGroupConv(16, 8, groups=4, condense_factor=4)
    with torch.no_grad():
        layer.norm.running_mean.normal_()
        layer.norm.running_var.uniform_(0.5, 2.0)
        layer.norm.weight.normal_()
        layer.norm.bias.normal_()
    layer.condense_to(1.0)
    assert all(len(k) == 4 for k in layer.kept_inputs())
    layer.eval()
    new = CondensedGroupConv.from_learned(layer).eval()
    x = torch.randn(3, 16, 5, 5)
    torch.testing.assert_close(new(x), layer(x), atol=1e-5, rtol=1e-5)
    assert new.conv.weight.numel() == layer.conv.weight.numel() // 4


def _digits_like(n=64, seed=0):
    from tests.conftest import IndexedTensors

    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 4
    x = torch.randn(n, 1, 8, 8, generator=g) * 0.3
    for c in range(4):  # one bright quadrant per class
        x[y == c, 0, (c // 2) * 4:(c // 2) * 4 + 4, (c % 2) * 4:(c % 2) * 4 + 4] += 2.0
    return IndexedTensors(x, y)


def test_training_condenses_then_converts_and_reloads(tmp_path):
    import leandl

    torch.manual_seed(0)
    model = create_model("condensenet_tiny", num_classes=4, stages=[1, 1], growth=[4, 8])
    cfg = TrainConfig(epochs=8, batch_size=16, lr=0.1, progress=False, checkpoint_every=0, eval_every=8)
    tech = Condense(lasso=1e-5)
    res = Trainer(model, cfg, train_data=_digits_like(), val_data=_digits_like(32, 1), num_classes=4,
                  techniques=[tech]).fit()
    out = res.model
    assert not any(isinstance(m, LearnedGroupConv) for m in out.modules())
    convs = [m for m in out.modules() if isinstance(m, CondensedGroupConv)]
    assert len(convs) == 2 and res.metrics["val_accuracy"] >= 0.9
    assert tech.summary()["condense_columns_dropped"] == 3 * (8 // 4) + 3 * (12 // 4)
    x = _digits_like(8, 2).x
    leandl.save(out, tmp_path / "m")
    back = leandl.load(tmp_path / "m").eval()
    torch.testing.assert_close(back(x), out.eval()(x))


def test_condense_model_matches_the_masked_model():
    torch.manual_seed(0)
    model = create_model("condensenet_tiny").eval()
    for m in model.modules():
        if isinstance(m, LearnedGroupConv):
            m.condense_to(1.0)
    x = torch.randn(2, 1, 8, 8)
    before = model(x)
    torch.testing.assert_close(condense_model(model)(x), before, atol=1e-5, rtol=1e-5)


def test_reachable_from_a_recipe():
    from leandl.errors import ConfigError
    from leandl.recipes.techniques import build_techniques, check_technique

    cls, kwargs = check_technique({"name": "learned_group_conv", "lasso": 1e-5}, "stages[0].techniques[0]")
    assert cls.name == "learned_group_conv" and build_techniques([{"name": "learned_group_conv", "lasso": 1e-5}], "stages[0]")[0].name == "learned_group_conv"
    with pytest.raises(ConfigError, match="unknown argument"):
        check_technique({"name": "learned_group_conv", "no_such_option": 1}, "stages[0].techniques[0]")

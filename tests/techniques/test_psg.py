"""PSG: quantisers and the predictor rule by hand; signSGD training with the MSB predictor."""

from __future__ import annotations

import pytest
import torch

from leandl.errors import ConfigError
from leandl.techniques.psg import PSG, msb_truncate, psg_gradient, quantize_symmetric
from leandl.train import Technique, TrainConfig, Trainer


def test_quantisers_by_hand():
    x = torch.tensor([1.27, -0.5, 0.013, 0.2])
    # 8 bits: s = 1.27 / 127 = 0.01 -> codes 127, -50, 1, 20
    torch.testing.assert_close(quantize_symmetric(x, 8), torch.tensor([1.27, -0.5, 0.01, 0.2]))
    # top 4 of 8 bits: step 16 codes -> trunc(127/16)*16 = 112, trunc(-50/16)*16 = -48, 0, 16
    torch.testing.assert_close(msb_truncate(x, 8, 4), torch.tensor([1.12, -0.48, 0.0, 0.16]))


def test_predictor_rule_by_hand():
    g_msb = torch.tensor([1e-4, 1e-6, -2e-4, 0.0])
    g_full = torch.tensor([-3e-5, -5e-6, 1e-4, 2e-5])
    g, use = psg_gradient(g_msb, g_full, 5e-5)
    assert use.tolist() == [True, False, True, False]
    torch.testing.assert_close(g, torch.tensor([1e-4, -5e-6, -2e-4, 2e-5]))
    assert torch.sign(g).tolist() == [1.0, -1.0, -1.0, 1.0]


class Grads(Technique):
    """Records the gradients the optimizer sees (after psg)."""

    name = "grads"
    order = 90

    def __init__(self):
        self.values = []

    def before_step(self, state):
        self.values.append(torch.cat([p.grad.flatten() for p in state.model.parameters()]))


def _cfg(**kw):
    return TrainConfig(epochs=kw.pop("epochs", 1), batch_size=16, lr=kw.pop("lr", 1e-3), momentum=0.0,
                       weight_decay=0.0, nesterov=False, schedule="constant", progress=False,
                       checkpoint_every=0, **kw)


def test_updates_are_signs_and_master_weights_stay_fp32(mlp, blobs):
    rec = Grads()
    before = [p.detach().clone() for p in mlp.parameters()]
    Trainer(mlp, _cfg(epochs=1, lr=1e-3), train_data=blobs[0], val_data=None, num_classes=3,
            techniques=[PSG(), rec]).fit()
    assert all(set(g.unique().tolist()) <= {-1.0, 0.0, 1.0} for g in rec.values)
    # SGD without momentum: every weight moved by a multiple of lr (4 steps of +-1e-3 or 0)
    after = list(mlp.parameters())
    moved = torch.cat([(a.detach() - b).flatten() for a, b in zip(after, before)]) / 1e-3
    torch.testing.assert_close(moved, moved.round(), atol=1e-3, rtol=0)
    # the fp32 master weights are not left rounded to 8 bits
    w = after[0].detach()
    assert not torch.allclose(w, quantize_symmetric(w, 8))


def test_psg_trains_and_large_predicted_gradients_have_reliable_signs(mlp, blobs):
    """The paper's premise: where |g_msb| is large its sign matches the full gradient's."""
    psg = PSG(threshold=1e-3)
    res = Trainer(mlp, _cfg(epochs=8, lr=5e-3, eval_every=8), train_data=blobs[0], val_data=blobs[1], num_classes=3,
                  techniques=[psg]).fit()
    s = res.metrics
    assert s["val_accuracy"] >= 0.9
    assert 0.05 < s["psg_predicted_fraction"] < 1.0
    assert s["psg_sign_agreement_predicted"] > 0.9
    assert s["psg_sign_agreement_predicted"] > s["psg_sign_agreement_rest"]


def test_psg_refuses_autocast_and_bad_arguments(mlp, blobs):
    with pytest.raises(ConfigError, match="precision"):
        Trainer(mlp, _cfg(precision="bf16"), train_data=blobs[0], val_data=None, num_classes=3,
                techniques=[PSG()]).fit()
    with pytest.raises(ValueError, match="msb_bits"):
        PSG(bits=4, msb_bits=4)


def test_reachable_from_a_recipe():
    from leandl.errors import ConfigError
    from leandl.recipes.techniques import build_techniques, check_technique

    cls, kwargs = check_technique({"name": "psg", "threshold": 1e-4, "msb_bits": 3}, "stages[0].techniques[0]")
    assert cls.name == "psg" and build_techniques([{"name": "psg", "threshold": 1e-4, "msb_bits": 3}], "stages[0]")[0].name == "psg"
    with pytest.raises(ConfigError, match="unknown argument"):
        check_technique({"name": "psg", "no_such_option": 1}, "stages[0].techniques[0]")

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from leandl.techniques.layer_freezing import LayerFreezing, freeze_times, frozen_prefix, lr_multiplier
from leandl.train import TrainConfig, Trainer
from leandl.train.technique import Technique


def test_freeze_times_hand_values():
    assert freeze_times(3, 0.5) == [0.5, 0.75, 1.0]
    torch.testing.assert_close(torch.tensor(freeze_times(3, 0.5, "cubic")), torch.tensor([0.125, 0.421875, 1.0]))
    assert freeze_times(1, 0.5) == [1.0]
    with pytest.raises(ValueError):
        freeze_times(3, 0.0)


def test_frozen_prefix():
    times = [0.5, 0.75, 1.0]
    assert [frozen_prefix(times, p) for p in (0.0, 0.5, 0.8, 1.0)] == [0, 1, 2, 2]


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3))


def test_progressive_freezing_through_the_trainer(blobs):
    train, val = blobs
    model = _model()
    first = model[0].weight.detach().clone()
    cfg = TrainConfig(epochs=4, batch_size=32, progress=False, checkpoint_every=0)  # 8 steps
    tech = LayerFreezing(t0=0.5)  # times [0.5, 0.75, 1.0]: layer 0 frozen from step 4
    seen: list[bool] = []

    class Probe(Technique):
        name = "probe"

        def after_forward(self, state):
            seen.append(model[0].weight.requires_grad)

    res = Trainer(model, cfg, train_data=train, val_data=val, num_classes=3, techniques=[tech, Probe()]).fit()
    assert seen == [True] * 4 + [False] * 4
    # per sample saved with layer 0 frozen: weight grads 64 (its input grad was never computed);
    # with layers 0 and 2 frozen (from step 6): 64 + 2 * 256 = 576
    assert res.metrics["backward_macs_saved"] == 32 * (64 * 2 + 576 * 2)
    assert all(p.requires_grad for p in model.parameters())  # unfrozen at fit_end
    assert not torch.equal(first, model[0].weight)


def test_two_batch_training(mlp, blobs):
    train, val = blobs
    cfg = TrainConfig(epochs=1, batch_size=32, progress=False, checkpoint_every=0)
    res = Trainer(mlp, cfg, train_data=train, val_data=val, num_classes=3, techniques=[LayerFreezing(0.5)]).fit()
    assert res.history[0]["samples_trained"] == 64 and "freeze_backward_fraction_saved" in res.metrics


def test_frozen_blocks_keep_their_batch_norm_statistics(blobs):
    train, val = blobs
    torch.manual_seed(0)
    model = nn.Sequential(nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU()),
                          nn.Sequential(nn.Linear(16, 16), nn.BatchNorm1d(16), nn.ReLU()), nn.Linear(16, 3))
    stats: list[torch.Tensor] = []

    class Probe(Technique):
        name = "probe"
        order = 100

        def batch_end(self, state):
            stats.append(model[0][1].running_mean.clone())

    cfg = TrainConfig(epochs=4, batch_size=32, progress=False, checkpoint_every=0)  # 8 steps
    Trainer(model, cfg, train_data=train, val_data=val, num_classes=3,
            techniques=[LayerFreezing(t0=0.5, layers=["0", "1", "2"]), Probe()]).fit()
    # block 0 freezes from step 4 (progress 0.5): its statistics move before, never after
    assert not torch.equal(stats[0], stats[3])
    assert all(torch.equal(stats[3], s) for s in stats[4:])


def test_lr_multiplier_hand_values():
    # (1 + cos(pi t / t_i)) / 2: t = t_i / 2 -> 1/2; t = 0 -> 1; scaled by 1 / t_i = 2
    assert lr_multiplier(0.25, 0.5) == pytest.approx(0.5)
    assert lr_multiplier(0.0, 0.5) == 1.0 and lr_multiplier(0.0, 0.5, scale_lr=True) == 2.0
    assert lr_multiplier(0.25, 0.5, scale_lr=True) == pytest.approx(1.0)
    assert lr_multiplier(0.1, 0.4) == pytest.approx((1 + math.cos(math.pi / 4)) / 2)
    assert lr_multiplier(0.5, 0.5) == 0.0 and lr_multiplier(0.9, 0.5) == 0.0
    assert lr_multiplier(0.7, 1.0) == 1.0  # the head never freezes: the trainer's schedule alone
    # relative to the trainer's rate: under its cosine (factor (1 + cos(pi/4)) / 2 = 0.854 at
    # t = 0.25) the block's 0.5 becomes 0.5 / 0.854; during a warm-up (factor 0.25 < 0.5) it
    # follows the trainer
    cosine = (1 + math.cos(math.pi * 0.25)) / 2
    assert lr_multiplier(0.25, 0.5, schedule_factor=cosine) == pytest.approx(0.5 / cosine)
    assert lr_multiplier(0.25, 0.5, schedule_factor=0.25) == 1.0
    assert lr_multiplier(0.25, 0.5, scale_lr=True, schedule_factor=0.25) == 2.0


@pytest.mark.parametrize("opt", ["sgd", "adam", "adamw"])
def test_scaled_update_equals_a_scaled_learning_rate(opt):
    """p_old + m (p_new - p_old) is the step taken with learning rate m * lr (3 steps, momentum)."""
    make = {"sgd": lambda g: torch.optim.SGD(g, lr=0.1, momentum=0.9, weight_decay=1e-3),
            "adam": lambda g: torch.optim.Adam(g, lr=0.01, weight_decay=1e-3),
            "adamw": lambda g: torch.optim.AdamW(g, lr=0.01, weight_decay=1e-2)}[opt]
    a, b = _model(), _model()
    m = lr_multiplier(0.25, 0.5)  # block 0 at progress 0.25 with t_0 = 0.5: 0.5
    tech = LayerFreezing(t0=0.5, layers=["0", "2", "4"])
    tech.units, tech.times = [("0", a[0]), ("2", a[2]), ("4", a[4])], [0.5, 0.75, 1.0]
    opt_a = make(a.parameters())
    opt_b = make([{"params": b[0].parameters(), "lr": m * make([torch.zeros(1)]).defaults["lr"]},
                  {"params": b[2].parameters(), "lr": lr_multiplier(0.25, 0.75) * make([torch.zeros(1)]).defaults["lr"]},
                  {"params": b[4].parameters()}])
    x, y = torch.randn(8, 4, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    state = SimpleNamespace(progress=0.25, lr_factor=1.0)
    for _ in range(3):
        for net, o in ((a, opt_a), (b, opt_b)):
            o.zero_grad()
            nn.functional.cross_entropy(net(x), y).backward()
        tech.before_step(state)
        opt_a.step()
        tech.after_step(state)
        opt_b.step()
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6)


def _first_layer_steps(blobs, anneal: bool) -> list[float]:
    train, val = blobs
    model = _model()
    sizes: list[float] = []

    class Probe(Technique):
        name = "probe"
        order = 100

        def before_step(self, state):
            self.w = model[0].weight.detach().clone()

        def after_step(self, state):
            sizes.append(float((model[0].weight.detach() - self.w).norm()))

    cfg = TrainConfig(epochs=8, batch_size=32, progress=False, checkpoint_every=0, schedule="constant", lr=0.1)
    Trainer(model, cfg, train_data=train, val_data=val, num_classes=3,
            techniques=[LayerFreezing(t0=0.5, anneal=anneal), Probe()]).fit()
    return sizes


def test_annealing_brings_a_block_to_rest_before_it_freezes(blobs):
    """FreezeOut anneals a layer's rate to zero by its freeze time instead of stopping it mid-stride."""
    on, off = _first_layer_steps(blobs, True), _first_layer_steps(blobs, False)
    # 16 steps, block 0 trains for steps 0-7 (progress < 0.5), then takes no more steps
    assert all(s == 0.0 for s in on[8:]) and all(s == 0.0 for s in off[8:])
    # multiplier at progress 7/16: (1 + cos(7 pi / 8)) / 2 = 0.038; without annealing the last
    # step is the largest (momentum builds up)
    assert on[7] < 0.15 * max(on[:8]) and off[7] > 0.5 * max(off[:8])
    assert on[7] < 0.1 * off[7]

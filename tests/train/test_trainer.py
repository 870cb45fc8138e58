from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from leandl.errors import TrainingError
from leandl.train import State, Technique, TrainConfig, Trainer, soft_cross_entropy
from leandl.train.schedule import Schedule


def test_soft_cross_entropy_equals_cross_entropy_for_one_hot():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
    y = torch.tensor([0, 2])
    q = F.one_hot(y, 3).float()
    torch.testing.assert_close(soft_cross_entropy(logits, q), F.cross_entropy(logits, y, reduction="none"))


def test_trainer_learns_blobs(mlp, blobs):
    train, val = blobs
    cfg = TrainConfig(epochs=15, batch_size=16, lr=0.1, progress=False, checkpoint_every=0)
    res = Trainer(mlp, cfg, train_data=train, val_data=val, num_classes=3).fit()
    assert res.metrics["val_accuracy"] >= 0.95
    assert res.metrics["epochs_run"] == 15
    assert len(res.history) == 15 and res.history[-1]["train_accuracy"] > 0.9


def test_list_outputs_loss_is_weighted_sum(blobs):
    train, _ = blobs

    class TwoHeads(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)

        def forward(self, x):
            return [self.a(x), self.b(x)]

    model = TwoHeads()
    seen = {}

    class Check(Technique):
        name = "check"

        def before_loss(self, state):
            state.output_weights = [0.25, 1.0]

        def after_loss(self, state):
            outs = state.outputs
            want = 0.25 * F.cross_entropy(outs[0], state.targets) + F.cross_entropy(outs[1], state.targets)
            seen["diff"] = float((state.loss - want).abs().detach())

    cfg = TrainConfig(epochs=1, batch_size=64, progress=False, checkpoint_every=0)
    Trainer(model, cfg, train_data=train, val_data=None, num_classes=3, techniques=[Check()]).fit()
    assert seen["diff"] < 1e-6


def test_nan_loss_stops_with_step_and_skip_option(mlp, blobs):
    train, val = blobs

    class Poison(Technique):
        name = "poison"

        def after_loss(self, state):
            if state.step == 2:
                state.loss = state.loss * float("nan")

    cfg = TrainConfig(epochs=2, batch_size=16, progress=False, checkpoint_every=0)
    with pytest.raises(TrainingError, match="step 2"):
        Trainer(mlp, cfg, train_data=train, val_data=val, num_classes=3, techniques=[Poison()]).fit()
    cfg = TrainConfig(epochs=2, batch_size=16, progress=False, checkpoint_every=0, on_nan="skip_batch")
    res = Trainer(mlp, cfg, train_data=train, val_data=val, num_classes=3, techniques=[Poison()]).fit()
    assert res.metrics["nan_batches_skipped"] == 1


@pytest.mark.parametrize("kind", ["constant", "step", "cosine", "onecycle"])
def test_schedules_hand_values(kind):
    s = Schedule(kind=kind, total_steps=100, warmup_steps=10, milestones=(0.5,), gamma=0.1)
    if kind == "onecycle":
        assert s.factor(0) == pytest.approx(1 / 25)
        assert s.factor(30) == pytest.approx(1.0)
        assert s.factor(100) == pytest.approx(1e-4)
        return
    assert s.factor(0) == pytest.approx(0.1)
    assert s.factor(5) == pytest.approx(0.1 + 0.9 * 0.5)
    assert s.factor(10) == pytest.approx(1.0)
    if kind == "step":
        assert s.factor(54) == pytest.approx(1.0) and s.factor(55) == pytest.approx(0.1)
    if kind == "cosine":
        assert s.factor(55) == pytest.approx(0.5) and s.factor(100) == pytest.approx(0.0, abs=1e-12)


def test_grad_clip_bounds_update(mlp, blobs):
    train, _ = blobs
    norms = []

    class Spy(Technique):
        name = "spy"

        def before_step(self, state: State):
            norms.append(float(torch.norm(torch.stack([p.grad.norm() for p in state.model.parameters()]))))

    cfg = TrainConfig(epochs=1, batch_size=16, lr=10.0, grad_clip=0.5, progress=False, checkpoint_every=0)
    Trainer(mlp, cfg, train_data=train, val_data=None, num_classes=3, techniques=[Spy()]).fit()
    assert max(norms) <= 0.5 + 1e-5


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="lr"):
        TrainConfig(lr=-1)
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="lion")

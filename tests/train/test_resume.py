from __future__ import annotations

import torch

from leandl.train import Technique, TrainConfig, Trainer
from leandl.train.signals import TrainingInterrupted


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_resume_mid_epoch_matches_uninterrupted(tmp_path, blobs):
    train, val = blobs

    def model():
        torch.manual_seed(1)
        return torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Dropout(0.2),
                                   torch.nn.Linear(16, 3))

    cfg = TrainConfig(epochs=3, batch_size=16, progress=False, optimizer="sgd", lr=0.1)
    ref = Trainer(model(), cfg, train_data=train, val_data=val, num_classes=3, run_dir=tmp_path / "a").fit()

    class Stopper(Technique):
        """Simulates SIGTERM during epoch 1, batch 2."""

        name = "stopper"

        def __init__(self, trainer_ref):
            self.trainer_ref = trainer_ref

        def batch_end(self, state):
            if self.trainer_ref and state.epoch == 1 and state.batch_index == 1:
                self.trainer_ref[0]._signals.requested = True
                self.trainer_ref[0]._signals.name = "SIGTERM"

    ref_box: list = []
    t = Trainer(model(), cfg, train_data=train, val_data=val, num_classes=3, run_dir=tmp_path / "b",
                techniques=[Stopper(ref_box)])
    ref_box.append(t)
    try:
        t.fit()
        raise AssertionError("expected an interruption")
    except TrainingInterrupted as exc:
        assert "--resume" in str(exc) and exc.exit_code == 143
    resumed = Trainer(model(), cfg, train_data=train, val_data=val, num_classes=3, run_dir=tmp_path / "b",
                      resume=True, techniques=[Stopper([])]).fit()
    for k, v in _weights(ref.model).items():
        torch.testing.assert_close(resumed.model.state_dict()[k], v, rtol=0, atol=1e-6)

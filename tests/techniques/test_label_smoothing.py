from __future__ import annotations

import pytest
import torch

from leandl.techniques.label_smoothing import LabelSmoothing, smooth_labels
from leandl.train import State, TrainConfig, Trainer


@pytest.mark.parametrize("s", [0.0, 0.1, 0.5, 1.0])
def test_smooth_labels_hand_values(s):
    q = torch.tensor([[0.0, 1.0, 0.0, 0.0]])
    want = torch.tensor([[s / 4, 1 - s + s / 4, s / 4, s / 4]])
    torch.testing.assert_close(smooth_labels(q, s), want)
    torch.testing.assert_close(smooth_labels(q, s).sum(), torch.tensor(1.0))


def test_out_of_range_rejected():
    with pytest.raises(ValueError):
        LabelSmoothing(1.5)


def test_technique_revises_targets_only(mlp, blobs):
    st = State(model=mlp, num_classes=3)
    st.targets = torch.tensor([2])
    st.targets_soft = torch.tensor([[0.0, 0.0, 1.0]])
    LabelSmoothing(0.3).before_loss(st)
    torch.testing.assert_close(st.targets_soft, torch.tensor([[0.1, 0.1, 0.8]]))
    assert st.targets.tolist() == [2]


def test_two_batch_training(mlp, blobs):
    train, val = blobs
    cfg = TrainConfig(epochs=1, batch_size=32, progress=False, checkpoint_every=0)
    res = Trainer(mlp, cfg, train_data=train, val_data=val, num_classes=3, techniques=[LabelSmoothing(0.1)]).fit()
    assert res.history[0]["samples_trained"] == 64

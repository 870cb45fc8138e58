from __future__ import annotations

import pytest
import torch

from leandl.techniques.noise_monitor import NoiseMonitor, noise_metrics
from leandl.train import TrainConfig, Trainer


def test_metrics_hand_case():
    clean = torch.tensor([0, 1, 2, 0, 1, 2])
    noisy = torch.tensor([0, 1, 2, 1, 2, 0])  # last three are noisy
    pred = torch.tensor([0, 1, 0, 1, 1, 1])  # sample 3 memorised, sample 4 corrected, 5 neither
    m = noise_metrics(pred, clean, noisy)
    assert m["clean_train_accuracy"] == pytest.approx(3 / 6)
    assert m["noisy_train_accuracy"] == pytest.approx(3 / 6)
    assert m["memorised"] == pytest.approx(1 / 3)
    assert m["corrected"] == pytest.approx(1 / 3)


def test_long_training_memorises_noisy_labels_two_batch_steps(blobs):
    """With 1/4 of the labels flipped, an over-parameterised net fits them (memorised rises)."""
    train, _ = blobs
    clean = train.y.clone()
    noisy = clean.clone()
    noisy[::4] = (noisy[::4] + 1) % 3
    from leandl.data.noise import NoisyLabels

    ds = NoisyLabels(train, noisy)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 128), torch.nn.ReLU(), torch.nn.Linear(128, 3))
    mon = NoiseMonitor(clean_targets=clean, noisy_targets=noisy, dataset=train)
    cfg = TrainConfig(epochs=60, batch_size=16, optimizer="adam", lr=0.02, weight_decay=0.0,
                      schedule="constant", progress=False, checkpoint_every=0)
    res = Trainer(model, cfg, train_data=ds, val_data=None, num_classes=3, techniques=[mon]).fit()
    by_epoch = res.metrics["memorised_by_epoch"]
    assert by_epoch[0] < 0.3 and res.metrics["memorised"] > by_epoch[0] + 0.2
    assert len(by_epoch) == 60 and "corrected" in res.history[-1]


def test_rejects_bad_arguments():
    with pytest.raises(ValueError):
        NoiseMonitor(every=0, clean_targets=torch.zeros(1), noisy_targets=torch.zeros(1), dataset=[1])
    with pytest.raises(ValueError, match="noisy data bundle"):
        NoiseMonitor()

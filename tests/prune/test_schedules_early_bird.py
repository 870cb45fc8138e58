"""Early-bird: slimming masks, Hamming distance, the FIFO rule and stopping dense training."""

from __future__ import annotations

import pytest
import torch

from leandl.prune.schedules.early_bird import EarlyBird, mask_distance, slimming_masks, ticket_emerged
from tests.prune.test_schedules_agp import _fit, _net


def test_slimming_mask_and_distance_by_hand() -> None:
    g = {"a": torch.tensor([0.1, 0.9, 0.5]), "b": torch.tensor([0.2, 0.05, 0.7])}
    # sorted |gamma| = .05 .1 .2 .5 .7 .9 ; ratio 0.5 -> threshold = sorted[3] = 0.5 ; keep > 0.5
    m = slimming_masks(g, 0.5)
    assert m["a"].tolist() == [False, True, False] and m["b"].tolist() == [False, False, True]
    other = {"a": torch.tensor([True, True, False]), "b": torch.tensor([False, False, True])}
    assert mask_distance(m, other) == pytest.approx(1 / 6)
    q = [m, m, m, other]
    assert ticket_emerged(q, 5, 0.1) == (False, float("inf"))
    assert ticket_emerged([other] + q, 5, 0.2) == (True, pytest.approx(1 / 6))
    assert ticket_emerged([m, m, m, m, other], 5, 0.1)[0] is False


def test_ticket_stops_dense_training_and_reports_macs_saved() -> None:
    tech = EarlyBird(ratio=0.5, queue=3, epsilon=0.1)
    model = _net()
    tr = _fit(model, tech, epochs=8)
    s = tr.result.metrics
    assert s["early_bird_found"] and s["early_bird_epoch"] >= 3
    assert s["epochs_run"] == s["early_bird_epoch"] < 8
    assert s["early_bird_train_macs_saved_fraction"] == pytest.approx(1 - s["early_bird_epoch"] / 8)
    # 3 x forward MACs (conv1 8*9*36 + conv2 16*8*9*36 + fc 16*3) x 16 samples per epoch
    fwd = 8 * 9 * 36 + 16 * 8 * 9 * 36 + 48
    assert s["early_bird_train_macs_per_epoch"] == 3 * fwd * 16
    kept = s["early_bird_keep"]
    assert set(kept) <= {"3"} and all(len(v) >= 1 for v in kept.values())


def test_low_precision_search_runs_the_forward_in_bf16() -> None:
    from leandl.train import Technique

    class Dtype(Technique):
        name = "dtype"
        order = 100

        def __init__(self) -> None:
            self.seen: set[torch.dtype] = set()

        def after_forward(self, state) -> None:
            self.seen.add(state.outputs.dtype)

    from leandl.train import TrainConfig, Trainer
    from tests.prune.test_schedules_agp import _Data

    rec = Dtype()
    eb = EarlyBird(ratio=0.5, queue=3, epsilon=0.1, precision="bf16")
    cfg = TrainConfig(epochs=2, batch_size=8, progress=False, checkpoint_every=0, lr=0.01)
    res = Trainer(_net(), cfg, train_data=_Data(), val_data=_Data(8), num_classes=3, techniques=[eb, rec]).fit()
    assert rec.seen == {torch.bfloat16} and res.metrics["early_bird_precision"] == "bf16"
    assert len(res.metrics["early_bird_keep"]) >= 1
    with pytest.raises(ValueError, match="precision"):
        EarlyBird(precision="int8")

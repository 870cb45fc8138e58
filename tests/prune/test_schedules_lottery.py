"""Lottery baselines: Scratch-E/B epochs by hand, rewind point storage, rewinding a pruned model."""

from __future__ import annotations

import pytest
import torch

from leandl.prune.schedules.lottery import REWIND_ATTR, RewindPoint, rewound_model_state, scratch_epochs
from tests.prune.test_schedules_agp import _fit, _net


def test_scratch_epochs_by_hand() -> None:
    assert scratch_epochs(30, 100.0, 50.0, "E") == 30
    assert scratch_epochs(30, 100.0, 80.0, "B") == 38  # round(30 * 1.25 = 37.5) -> 38
    assert scratch_epochs(30, 100.0, 20.0, "B") == 60  # 150 capped at 2 x 30
    with pytest.raises(ValueError):
        scratch_epochs(30, 100.0, 0.0, "B")


def test_rewind_point_stores_weights_after_k_steps() -> None:
    model = _net()
    tech = RewindPoint(step=1)
    _fit(model, tech, epochs=1)  # 2 steps
    stored = getattr(model, REWIND_ATTR)
    assert stored["step"] == 1
    assert not torch.equal(stored["weights"]["3.weight"], model.state_dict()["3.weight"])


def test_rewound_state_is_cut_by_the_pruning_edits() -> None:
    import leandl
    from leandl.prune.groups import remove_units_

    dense = leandl.create_model("digits_cnn", num_classes=10, input_shape=[1, 8, 8])
    theta_k = {k: v.clone() for k, v in dense.state_dict().items()}
    x = torch.zeros(1, 1, 8, 8)
    pruned = remove_units_(dense, x, {"layer1.0": [0, 2, 5]})
    state = rewound_model_state(pruned, theta_k)
    torch.testing.assert_close(state["layer1.0.weight"], theta_k["layer1.0.weight"][[0, 2, 5]], atol=0, rtol=0)

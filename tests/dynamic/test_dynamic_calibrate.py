"""Threshold calibration meets the average-MACs budget; policies, costs and the resource halt."""

from __future__ import annotations

import pytest
import torch

from leandl.dynamic import attach_exits, calibrate_budget, exit_costs, simulate
from leandl.dynamic.calibrate import geometric_fractions, thresholds_for_fractions
from leandl.dynamic.costs import expected_macs
from leandl.dynamic.halt import deepest_affordable_exit, predict_within_budget
from leandl.dynamic.infer import early_exit_predict
from leandl.dynamic.policy import confidence, confidences
from leandl.errors import ConfigError
from leandl.models import create_model


def _fake_outputs(n: int = 800, k: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 10, (n,), generator=g)
    logits = []
    for j in range(k):  # later exits are sharper and more often right
        z = torch.randn(n, 10, generator=g)
        z[torch.arange(n), y] += 1.0 + 1.5 * j
        logits.append(z)
    return logits, y


def test_confidence_values() -> None:
    z = torch.log(torch.tensor([[0.5, 0.25, 0.25]]))
    torch.testing.assert_close(confidence(z, "max_prob"), torch.tensor([0.5]), rtol=0, atol=1e-6)
    h = -(0.5 * torch.log(torch.tensor(0.5)) + 0.5 * torch.log(torch.tensor(0.25)))
    torch.testing.assert_close(confidence(z, "entropy"), -h.reshape(1), rtol=0, atol=1e-6)


def test_thresholds_for_fractions_hit_fractions() -> None:
    logits, y = _fake_outputs()
    conf = confidences(logits)
    fr = geometric_fractions(1.0, 4)
    ts = thresholds_for_fractions(conf, fr)
    res = simulate(conf, torch.ones(4, 800, dtype=torch.bool), ts, [1, 2, 3, 4])
    torch.testing.assert_close(torch.tensor(res["exit_fractions"]), torch.tensor(fr), rtol=0, atol=0.01)


@pytest.mark.parametrize("fraction", [0.3, 0.5, 0.7])
def test_calibration_hits_budget_within_2_percent(fraction: float) -> None:
    logits, y = _fake_outputs()
    costs = [100, 400, 700, 1000]
    pol = calibrate_budget(logits, y, costs, fraction * 1000)
    got = pol.info["val_expected_macs"]
    assert abs(got - fraction * 1000) <= 0.02 * fraction * 1000
    assert got <= fraction * 1000
    # re-simulating the thresholds gives the same cost
    res = simulate(confidences(logits), torch.stack([z.argmax(-1) == y for z in logits]), pol.thresholds, costs)
    assert res["expected_macs"] == pytest.approx(got)


def test_budget_below_first_exit_is_a_config_error() -> None:
    logits, y = _fake_outputs()
    with pytest.raises(ConfigError, match="first"):
        calibrate_budget(logits, y, [100, 400, 700, 1000], 50)


@pytest.mark.parametrize("method", ["geometric", "max_accuracy"])
def test_budget_equal_to_first_exit_cost_sends_everyone_there(method: str) -> None:
    """A budget of exactly the first exit's cost is affordable (it was refused as "below" it)."""
    logits, y = _fake_outputs()
    costs = [100, 400, 700, 1000]
    pol = calibrate_budget(logits, y, costs, 100, method=method)
    assert pol.info["val_expected_macs"] == pytest.approx(100)
    acc0 = float((logits[0].argmax(-1) == y).float().mean())
    assert pol.info["val_accuracy"] == pytest.approx(acc0)
    with pytest.raises(ConfigError, match=r"first exit costs \(100\)"):
        calibrate_budget(logits, y, costs, 99.5, method=method)


def test_more_budget_more_accuracy() -> None:
    logits, y = _fake_outputs()
    costs = [100, 400, 700, 1000]
    accs = [calibrate_budget(logits, y, costs, b).info["val_accuracy"] for b in (150, 500, 950)]
    assert accs[0] < accs[1] < accs[2]


def test_expected_macs_and_deepest_affordable() -> None:
    assert expected_macs([0.25, 0.75], [100, 300]) == 250.0
    assert deepest_affordable_exit([10, 20, 40], 80, 2) == 2
    assert deepest_affordable_exit([10, 20, 40], 79, 2) == 1
    with pytest.raises(ConfigError):
        deepest_affordable_exit([10, 20, 40], 5, 2)


def _model():
    torch.manual_seed(0)
    net = create_model("mnist1d_cnn", input_shape=(1, 40), width=8)
    return attach_exits(net, ["stem", "layer1", "layer2"], pool=2).eval()


def test_staged_inference_matches_full_forward_and_drops_rows() -> None:
    model = _model()
    x = torch.randn(32, 1, 40)
    with torch.no_grad():
        outs = model(x)
    conf = confidences(outs)
    ts = [float(conf[0].median()), float(conf[1].median()), float(conf[2].median())]
    res = early_exit_predict(model, x, ts)
    idx = simulate(conf, torch.ones_like(conf, dtype=torch.bool), ts, [1, 2, 3, 4])
    from leandl.dynamic.policy import assign_exits
    torch.testing.assert_close(res.exit_index, assign_exits(conf, ts), rtol=0, atol=0)
    chosen = torch.stack(outs)[res.exit_index, torch.arange(32)]
    torch.testing.assert_close(res.logits, chosen, rtol=1e-4, atol=1e-5)
    assert idx["exit_fractions"][0] > 0.3
    seen = []
    h = model.backbone.layer2.register_forward_hook(lambda m, i, o: seen.append(o.shape[0]))
    early_exit_predict(model, x, ts)
    h.remove()
    assert seen[0] < 32  # layer2 ran on the not-yet-exited rows only


def test_resource_halt_respects_budget() -> None:
    model = _model()
    costs = exit_costs(model, (1, 40))
    x = torch.randn(16, 1, 40)
    budget = 16 * costs[1] + 1
    res = predict_within_budget(model, x, budget, costs)
    assert res.spent_macs <= budget
    assert int(res.exit_index.max()) == 1
    with torch.no_grad():
        torch.testing.assert_close(res.logits, model(x)[1], rtol=1e-4, atol=1e-5)
    full = predict_within_budget(model, x, 16 * costs[-1], costs)
    assert int(full.exit_index.min()) == 3


def test_max_accuracy_search_within_budget_and_not_worse() -> None:
    logits, y = _fake_outputs()
    # exit 0 is weak and exit 1 strong: free thresholds should skip most of exit 0
    logits[1] = logits[3] + 0.1 * torch.randn_like(logits[3])
    costs = [100, 400, 700, 1000]
    geo = calibrate_budget(logits, y, costs, 500)
    acc = calibrate_budget(logits, y, costs, 500, method="max_accuracy")
    assert acc.info["method"] == "max_accuracy"
    assert acc.info["val_expected_macs"] <= 500
    assert acc.info["val_accuracy"] >= geo.info["val_accuracy"] + 0.02
    res = simulate(confidences(logits), torch.stack([z.argmax(-1) == y for z in logits]),
                   acc.thresholds, costs)
    assert res["accuracy"] == pytest.approx(acc.info["val_accuracy"])


def test_search_thresholds_picks_the_hand_computed_optimum() -> None:
    from leandl.dynamic.calibrate import search_thresholds

    # 2 exits, 4 samples; exit 0 right on samples 0, 1 (confident) and wrong on 2, 3.
    conf = torch.tensor([[0.9, 0.8, 0.7, 0.1], [1.0, 1.0, 1.0, 1.0]])
    correct = torch.tensor([[True, True, False, False], [True, True, True, True]])
    start = {"thresholds": [0.0], **simulate(conf, correct, [0.0], [1, 3])}  # all exit at 0
    best = search_thresholds(conf, correct, [1, 3], 2.0, start)  # budget: half may go on
    assert best["accuracy"] == 1.0 and best["expected_macs"] == 2.0
    assert 0.7 < best["thresholds"][0] <= 0.8


def test_unknown_calibration_method() -> None:
    logits, y = _fake_outputs()
    with pytest.raises(ConfigError, match="calibration"):
        calibrate_budget(logits, y, [100, 400, 700, 1000], 500, method="magic")

"""The exits stage's hard per-batch budgets (DDI's resource-dependent halt) on a tiny model."""

from __future__ import annotations

import pytest
import torch

from leandl.dynamic import attach_exits, backbone_macs, exit_costs
from leandl.errors import ConfigError
from leandl.models import create_model
from leandl.recipes.stages.exits import ExitsOptions, hard_budget_rows


def _model():
    torch.manual_seed(0)
    net = create_model("digits_cnn", num_classes=10, input_shape=(1, 8, 8))
    return attach_exits(net, list(net.exit_points), input_shape=(1, 8, 8)).eval()


def test_hard_budgets_never_overspend_and_full_budget_reaches_the_last_exit() -> None:
    model = _model()
    costs, full = exit_costs(model, (1, 8, 8)), backbone_macs(model, (1, 8, 8))
    x, y = torch.randn(20, 1, 8, 8), torch.randint(0, 10, (20,))
    no_early = [float("inf")] * (len(costs) - 1)
    cheap = costs[0] / full * 1.01  # pays for the first exit only
    last = costs[-1] / full  # the deepest exit: the backbone plus its head (a little over 1)
    rows = hard_budget_rows(model, x, y, costs, full, [cheap, last], no_early, "max_prob", 8)
    assert [r["budget_fraction"] for r in rows] == [cheap, last]
    for r in rows:
        assert r["spent_macs_fraction"] <= r["budget_fraction"] + 1e-9
    assert rows[0]["spent_macs_fraction"] == pytest.approx(costs[0] / full)
    assert rows[1]["spent_macs_fraction"] == pytest.approx(costs[-1] / full)
    # with the deepest exit paid for, every sample gets the last exit's prediction
    with torch.no_grad():
        want = (model(x)[-1].argmax(-1) == y).float().mean().item()
    assert rows[1]["test_accuracy"] == pytest.approx(want)


def test_hard_budget_below_the_first_exit_is_a_config_error() -> None:
    model = _model()
    costs, full = exit_costs(model, (1, 8, 8)), backbone_macs(model, (1, 8, 8))
    with pytest.raises(ConfigError, match="hard_budgets"):
        hard_budget_rows(model, torch.randn(4, 1, 8, 8), torch.zeros(4, dtype=torch.long), costs, full,
                         [costs[0] / full / 2], [float("inf")] * (len(costs) - 1), "max_prob", 4)
    with pytest.raises(ValueError):
        ExitsOptions.model_validate({"hard_budgets": [0.0]})


def test_exits_stage_reports_hard_budget_rows(tmp_path) -> None:
    import leandl
    from tests_helpers import fast_recipe

    recipe = fast_recipe(stages=[
        {"kind": "train", "epochs": 1},
        {"kind": "exits", "epochs": 1, "budgets": [0.8], "select_budget": 0.8, "timing_rounds": 1,
         "hard_budgets": [0.6, 1.01]}])
    summary = leandl.run(recipe, out=str(tmp_path / "run"))
    rows = summary["stages"][-1]["metrics"]["hard_budgets"]
    assert [r["budget_fraction"] for r in rows] == [0.6, 1.01]
    assert all(0 < r["spent_macs_fraction"] <= r["budget_fraction"] for r in rows)
    assert rows[0]["spent_macs_fraction"] < rows[1]["spent_macs_fraction"]

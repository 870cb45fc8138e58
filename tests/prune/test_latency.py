from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import leandl
from leandl.errors import ConfigError
from leandl.measure import compare_latency
from leandl.models import create_model
from leandl.prune.groups import channel_groups
from leandl.prune.latency import _Estimator, _greedy, _interp, _log_loss, _monotone


class Net(nn.Module):
    """a: 3 -> 16, b: 16 -> ``wide``, c: ``wide`` -> 16, fc: 16 -> 10 (groups b and c)."""

    def __init__(self, wide: int = 16) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 16, 3, padding=1)
        self.b = nn.Conv2d(16, wide, 3, padding=1)
        self.c = nn.Conv2d(wide, 16, 3, padding=1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.c(torch.relu(self.b(torch.relu(self.a(x)))))
        return self.fc(x.mean((2, 3)))


class LinearTable:
    """A fake lookup table: layer ms = weight[layer] * cin * cout, nothing else costs time."""

    weight = {"a": 0.0, "b": 0.01, "c": 0.001, "fc": 0.0}

    def __init__(self, model: nn.Module) -> None:
        self.modules = {n: model.get_submodule(n) for n in self.weight}
        self.inputs = {"a": (3, 4, 4), "b": (16, 4, 4), "c": (16, 4, 4), "fc": (16,)}
        self.full_ms = 16 * 16 * (0.01 + 0.001)

    def layer_ms(self, name: str, cin: float, cout: float) -> float:
        return self.weight[name] * cin * cout


def _setup(low_b: float, low_c: float):
    """Scores: 8 units at 10.0 and 8 units at ``low_*`` in each group."""
    model = Net()
    groups = channel_groups(model, torch.randn(1, 3, 4, 4))
    assert [g.name for g in groups] == ["b", "c"]
    est = _Estimator(LinearTable(model), groups)
    scores = {"b": torch.tensor([10.0] * 8 + [low_b] * 8), "c": torch.tensor([10.0] * 8 + [low_c] * 8)}
    return est, scores


def test_log_importance_cost_by_hand() -> None:
    scores = torch.tensor([4.0, 1.0, 3.0])
    order = torch.argsort(scores).tolist()  # [1, 2, 0]
    assert _log_loss(scores, order, removed=0, step=1) == pytest.approx(math.log(8 / 7))
    assert _log_loss(scores, order, removed=1, step=1) == pytest.approx(math.log(7 / 4))


def test_interpolation_between_grid_points() -> None:
    assert _interp([8, 16, 32], 12) == (0, 1, 0.5)
    assert _interp([8, 16, 32], 32) == (1, 2, 1.0)
    assert _interp([8], 5) == (0, 0, 0.0)


def test_estimator_sums_layers_by_hand() -> None:
    est, _ = _setup(10.0, 10.0)
    # b: 16 -> 8 outputs (0.01 * 16 * 8), c then reads 8 channels (0.001 * 8 * 16)
    assert est.total([8, 16]) == pytest.approx(1.28 + 0.128)
    assert est.total([16, 16]) == pytest.approx(2.816)


def test_greedy_removes_the_cheapest_importance_per_ms_first() -> None:
    # each group reaches 2 layers; equal scores: a chunk costs 2 * log(160 / 80) in either
    # group, b's saves 1.408 ms and c's 0.128 ms -> b goes first and meets a 1.5 ms budget
    est, scores = _setup(10.0, 10.0)
    assert _greedy(est, scores, budget=1.5, max_ratio=0.9, chunk=8) == [8, 16]
    # b cannot lose another chunk (at least 2 of 16 stay), so c goes next; 0.5 ms is out of reach
    assert _greedy(est, scores, budget=0.5, max_ratio=0.9, chunk=8) == [8, 8]
    # c's low half is nearly worthless: 2 * log(80.8 / 80) / 0.128 < 2 * log(2) / 1.408
    est, scores = _setup(10.0, 0.1)
    assert _greedy(est, scores, budget=2.7, max_ratio=0.9, chunk=8) == [16, 8]


def test_table_made_non_decreasing_by_hand() -> None:
    # rows: input widths, columns: output widths; 0.8 and 0.9 are noise below narrower neighbours
    assert _monotone([[1.0, 0.8, 3.0], [0.9, 2.0, 2.5]]) == [[1.0, 1.0, 3.0], [1.0, 2.0, 3.0]]


class StepTable:
    """b's latency steps with its output width in tiles of 16 (0.01 ms per cin x 16 outputs)."""

    def __init__(self, model: nn.Module) -> None:
        self.modules = {n: model.get_submodule(n) for n in ("a", "b", "c", "fc")}
        self.inputs = {"a": (3, 4, 4), "b": (16, 4, 4), "c": (32, 4, 4), "fc": (16,)}
        self.full_ms = self.layer_ms("b", 16, 32)

    def layer_ms(self, name: str, cin: float, cout: float) -> float:
        return 0.01 * cin * 16 * math.ceil(cout / 16) if name == "b" else 0.0


def test_greedy_looks_past_a_latency_plateau() -> None:
    model = Net(wide=32)
    groups = channel_groups(model, torch.randn(1, 3, 4, 4))
    assert [(g.name, g.size) for g in groups] == [("b", 32), ("c", 16)]
    est = _Estimator(StepTable(model), groups)
    scores = {"b": torch.full((32,), 10.0), "c": torch.full((16,), 10.0)}
    assert est.total([32, 16]) == pytest.approx(5.12) and est.total([24, 16]) == pytest.approx(5.12)
    # 32 -> 24 saves nothing (same 16-wide tile count); 32 -> 16 saves 2.56 ms. One chunk at a
    # time the greedy sees no saving anywhere and stops with b whole; two chunks ahead it lands.
    assert _greedy(est, scores, budget=3.0, max_ratio=0.9, chunk=8, lookahead=1) == [32, 16]
    assert _greedy(est, scores, budget=3.0, max_ratio=0.9, chunk=8) == [16, 16]


def test_latency_budget_lands_near_the_budget() -> None:
    torch.manual_seed(0)
    model = create_model("resnet20", input_shape=(3, 16, 16), width=16)
    x = torch.randn(1, 3, 16, 16)
    # the fastest of 8 short rounds: spikes of the shared machine only ever slow a round down
    probe = min(compare_latency({"m": model}, x.expand(32, -1, -1, -1).contiguous(), rounds=8,
                                warmup=1, repeats=3).round_ms["m"])
    # chunks of 4 channels reach ~0.55 of the dense latency here (chunks of 8 stop near 0.7);
    # 0.65 leaves room for the machine's drift between this probe and the call on both sides
    budget = 0.65 * probe
    rep = leandl.prune_(model, x, criterion="l1",
                        target={"latency_ms": budget, "batch_size": 32}, round_to=4)
    lat = rep.latency
    assert lat["budget_ms"] == budget and lat["batch_size"] == 32
    assert lat["threads"] == torch.get_num_threads()
    # measured_ms is the interleaved ratio times the unpruned model's median ms over the checks
    assert lat["measured_ms"] == pytest.approx(lat["measured_fraction"] * lat["dense_ms"])
    wanted = budget / lat["dense_ms"]  # the budget at the machine's speed during the call
    if wanted >= 0.6:
        # within 25 % of the budget: the implementation aims at 4 %, but an absolute budget also
        # carries the machine's drift between the probe above and the call (the relative target
        # below is the one that lands tightly)
        assert abs(lat["measured_ms"] - budget) <= 0.25 * budget, lat
    else:  # the machine slowed down so far that the budget is below what pruning can reach
        assert lat["measured_fraction"] <= 0.75, lat
    assert rep.achieved["macs"] < 0.95
    model(torch.randn(2, 3, 16, 16))


def test_relative_latency_budget_is_judged_on_the_measured_ratio() -> None:
    torch.manual_seed(0)
    model = create_model("resnet20", input_shape=(3, 16, 16), width=16)
    x = torch.randn(1, 3, 16, 16)
    rep = leandl.prune_(model, x, criterion="l1", round_to=4,
                        target={"latency": 0.8, "batch_size": 32, "threads": 1})
    lat = rep.latency
    assert lat["budget_fraction"] == 0.8 and lat["threads"] == 1
    assert abs(lat["measured_fraction"] - 0.8) <= 0.1 * 0.8, lat
    assert lat["measured_ms"] < lat["dense_ms"]
    with pytest.raises(ConfigError, match="latency"):
        leandl.prune_(model, x, target={"latency": 1.2})

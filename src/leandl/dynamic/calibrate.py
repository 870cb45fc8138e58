"""Threshold calibration for budgeted batch classification, and anytime accuracy.

Budgeted batch (MSDNet / IMTA ``adaptive_inference.py``): on held-out data with stored exit
outputs and cumulative exit costs ``C_k``,

1. target exit fractions ``q_k proportional to p^k`` (normalised; p < 1 favours early exits);
2. for k = 1..K-1 in order, among samples not yet exited sort by confidence at exit k and set
   ``T_k`` to the ``floor(n q_k)``-th largest; those with confidence >= T_k exit; T_K = -inf;
3. expected cost ``sum_k f_k C_k``.

:func:`calibrate_budget` bisects ``log p`` for the largest p whose validation cost is within the
budget, so the average MACs meet the budget on the calibration split. Cost is a batch average:
easy samples subsidise hard ones; there is no per-sample bound (see :mod:`leandl.dynamic.halt`).

``method="max_accuracy"`` then searches the thresholds directly for the highest validation
accuracy whose cost stays within the budget: it starts from the better of the geometric policy
and a single threshold shared by every exit (bisected on its cost), then runs coordinate ascent,
each sweep trying for each ``T_k`` the ``candidates`` quantiles of the confidences at exit k (alone,
and with another ``T_j`` re-fitted by binary search to spend the budget left) and keeping the
feasible one with the highest accuracy (ties: the higher cost, closer to the budget).
The geometric fractions tie the exits together with a single ``p``; when an early exit is weak
but a middle one strong, free thresholds can send few samples to the weak one and many to the
strong one. Its accuracy on the calibration split is never below the geometric policy's (it
starts there), at the price of more freedom to overfit a small split.

Anytime: the budget is unknown per sample; report each exit's accuracy at its cumulative cost.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from leandl.dynamic.policy import ExitPolicy, confidences, simulate
from leandl.errors import ConfigError

__all__ = ["CALIBRATION_METHODS", "collect_exit_outputs", "geometric_fractions",
           "thresholds_for_fractions", "search_thresholds", "calibrate_budget",
           "accuracy_cost_curve", "anytime_accuracy"]

CALIBRATION_METHODS = ("geometric", "max_accuracy")


@torch.no_grad()
def collect_exit_outputs(model: nn.Module, loader: Any,
                         device: torch.device | str = "cpu") -> tuple[list[Tensor], Tensor]:
    """Logits of every exit ``[(N, C)] * K`` and the targets ``(N,)`` over ``loader``."""
    was = model.training
    model.eval()
    chunks: list[list[Tensor]] = []
    ys = []
    try:
        for batch in loader:
            outs = model(batch[0].to(device))
            if not chunks:
                chunks = [[] for _ in outs]
            for i, o in enumerate(outs):
                chunks[i].append(o.float().cpu())
            ys.append(batch[1].cpu())
    finally:
        model.train(was)
    return [torch.cat(c) for c in chunks], torch.cat(ys)


def geometric_fractions(p: float, num_exits: int) -> list[float]:
    """``q_k = p^k / sum_j p^j`` for k = 1..K (computed in log space)."""
    logs = [k * math.log(p) for k in range(1, num_exits + 1)]
    m = max(logs)
    w = [math.exp(v - m) for v in logs]
    s = sum(w)
    return [v / s for v in w]


def thresholds_for_fractions(conf: Tensor, fractions: Sequence[float]) -> list[float]:
    """MSDNet's greedy thresholds so that about ``fractions[k]`` of the samples leave at exit k."""
    k_total, n = conf.shape
    filtered = torch.zeros(n, dtype=torch.bool)
    thresholds: list[float] = []
    for k in range(k_total - 1):
        out_n = math.floor(n * fractions[k])
        t = math.inf
        if out_n > 0:
            order = torch.argsort(conf[k], descending=True)
            remaining = order[~filtered[order]]
            if remaining.numel() >= out_n:
                t = float(conf[k, remaining[out_n - 1]])
        thresholds.append(t)
        filtered |= conf[k] >= t
    return thresholds


def _policy_at(log_p: float, conf: Tensor, correct: Tensor, costs: Sequence[int]) -> dict[str, Any]:
    ts = thresholds_for_fractions(conf, geometric_fractions(math.exp(log_p), conf.shape[0]))
    return {"thresholds": ts, "p": math.exp(log_p), **simulate(conf, correct, ts, costs)}


def _geometric_policy(conf: Tensor, correct: Tensor, costs: Sequence[int], budget_macs: float,
                      iterations: int) -> dict[str, Any]:
    """Bisect ``log p`` in [-12, 12] for the costliest geometric policy within the budget."""
    if budget_macs < costs[0]:
        raise ConfigError(f"a budget of {budget_macs:.0f} MACs per sample is below what the first "
                          f"exit costs ({costs[0]:.0f})", where="budget",
                          fix="raise the budget or attach an earlier exit")
    lo, hi = -12.0, 12.0
    best = _policy_at(lo, conf, correct, costs)
    if best["expected_macs"] > budget_macs:  # only "everyone leaves at the first exit" fits
        ts = [float(torch.finfo(conf.dtype).min)] * (conf.shape[0] - 1)  # finite: JSON-safe
        return {"thresholds": ts, "p": 0.0, **simulate(conf, correct, ts, costs)}
    top = _policy_at(hi, conf, correct, costs)
    if top["expected_macs"] <= budget_macs:
        return top
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        cand = _policy_at(mid, conf, correct, costs)
        if cand["expected_macs"] <= budget_macs:
            lo, best = mid, cand
        else:
            hi = mid
    return best


def _shared_policy(conf: Tensor, correct: Tensor, costs: Sequence[int], budget_macs: float,
                   iterations: int) -> dict[str, Any] | None:
    """One threshold ``T`` for every exit, bisected for the costliest policy within the budget."""
    lo, hi = float(conf[:-1].min()), float(conf[:-1].max()) + 1.0  # hi: nobody exits early
    best = None
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        res = simulate(conf, correct, [mid] * (conf.shape[0] - 1), costs)
        if res["expected_macs"] <= budget_macs:
            hi, best = mid, {"thresholds": [mid] * (conf.shape[0] - 1), **res}
        else:
            lo = mid
    return best


def _better(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Higher accuracy wins; equal accuracy: the higher cost (closer to the budget)."""
    return (a["accuracy"], a["expected_macs"]) > (b["accuracy"], b["expected_macs"])


def _refill(conf: Tensor, correct: Tensor, costs: Sequence[int], budget_macs: float,
            ts: list[float], j: int, grid: list[float]) -> dict[str, Any] | None:
    """Set ``T_j`` to the largest value of the ascending ``grid`` that keeps the cost in budget.

    Lowering a threshold only moves samples to earlier exits, so the cost is non-increasing
    as ``T_j`` falls and a binary search finds the boundary.
    """
    lo, hi, found = 0, len(grid) - 1, None
    while lo <= hi:
        mid = (lo + hi) // 2
        cand = list(ts)
        cand[j] = grid[mid]
        res = simulate(conf, correct, cand, costs)
        if res["expected_macs"] <= budget_macs:
            found, lo = {"thresholds": cand, **res}, mid + 1
        else:
            hi = mid - 1
    return found


def search_thresholds(conf: Tensor, correct: Tensor, costs: Sequence[int], budget_macs: float,
                      start: dict[str, Any], candidates: int = 48, sweeps: int = 3) -> dict[str, Any]:
    """Coordinate ascent on the thresholds for the best accuracy with expected MACs <= budget.

    Each move sets one ``T_k`` to a candidate value; at a saturated budget that alone cannot
    trade cost between exits, so each move is also tried with another ``T_j`` re-fitted to
    spend what is left of the budget (:func:`_refill`).

    Args:
        conf: ``(K, N)`` confidences; correct: ``(K, N)`` bool.
        costs: cumulative MACs per exit; budget_macs: the average allowed.
        start: a feasible policy (``thresholds``, ``accuracy``, ``expected_macs``).
        candidates: quantiles of exit k's confidences tried for ``T_k`` (plus "nobody exits").
        sweeps: passes over the K - 1 thresholds (stops early when a pass changes nothing).

    Returns:
        The best policy found: ``thresholds`` plus :func:`simulate`'s fields.
    """
    qs = torch.linspace(0.0, 1.0, candidates, dtype=torch.float64)
    grids = [sorted(set(torch.quantile(conf[k].double(), qs).tolist())) + [math.inf]
             for k in range(conf.shape[0] - 1)]
    best = dict(start)
    for _ in range(sweeps):
        changed = False
        for k, grid in enumerate(grids):
            for t in grid:
                ts = list(best["thresholds"])
                ts[k] = t
                cands = [{"thresholds": ts, **simulate(conf, correct, ts, costs)}]
                cands += [_refill(conf, correct, costs, budget_macs, ts, j, grids[j])
                          for j in range(len(grids)) if j != k]
                for cand in cands:
                    if cand is not None and cand["expected_macs"] <= budget_macs and _better(cand, best):
                        best, changed = cand, True
        if not changed:
            break
    return best


def calibrate_budget(logits: Sequence[Tensor], targets: Tensor, costs: Sequence[int],
                     budget_macs: float, criterion: str = "max_prob",
                     iterations: int = 60, method: str = "geometric") -> ExitPolicy:
    """Thresholds whose average MACs on (logits, targets) stay within ``budget_macs``.

    Args:
        logits: K tensors ``(N, C)`` of the calibration (validation) split.
        targets: ``(N,)``.
        costs: cumulative per-sample MACs per exit (:func:`leandl.dynamic.costs.exit_costs`).
        budget_macs: average MACs per sample allowed.
        criterion: ``"max_prob"`` or ``"entropy"``.
        iterations: bisection steps (on ``log p`` in [-12, 12], or on the shared threshold).
        method: ``"geometric"`` (MSDNet: the costliest geometric policy within the budget) or
            ``"max_accuracy"`` (the most accurate thresholds within the budget, see the module).

    Returns:
        :class:`ExitPolicy`; ``info`` holds the method, p (geometric start), validation
        accuracy, expected MACs and exit fractions.

    Raises:
        ConfigError: the budget is below the cost of the first exit, or an unknown method.
    """
    if method not in CALIBRATION_METHODS:
        raise ConfigError(f"unknown calibration method {method!r}", where="calibration",
                          fix=f"use one of {', '.join(CALIBRATION_METHODS)}")
    conf = confidences(logits, criterion)
    correct = torch.stack([z.argmax(-1) == targets for z in logits])
    best = _geometric_policy(conf, correct, costs, budget_macs, iterations)
    p = best["p"]
    if method == "max_accuracy":
        shared = _shared_policy(conf, correct, costs, budget_macs, iterations)
        if shared is not None and _better(shared, best):
            best = shared
        best = search_thresholds(conf, correct, costs, budget_macs, best)
    info = {"p": p, **{k: best[k] for k in ("accuracy", "expected_macs", "exit_fractions")}}
    return ExitPolicy(thresholds=[float(t) for t in best["thresholds"]], criterion=criterion,
                      info={"budget_macs": float(budget_macs), "method": method,
                            **{f"val_{k}": v for k, v in info.items()}})


def accuracy_cost_curve(logits: Sequence[Tensor], targets: Tensor, costs: Sequence[int],
                        criterion: str = "max_prob", steps: int = 40) -> list[dict[str, Any]]:
    """Accuracy vs expected MACs over MSDNet's grid ``p = 1/20, 2/20, ..., steps/20``."""
    conf = confidences(logits, criterion)
    correct = torch.stack([z.argmax(-1) == targets for z in logits])
    rows = []
    for i in range(1, steps + 1):
        r = _policy_at(math.log(i / 20), conf, correct, costs)
        rows.append({"p": r["p"], "accuracy": r["accuracy"], "expected_macs": r["expected_macs"]})
    return rows


def anytime_accuracy(logits: Sequence[Tensor], targets: Tensor,
                     costs: Sequence[int]) -> list[dict[str, Any]]:
    """Each exit's accuracy at its cumulative MACs (anytime prediction)."""
    return [{"exit": k, "macs": int(c), "accuracy": float((z.argmax(-1) == targets).float().mean())}
            for k, (z, c) in enumerate(zip(logits, costs, strict=True))]

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

__all__ = ["collect_exit_outputs", "geometric_fractions", "thresholds_for_fractions",
           "calibrate_budget", "accuracy_cost_curve", "anytime_accuracy"]


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


def calibrate_budget(logits: Sequence[Tensor], targets: Tensor, costs: Sequence[int],
                     budget_macs: float, criterion: str = "max_prob",
                     iterations: int = 60) -> ExitPolicy:
    """Thresholds whose average MACs on (logits, targets) come closest to ``budget_macs`` from below.

    Args:
        logits: K tensors ``(N, C)`` of the calibration (validation) split.
        targets: ``(N,)``.
        costs: cumulative per-sample MACs per exit (:func:`leandl.dynamic.costs.exit_costs`).
        budget_macs: average MACs per sample allowed.
        criterion: ``"max_prob"`` or ``"entropy"``.
        iterations: bisection steps on ``log p`` in [-12, 12].

    Returns:
        :class:`ExitPolicy`; ``info`` holds p, validation accuracy, expected MACs, fractions.

    Raises:
        ConfigError: the budget is below the cost of the first exit.
    """
    conf = confidences(logits, criterion)
    correct = torch.stack([z.argmax(-1) == targets for z in logits])
    lo, hi = -12.0, 12.0
    best = _policy_at(lo, conf, correct, costs)
    if best["expected_macs"] > budget_macs:
        raise ConfigError(f"a budget of {budget_macs:.0f} MACs per sample is below what the first "
                          f"exit costs ({best['expected_macs']:.0f})", where="budget",
                          fix="raise the budget or attach an earlier exit")
    top = _policy_at(hi, conf, correct, costs)
    if top["expected_macs"] <= budget_macs:
        best = top
    else:
        for _ in range(iterations):
            mid = 0.5 * (lo + hi)
            cand = _policy_at(mid, conf, correct, costs)
            if cand["expected_macs"] <= budget_macs:
                lo, best = mid, cand
            else:
                hi = mid
    info = {k: best[k] for k in ("p", "accuracy", "expected_macs", "exit_fractions")}
    return ExitPolicy(thresholds=best["thresholds"], criterion=criterion,
                      info={"budget_macs": float(budget_macs), **{f"val_{k}": v for k, v in info.items()}})


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

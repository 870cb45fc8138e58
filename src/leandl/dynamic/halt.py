"""Resource-dependent halting (the resource half of Dual Dynamic Inference, arXiv 1907.04523).

Given a hard MACs budget for a batch, inference runs segment by segment and, before each one,
checks that the samples still running can pay for it:
``spent + n_active * (C_k - C_{k-1}) <= budget``. When they cannot, it halts and returns every
still-running sample's latest exit. Without a confidence policy this is "the deepest exit that
fits" (:func:`deepest_affordable_exit`); with thresholds, confident samples leave early and
their savings let the rest go deeper. Input-dependent layer/channel-skipping gates (DDI's
MGL2S half) are in :mod:`leandl.dynamic.ddi_gates`. In a recipe: an ``exits`` stage's
``hard_budgets`` (fractions of the backbone's MACs per sample) runs this halt on the test set
with the selected budget's thresholds and reports accuracy and MACs spent per budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from leandl.dynamic.multi_exit import MultiExit
from leandl.dynamic.policy import confidence
from leandl.errors import ConfigError

__all__ = ["deepest_affordable_exit", "BudgetedResult", "predict_within_budget"]


def deepest_affordable_exit(costs: Sequence[int], batch_budget: float, batch_size: int) -> int:
    """The largest k with ``batch_size * C_k <= batch_budget``.

    Raises:
        ConfigError: not even the first exit fits.

    Example:
        >>> deepest_affordable_exit([10, 20, 40], batch_budget=70, batch_size=2)
        1
    """
    fits = [k for k, c in enumerate(costs) if batch_size * c <= batch_budget]
    if not fits:
        raise ConfigError(f"a batch budget of {batch_budget:.0f} MACs cannot pay for the first exit "
                          f"({batch_size} x {costs[0]} MACs)", where="batch_budget",
                          fix="raise the budget or use smaller batches")
    return max(fits)


@dataclass
class BudgetedResult:
    """Logits ``(N, C)``, exit index ``(N,)`` and the MACs spent on the batch (by the cost table)."""

    logits: Tensor
    exit_index: Tensor
    spent_macs: float


@torch.no_grad()
def predict_within_budget(model: MultiExit, x: Tensor, batch_budget: float, costs: Sequence[int],
                          thresholds: Sequence[float] | None = None,
                          criterion: str = "max_prob") -> BudgetedResult:
    """Early-exit inference of the batch ``x`` that never spends more than ``batch_budget`` MACs.

    Args:
        model: the multi-exit model.
        x: ``(N, ...)`` inputs.
        batch_budget: MACs the whole batch may use.
        costs: cumulative per-sample MACs per exit (:func:`leandl.dynamic.costs.exit_costs`).
        thresholds: optional confidence thresholds for exits 1..K-1 (None: no early exits).
        criterion: confidence criterion of the thresholds.
    """
    k_total, n = model.num_exits, x.shape[0]
    deepest_affordable_exit(costs, batch_budget, n)
    seg = [costs[0]] + [costs[k] - costs[k - 1] for k in range(1, k_total)]
    active = torch.arange(n, device=x.device)
    exit_index = torch.zeros(n, dtype=torch.long, device=x.device)
    out: Tensor | None = None
    h, prev, spent = x, None, 0.0
    for k in range(k_total):
        if k > 0 and spent + active.numel() * seg[k] > batch_budget:
            out[active] = prev  # halt: the still-running samples answer with exit k-1
            break
        h = model.run_segment(k, h)
        z = model.exit_logits(k, h, prev)
        spent += active.numel() * seg[k]
        if out is None:
            out = z.new_empty(n, z.shape[-1])
        out[active], exit_index[active] = z, k
        if thresholds is not None and k < k_total - 1:
            keep = confidence(z, criterion) < thresholds[k]
            if not bool(keep.any()):
                break
            active, h, z = active[keep], h[keep], z[keep]
        prev = z
    return BudgetedResult(logits=out, exit_index=exit_index, spent_macs=spent)

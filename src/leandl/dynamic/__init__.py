"""Dynamic inference with early exits: attach, train, calibrate to a budget, and really stop.

- :func:`attach_exits` -> :class:`MultiExit` (training forward: list of exit logits)
- techniques: ``exit_loss_weights``, ``gradient_equilibrium``, ``inline_collaboration``,
  ``one_for_all_kd`` (IMTA, arXiv 1908.09294)
- :func:`exit_costs`, :func:`expected_macs` -- per-exit cumulative MACs, expected MACs/sample
- :func:`confidence`, :func:`simulate` -- max-probability / entropy exit policies
- :func:`calibrate_budget`, :func:`accuracy_cost_curve`, :func:`anytime_accuracy` -- budgeted
  batch classification and anytime prediction
- :func:`early_exit_predict`, :func:`measure_exit_speedup` -- staged inference that drops
  exited rows, and its measured wall-clock
- :func:`predict_within_budget` -- resource-dependent halt under a hard batch budget (DDI)
"""

from __future__ import annotations

from leandl.dynamic.calibrate import (
    accuracy_cost_curve,
    anytime_accuracy,
    calibrate_budget,
    collect_exit_outputs,
)
from leandl.dynamic.costs import backbone_macs, exit_costs, expected_macs
from leandl.dynamic.halt import deepest_affordable_exit, predict_within_budget
from leandl.dynamic.infer import early_exit_predict, measure_exit_speedup, predict_in_batches
from leandl.dynamic.multi_exit import MultiExit, add_inline_links_, attach_exits, freeze_backbone_
from leandl.dynamic.policy import ExitPolicy, confidence, simulate

__all__ = [
    "MultiExit", "attach_exits", "freeze_backbone_", "add_inline_links_",
    "exit_costs", "backbone_macs", "expected_macs",
    "confidence", "simulate", "ExitPolicy",
    "calibrate_budget", "accuracy_cost_curve", "anytime_accuracy", "collect_exit_outputs",
    "early_exit_predict", "predict_in_batches", "measure_exit_speedup",
    "deepest_affordable_exit", "predict_within_budget",
]

"""The ``exits`` stage: attach early exits, train them, calibrate thresholds for MACs budgets.

1. ``attach_exits`` after ``after`` (default: all of the model's ``exit_points``);
   ``freeze_backbone`` trains only heads (and links) on a trained backbone (IMTA stage 2, SDN
   "IC-only"); otherwise exits and backbone train jointly with the stage's techniques
   (``gradient_equilibrium``, ``one_for_all_kd``, ``inline_collaboration``, ``exit_loss_weights``).
2. On the validation split: per-exit cumulative MACs, anytime accuracy, and thresholds that
   meet each budget (fractions of the plain backbone's MACs) as an average per sample
   (``calibration``: ``max_accuracy``, the most accurate thresholds within the budget, or
   ``geometric``, MSDNet's geometric exit fractions).
3. On the test split: the budgeted accuracy and expected MACs per budget, the accuracy vs
   expected-MACs curve, and the measured wall-clock of early-exit inference (rows that exit
   stop computing) against the plain backbone, same batch size and threads.

``metrics["accuracy"]`` is the test accuracy at ``select_budget``; ``full_accuracy`` is the
final exit's. The thresholds travel in the artifacts (``exit_policies``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import torch
from pydantic import Field

from leandl.errors import ConfigError
from leandl.recipes.context import RunContext
from leandl.recipes.stage import Stage, StageResult
from leandl.recipes.stages.train import TrainOptions, run_training
from leandl.registry import STAGES

__all__ = ["ExitsOptions", "ExitsStage", "hard_budget_rows"]


class ExitsOptions(TrainOptions):  # type: ignore[misc, valid-type]
    """Options of an ``exits`` stage (plus every training override and techniques)."""

    after: list[str] | None = None
    head: Literal["linear", "mlp"] = "linear"
    pool: int = Field(1, ge=1, le=64)
    hidden: int = Field(128, ge=1, le=1 << 16)
    freeze_backbone: bool = False
    criterion: Literal["max_prob", "entropy"] = "max_prob"
    calibration: Literal["geometric", "max_accuracy"] = "geometric"
    budgets: list[Annotated[float, Field(gt=0, le=1)]] = Field(default_factory=lambda: [0.25, 0.5, 0.75],
                                                               max_length=100)
    select_budget: float = Field(0.5, gt=0, le=1)
    hard_budgets: list[Annotated[float, Field(gt=0, le=2)]] = Field(default_factory=list, max_length=100)
    timing_batch_size: int | None = Field(None, ge=1, le=1 << 16)
    timing_rounds: int = Field(5, ge=1, le=10_000)
    timing_threads: int | None = Field(None, ge=1, le=1024)


def _split_tensors(dataset: Any) -> tuple[Any, Any]:
    xs, ys = zip(*[(dataset[i][0], dataset[i][1]) for i in range(len(dataset))], strict=True)
    return torch.stack(xs), torch.as_tensor([int(y) for y in ys])


def _exit_outputs(ctx: RunContext, model: Any, split: Any) -> tuple[Any, Any]:
    from leandl.data import make_loader
    from leandl.dynamic import collect_exit_outputs

    loader = make_loader(split, ctx.recipe.data.eval_batch_size, shuffle=False)
    return collect_exit_outputs(model, loader, ctx.device)


def _evaluate_budgets(ctx: RunContext, model: Any, opts: ExitsOptions) -> tuple[dict[str, Any], dict[str, Any]]:
    from leandl.dynamic import (
        accuracy_cost_curve,
        anytime_accuracy,
        backbone_macs,
        calibrate_budget,
        exit_costs,
        measure_exit_speedup,
        predict_in_batches,
        simulate,
    )
    from leandl.dynamic.policy import confidences

    shape = tuple(ctx.data.input_shape)
    costs, full = exit_costs(model, shape), backbone_macs(model, shape)
    val_logits, val_y = _exit_outputs(ctx, model, ctx.data.val if ctx.data.val is not None else ctx.data.train)
    test_logits, test_y = _exit_outputs(ctx, model, ctx.data.test)
    conf = confidences(test_logits, opts.criterion)
    correct = torch.stack([z.argmax(-1) == test_y for z in test_logits])
    x_test, _ = _split_tensors(ctx.data.test)
    bs = opts.timing_batch_size or ctx.recipe.data.eval_batch_size
    rows, policies = [], {}
    for frac in sorted(set(opts.budgets) | {opts.select_budget}):
        pol = calibrate_budget(val_logits, val_y, costs, frac * full, opts.criterion,
                               method=opts.calibration)
        test = simulate(conf, correct, pol.thresholds, costs)
        res = predict_in_batches(model, x_test.to(ctx.device), bs, pol.thresholds, opts.criterion)
        staged_acc = float((res.logits.argmax(-1).cpu() == test_y).float().mean())
        row = {"budget_fraction": frac, "budget_macs": frac * full, "test_accuracy": staged_acc,
               "test_expected_macs": test["expected_macs"], "test_exit_fractions": test["exit_fractions"],
               **{k: v for k, v in pol.info.items() if k != "budget_macs"}}
        row["wall_clock"] = measure_exit_speedup(model, x_test.to(ctx.device), bs, pol.thresholds,
                                                     opts.criterion, rounds=opts.timing_rounds,
                                                     threads=opts.timing_threads)
        rows.append(row)
        policies[str(frac)] = pol.to_dict()
        if frac == opts.select_budget:
            selected = list(pol.thresholds)
    sel = next(r for r in rows if r["budget_fraction"] == opts.select_budget)
    hard = hard_budget_rows(model, x_test.to(ctx.device), test_y, costs, full, opts.hard_budgets,
                            selected, opts.criterion, bs)
    metrics = {
        "accuracy": sel["test_accuracy"], "full_accuracy": float(correct[-1].float().mean()),
        "exit_accuracy": [float(c.float().mean()) for c in correct],
        "expected_macs": sel["test_expected_macs"], "backbone_macs": full, "exit_macs": costs,
        "select_budget": opts.select_budget, "wall_clock_speedup": sel["wall_clock"]["speedup"],
        "budgets": rows, "anytime": anytime_accuracy(test_logits, test_y, costs),
        "accuracy_vs_expected_macs": accuracy_cost_curve(test_logits, test_y, costs, opts.criterion),
        "val_anytime": anytime_accuracy(val_logits, val_y, costs),
        **({"hard_budgets": hard} if hard else {}),
    }
    return metrics, {"exit_policies": policies, "exit_macs": costs, "exit_criterion": opts.criterion}


def hard_budget_rows(model: Any, x: Any, y: Any, costs: list[int], full: float, fractions: list[float],
                     thresholds: list[float], criterion: str, batch_size: int) -> list[dict[str, Any]]:
    """DDI's resource-dependent halt (arXiv 1907.04523) on the test set, per hard budget.

    Each batch of ``batch_size`` may spend at most ``fraction x backbone MACs x batch`` MACs
    (:func:`leandl.dynamic.halt.predict_within_budget`, with the selected budget's confidence
    thresholds); a row holds the accuracy and the MACs spent per sample, as a fraction of the
    backbone's. A budget below the first exit's cost is a ConfigError naming ``hard_budgets``.
    """
    from leandl.dynamic.halt import predict_within_budget

    rows = []
    for frac in fractions:
        hits, spent = 0, 0.0
        for i in range(0, x.shape[0], batch_size):
            xb = x[i:i + batch_size]
            try:
                res = predict_within_budget(model, xb, frac * full * xb.shape[0], costs, thresholds,
                                            criterion)
            except ConfigError as exc:
                raise ConfigError(exc.what, where=f"hard_budgets ({frac})", fix=exc.fix) from None
            hits += int((res.logits.argmax(-1).cpu() == y[i:i + batch_size]).sum())
            spent += res.spent_macs
        rows.append({"budget_fraction": frac, "test_accuracy": hits / x.shape[0],
                     "spent_macs_fraction": spent / (full * x.shape[0])})
    return rows


@STAGES.register("exits")
class ExitsStage(Stage):
    """Attach and train early exits, calibrate thresholds for MACs budgets, measure real savings."""

    kind = "exits"
    Options = ExitsOptions
    trains = True

    def run(self, ctx: RunContext) -> StageResult:
        from leandl.dynamic import MultiExit, attach_exits, freeze_backbone_

        opts: ExitsOptions = self.options  # type: ignore[assignment]
        model = ctx.model
        if not isinstance(model, MultiExit):
            after = opts.after or list(getattr(model, "exit_points", ()))
            model = attach_exits(model, after, opts.head, input_shape=tuple(ctx.data.input_shape),
                                 pool=opts.pool, hidden=opts.hidden)
        if opts.freeze_backbone:
            freeze_backbone_(model)
        ctx.model = model.to(ctx.device)
        trained = run_training(ctx, opts, description=opts.name or "exits")
        model = trained.model
        model.backbone_frozen = False
        for p in model.parameters():
            p.requires_grad_(True)
        metrics, artifacts = _evaluate_budgets(ctx, model, opts)
        return StageResult(model=model, metrics={**trained.metrics, **metrics}, artifacts=artifacts)

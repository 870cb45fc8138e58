"""The ``compare`` stage: train copies of the current model with different techniques, tabulate.

Each variant is a ``train`` stage's options (techniques and any training override) with a
required ``name``. Every variant starts from the *same* weights (a deep copy of the model the
stage receives) and the same data order (the recipe seed); its resume state lives under
``<stage dir>/<variant>/``. The stage's metrics hold ``comparison``: one row per variant with
``val_accuracy``, ``test_accuracy``, the noise monitor's ``clean_train_accuracy``,
``memorised``, ``corrected`` (when ``data.noise`` is set) and ``train_seconds``; the same
numbers flat as ``<variant>/<metric>``; and ``kept``. The model handed on (checkpoint, measures,
next stage) is the variant named by ``keep``, else the one with the best validation accuracy.

Example::

    - kind: compare
      variants:
        - {name: ce}
        - {name: proselflc, techniques: [{name: proselflc, transit: 0.3}]}
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import Field, model_validator

from leandl.recipes.context import RunContext
from leandl.recipes.schema import Strict
from leandl.recipes.stage import Stage, StageResult
from leandl.recipes.stages.train import TrainOptions, run_training
from leandl.registry import STAGES

__all__ = ["CompareStage", "CompareOptions", "Variant"]

_ROW_KEYS = ("val_accuracy", "test_accuracy", "clean_train_accuracy", "memorised", "corrected", "train_seconds")


class Variant(TrainOptions):  # type: ignore[misc, valid-type]
    """One variant: a train stage's options with a required, path-safe name."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.+-]+$")


class CompareOptions(Strict):
    """Options of a ``compare`` stage."""

    name: str | None = None
    variants: list[Variant] = Field(min_length=1)
    keep: str | None = None

    @model_validator(mode="after")
    def _names(self) -> CompareOptions:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names must be unique, got {names}")
        if self.keep is not None and self.keep not in names:
            raise ValueError(f"keep '{self.keep}' is not a variant name; choose one of {names}")
        return self


def _test_accuracy(ctx: RunContext, model: Any) -> float | None:
    from leandl.data import make_loader
    from leandl.train.evaluate import evaluate

    test = getattr(ctx.data, "test", None)
    if test is None or len(test) == 0:
        return None
    return float(evaluate(model, make_loader(test, ctx.recipe.data.eval_batch_size, shuffle=False),
                          ctx.device)["accuracy"])


def _run_variant(ctx: RunContext, start: Any, variant: Variant) -> tuple[Any, dict[str, Any]]:
    base_dir, base_name = ctx.stage_dir, ctx.stage_name
    ctx.model = copy.deepcopy(start)
    ctx.stage_dir, ctx.stage_name = base_dir / variant.name, f"{base_name}/{variant.name}"
    ctx.stage_dir.mkdir(parents=True, exist_ok=True)
    try:
        result = run_training(ctx, variant, description=variant.name)
    finally:
        ctx.stage_dir, ctx.stage_name = base_dir, base_name
    row: dict[str, Any] = {"variant": variant.name,
                           "techniques": [t.name for t in variant.techniques]}
    row.update({k: result.metrics.get(k) for k in _ROW_KEYS if k in result.metrics})
    row["test_accuracy"] = _test_accuracy(ctx, result.model)
    return result.model, row


@STAGES.register("compare")
class CompareStage(Stage):
    """Train copies of the current model with different techniques and report a table."""

    kind = "compare"
    Options = CompareOptions
    trains = True

    def run(self, ctx: RunContext) -> StageResult:
        opts: CompareOptions = self.options  # type: ignore[assignment]
        start = ctx.model
        models: dict[str, Any] = {}
        rows: list[dict[str, Any]] = []
        for variant in opts.variants:
            models[variant.name], row = _run_variant(ctx, start, variant)
            rows.append(row)
        keep = opts.keep or max(rows, key=lambda r: r.get("val_accuracy") or -1.0)["variant"]
        metrics: dict[str, Any] = {"comparison": rows, "kept": keep}
        for r in rows:
            metrics.update({f"{r['variant']}/{k}": v for k, v in r.items() if k in _ROW_KEYS})
        kept_row = next(r for r in rows if r["variant"] == keep)
        metrics.update({k: v for k, v in kept_row.items() if k in _ROW_KEYS and k != "test_accuracy"})
        ctx.stage_logger().log({"event": "comparison", "rows": rows, "kept": keep})
        ctx.model = models[keep]
        return StageResult(model=models[keep], metrics=metrics)

"""Measure a stage's model: test accuracy, params, MACs, size, latency, energy (with units)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from leandl.recipes.context import RunContext
from leandl.train.evaluate import evaluate

__all__ = ["measure_stage", "test_accuracy"]


def test_accuracy(ctx: RunContext, model: nn.Module) -> dict[str, Any]:
    """Accuracy and loss on the test split."""
    from leandl.data import make_loader

    loader = make_loader(ctx.data.test, ctx.recipe.data.eval_batch_size, shuffle=False)
    res = evaluate(model, loader, ctx.device)
    out = {"accuracy": res["accuracy"], "test_loss": res["loss"]}
    if "output_accuracy" in res:
        out["output_accuracy"] = res["output_accuracy"]
    return out


def measure_stage(ctx: RunContext, model: nn.Module) -> dict[str, Any]:
    """Every measured metric of ``model`` for the stage summary."""
    from leandl.measure import profile

    m = ctx.recipe.measure
    metrics = test_accuracy(ctx, model)
    example = ctx.example_input(1)
    prof = profile(model, example, batch_sizes=tuple(m.batch_sizes) if m.latency else (1,),
                   threads=m.threads, warmup=m.warmup, repeats=m.repeats, latency=m.latency,
                   energy=m.energy)
    data = prof.to_dict()
    data.pop("macs_per_module", None)
    for key, value in data.items():
        metrics.setdefault(key, value)
    metrics["device"] = str(ctx.device)
    metrics["threads"] = data.get("threads", torch.get_num_threads())
    return metrics

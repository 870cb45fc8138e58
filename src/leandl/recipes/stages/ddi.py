"""The ``ddi`` stage: input-dependent layer/channel skipping gates trained to a MACs budget.

1. :func:`leandl.dynamic.ddi_gates.attach_ddi_gates` on ``blocks`` (default: every
   shape-preserving conv-BN-activation block) with ``fractions`` as per-input options.
2. Joint training of gates and network with the stage's techniques plus ``ddi_budget``
   (``penalty_weight * (E[MACs]/MACs_full - budget)^2``; ``penalty_ramp`` lowers the target
   from 1 to ``budget`` over that fraction of the stage).
3. Calibration on the validation split: one cost bias on all gates so the mean MACs per input
   meet ``budget`` (a fraction of the ungated model's MACs).
4. On the test split: accuracy, mean/p10/p90 MACs per input (counted per input), the share of
   inputs that ran each gated block, and the measured wall clock of gated inference (samples
   partitioned by their choice; skipped blocks not computed) against the ungated network with
   the same weights, alternating rounds, same batch size and threads.

``metrics["macs"]`` is the mean per-input MACs on the test split (the runner's single-input
count would show one input's path only).

Example::

    - {kind: train, epochs: 10}
    - {kind: ddi, budget: 0.5, epochs: 5, timing_batch_size: 1000, timing_threads: 1}
"""

from __future__ import annotations

from typing import Annotated, Any

import torch
from pydantic import Field, model_validator

from leandl.recipes.context import RunContext
from leandl.recipes.schema import TechniqueEntry
from leandl.recipes.stage import Stage, StageResult
from leandl.recipes.stages.train import TrainOptions, run_training
from leandl.registry import STAGES

__all__ = ["DDIOptions", "DDIStage", "evaluate_gated"]


class DDIOptions(TrainOptions):  # type: ignore[misc, valid-type]
    """Options of a ``ddi`` stage (plus every training override and techniques)."""

    blocks: list[str] | None = None
    fractions: list[Annotated[float, Field(ge=0, le=1)]] = Field(
        default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0], min_length=2, max_length=16)
    hidden: int = Field(16, ge=1, le=4096)
    budget: float = Field(0.5, gt=0, le=1)
    penalty_weight: float = Field(10.0, gt=0, le=1e6)
    penalty_ramp: float = Field(0.0, ge=0, le=1)
    timing_batch_size: int | None = Field(None, ge=1, le=1 << 16)
    timing_rounds: int = Field(5, ge=1, le=10_000)
    timing_threads: int | None = Field(None, ge=1, le=1024)

    @model_validator(mode="after")
    def _fractions_span(self) -> DDIOptions:
        fr = self.fractions
        if fr[0] != 0 or fr[-1] != 1 or any(b <= a for a, b in zip(fr, fr[1:], strict=False)):
            raise ValueError(f"fractions must increase from 0 to 1, got {fr}")
        return self


def _tensors(split: Any) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*[(split[i][0], split[i][1]) for i in range(len(split))], strict=True)
    return torch.stack(xs), torch.as_tensor([int(y) for y in ys])


def measure_gated_speedup(model: torch.nn.Module, x: torch.Tensor, batch_size: int, rounds: int = 5,
                          threads: int | None = None) -> dict[str, Any]:
    """Wall clock over ``x`` of the gated model vs the same network ungated (alternating rounds)."""
    from leandl.dynamic.ddi_gates import strip_gates
    from leandl.measure import compare_latency

    model.eval()
    plain = strip_gates(model).eval()

    def run(net: torch.nn.Module) -> Any:
        @torch.no_grad()
        def fn(inp: torch.Tensor) -> None:
            for i in range(0, inp.shape[0], batch_size):
                net(inp[i:i + batch_size])
        return fn

    cmp = compare_latency({"full": run(plain), "gated": run(model)}, x, rounds=rounds, warmup=1,
                          repeats=3, threads=threads)
    return {"full_ms": cmp.median_ms["full"], "gated_ms": cmp.median_ms["gated"],
            "speedup": cmp.speedup_median["gated"], "batch_size": int(batch_size),
            "threads": int(cmp.threads), "n": int(x.shape[0])}


def evaluate_gated(model: torch.nn.Module, x_val: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor,
                   budget: float, batch_size: int, rounds: int = 5,
                   threads: int | None = None) -> dict[str, Any]:
    """Calibrate the gates to ``budget`` on ``x_val``; test accuracy, MACs per input and wall clock."""
    from leandl.dynamic.ddi_gates import calibrate_gates, gated_blocks, per_sample_macs

    cal = calibrate_gates(model, x_val, budget)
    macs = per_sample_macs(model, x_test)
    with torch.no_grad():
        logits = torch.cat([model(x_test[i:i + batch_size]) for i in range(0, len(x_test), batch_size)])
        ran = {}
        for i in range(0, len(x_test), batch_size):
            model(x_test[i:i + batch_size])
            for n, g in gated_blocks(model):
                ran.setdefault(n, []).append(g.last_fraction.cpu())
    full = float(model.ddi_full_macs)
    return {
        "accuracy": float((logits.argmax(-1).cpu() == y_test.cpu()).float().mean()),
        "macs": float(macs.mean()), "macs_fraction": float(macs.mean()) / full, "full_macs": full,
        "macs_fraction_p10": float(macs.quantile(0.1)) / full,
        "macs_fraction_p90": float(macs.quantile(0.9)) / full,
        "budget": budget, "cost_bias": cal["cost_bias"], "val_macs_fraction": cal["fraction"],
        "block_run_share": {n: float((torch.cat(v) > 0).float().mean()) for n, v in ran.items()},
        "block_mean_fraction": {n: float(torch.cat(v).mean()) for n, v in ran.items()},
        "wall_clock": measure_gated_speedup(model, x_test, batch_size, rounds, threads),
    }


@STAGES.register("ddi")
class DDIStage(Stage):
    """Train input-dependent skipping gates (DDI, arXiv 1907.04523) to a MACs budget, measure real savings."""

    kind = "ddi"
    Options = DDIOptions
    trains = True

    def run(self, ctx: RunContext) -> StageResult:
        from leandl.dynamic.ddi_gates import attach_ddi_gates, gated_blocks

        opts: DDIOptions = self.options  # type: ignore[assignment]
        model = ctx.model
        if not gated_blocks(model):
            model = attach_ddi_gates(model, opts.blocks, fractions=opts.fractions, hidden=opts.hidden,
                                     input_shape=tuple(ctx.data.input_shape))
        ctx.model = model.to(ctx.device)
        penalty = TechniqueEntry(name="ddi_budget", target=opts.budget, weight=opts.penalty_weight,
                                 ramp=opts.penalty_ramp)
        train_opts = opts.model_copy(update={"techniques": [*opts.techniques, penalty]})
        trained = run_training(ctx, train_opts, description=opts.name or "ddi")
        model = trained.model
        x_val, _ = _tensors(ctx.data.val if ctx.data.val is not None else ctx.data.train)
        x_test, y_test = _tensors(ctx.data.test)
        bs = opts.timing_batch_size or ctx.recipe.data.eval_batch_size
        res = evaluate_gated(model, x_val.to(ctx.device), x_test.to(ctx.device), y_test, opts.budget, bs,
                             opts.timing_rounds, opts.timing_threads)
        metrics = {**trained.metrics, **{k: v for k, v in res.items() if k != "wall_clock"},
                   "wall_clock": res["wall_clock"], "wall_clock_speedup": res["wall_clock"]["speedup"]}
        return StageResult(model=model, metrics=metrics,
                           artifacts={"ddi_cost_bias": res["cost_bias"], "ddi_budget": opts.budget})

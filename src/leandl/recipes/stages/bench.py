"""The ``bench`` stage: time the current model on several backends (outputs checked first).

Recipe keys::

    {kind: bench, backends: [eager, onnxruntime, onnxruntime-int8], batch_sizes: [1, 64],
     threads: [2], calibration_batches: 8, warmup: 3, repeats: 40}

Rows (see :func:`leandl.deploy.bench_backends`) go under ``metrics["bench"]``; a backend that
fails is a row with ``status: "failed: <reason>"``. Check inputs are real test inputs;
calibration batches come from the training split.
"""

from __future__ import annotations

import copy
from typing import Annotated

from pydantic import Field

from leandl.deploy.bench import bench_backends
from leandl.deploy.calibration import calibration_batches
from leandl.recipes.context import RunContext
from leandl.recipes.schema import Strict
from leandl.recipes.stage import Stage, StageResult
from leandl.registry import BACKENDS, STAGES

__all__ = ["BenchOptions", "BenchStage", "check_backend_names"]


class BenchOptions(Strict):
    """Options of a ``bench`` stage."""

    name: str | None = None
    backends: list[str] = Field(default_factory=lambda: ["eager", "onnxruntime", "onnxruntime-int8"], min_length=1)
    batch_sizes: list[Annotated[int, Field(ge=1, le=1 << 16)]] = Field(default_factory=lambda: [1, 64], min_length=1,
                                                                       max_length=32)
    threads: list[Annotated[int, Field(ge=1, le=1024)]] | None = Field(None, max_length=32)
    calibration_batches: int = Field(8, ge=1, le=100_000)
    check_batch_size: int = Field(256, ge=1, le=1 << 16)
    warmup: int = Field(3, ge=0, le=10_000)
    repeats: int = Field(40, ge=1, le=100_000)


def check_backend_names(names: list[str] | None, stage_index: int) -> None:
    """A ConfigError naming ``stages[i].backends`` for a backend name that is not registered."""
    from leandl.errors import ConfigError

    for name in names or []:
        if name not in BACKENDS:
            raise ConfigError(f"unknown backend '{name}'", where=f"stages[{stage_index}].backends",
                              fix=f"choose from {', '.join(BACKENDS.names())}")


@STAGES.register("bench")
class BenchStage(Stage):
    """Benchmark the current model on several backends; rows under metrics.bench."""

    kind = "bench"
    Options = BenchOptions
    needs_trained_model = True

    def run(self, ctx: RunContext) -> StageResult:
        o = self.options
        check_backend_names(o.backends, ctx.stage_index)
        if not ctx.is_main:
            return StageResult(model=ctx.model, measure=False)
        n_check = min(o.check_batch_size, len(ctx.data.test))
        cal = calibration_batches(ctx.data.train, o.calibration_batches, ctx.recipe.data.batch_size,
                                  seed=ctx.recipe.seed)
        threads = o.threads or [ctx.recipe.measure.threads]
        rows = bench_backends(copy.deepcopy(ctx.model).cpu().eval(), o.backends, ctx.example_input(n_check).cpu(),
                              batch_sizes=o.batch_sizes, threads=threads, calibration=cal, warmup=o.warmup,
                              repeats=o.repeats, workdir=ctx.stage_dir / "artifacts")
        return StageResult(model=ctx.model, metrics={"bench": rows})

"""The ``deploy`` stage: measure the eligible backends, keep the fastest within tolerance.

Recipe keys::

    {kind: deploy, batch_sizes: [1, 64], threads: [2], max_accuracy_drop: 0.01, min_cosine: 0.99,
     backends: null, include_slow: true, calibration_batches: 8, check_batch_size: 256,
     warmup: 3, repeats: 20}

Held-out inputs and their labels come from the recipe's test split (accuracy tolerance:
``max_accuracy_drop`` as a fraction, 0.01 = one point of top-1), calibration batches for static
int8 from its training split. ``backends: null`` measures every eligible backend
(:func:`leandl.deploy.select.eligible_backends`); ``include_slow: false`` leaves out the
compiling ones. The stage directory receives ``deploy.json`` (the table of all, the skipped
backends with their reason) and the chosen backend's ONNX file when an ONNX backend wins; a
PyTorch winner is deployed from the stage checkpoint. Metrics: ``deploy_backend``,
``deploy_best`` (fastest per batch size x threads) and ``deploy`` (the rows).
"""

from __future__ import annotations

import copy
import os
import tempfile

import torch
from pydantic import Field

from leandl.deploy.calibration import calibration_batches
from leandl.deploy.select import select_backend, write_deployment
from leandl.recipes.context import RunContext
from leandl.recipes.stages.bench import BenchOptions, check_backend_names
from leandl.recipes.stage import Stage, StageResult
from leandl.registry import STAGES

__all__ = ["DeployOptions", "DeployStage"]


class DeployOptions(BenchOptions):
    """Options of a ``deploy`` stage: a bench stage's, plus the accuracy tolerance of the choice
    (``backends`` None: every eligible backend)."""

    backends: list[str] | None = Field(None, min_length=1, max_length=32)  # type: ignore[assignment]
    max_accuracy_drop: float = Field(0.01, ge=0.0, le=1.0)
    min_cosine: float = Field(0.99, ge=-1.0, le=1.0)
    include_slow: bool = True
    repeats: int = Field(20, ge=1, le=100_000)


@STAGES.register("deploy")
class DeployStage(Stage):
    """Choose the fastest backend within an accuracy tolerance; deploy.json + artifact."""

    kind = "deploy"
    Options = DeployOptions
    needs_trained_model = True

    def run(self, ctx: RunContext) -> StageResult:
        o = self.options
        check_backend_names(o.backends, ctx.stage_index)
        if not ctx.is_main:
            return StageResult(model=ctx.model, measure=False)
        n = min(o.check_batch_size, len(ctx.data.test))
        check = torch.stack([torch.as_tensor(ctx.data.test[i][0]) for i in range(n)]).float()
        labels = torch.as_tensor([int(ctx.data.test[i][1]) for i in range(n)], dtype=torch.long)
        cal = calibration_batches(ctx.data.train, o.calibration_batches, ctx.recipe.data.batch_size,
                                  seed=ctx.recipe.seed)
        threads = o.threads or [ctx.recipe.measure.threads]
        load_before = os.getloadavg()
        with tempfile.TemporaryDirectory() as tmp:
            sel = select_backend(copy.deepcopy(ctx.model).cpu().eval(), check, labels=labels, calibration=cal,
                                 backends=o.backends, batch_sizes=o.batch_sizes, threads=threads,
                                 max_accuracy_drop=o.max_accuracy_drop, min_cosine=o.min_cosine,
                                 include_slow=o.include_slow, warmup=o.warmup, repeats=o.repeats, workdir=tmp)
            info = {"inputs": f"data {ctx.recipe.data.name} (test split, {n} samples)",
                    "calibration": f"data {ctx.recipe.data.name} (training split, {len(cal)} batches)",
                    "batch_sizes": list(o.batch_sizes), "threads": list(threads),
                    "loadavg_before": list(load_before), "loadavg_after": list(os.getloadavg()), "device": "cpu"}
            doc = write_deployment(sel, ctx.stage_dir, checkpoint=ctx.stage_dir / "model", info=info)
        metrics = {"deploy_backend": sel.backend, "deploy_best": sel.best, "deploy": sel.rows,
                   "deploy_skipped": sel.skipped}
        artifacts = {"deploy_json": str(ctx.stage_dir / "deploy.json")}
        if doc["artifact"] and sel.backend and sel.backend.startswith("onnxruntime"):
            artifacts["deploy_artifact"] = str(ctx.stage_dir / doc["artifact"])
        return StageResult(model=ctx.model, metrics=metrics, artifacts=artifacts)

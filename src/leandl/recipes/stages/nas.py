"""The ``nas`` stage: differentiable cell search, derive, fit to a MACs target, train the result.

1. First-order DARTS (:func:`leandl.nas.darts_search`) on the training split (half for the
   weights, half for the architecture), ``search_epochs`` epochs, a supernet of width
   ``search_width``; with ``kd: true`` the incoming model is the teacher of the search's loss
   (NAS-KD) and of the derived model's training.
2. The discrete cell (DARTS's top-2 rule) and the widest ``nas_cellnet`` whose MACs stay within
   ``max_macs`` (default: the MACs of the model this stage receives, so the searched network
   costs no more than the hand-designed one).
3. That network trained from scratch with the stage's training settings and techniques (plus
   Hinton KD from the teacher when ``kd``).

The output model is the searched network; its checkpoint stores the genotype, width and cells
as the model spec (``nas_cellnet`` kwargs), so it reloads without pickle. Metrics add
``genotype``, ``search_seconds``, ``searched_macs``, ``max_macs`` and ``width``. The search's
result is written atomically to the stage directory (``search.json``, with the settings it
ran with); on ``--resume`` a result whose settings match is read back (its genotype checked)
instead of searching again, and the retraining continues from its last epoch.

Example::

    - {kind: train, epochs: 10}                       # the hand-designed model (and teacher)
    - {kind: nas, search_epochs: 8, epochs: 10, kd: false}
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from leandl.recipes.context import RunContext
from leandl.recipes.stage import Stage, StageResult
from leandl.recipes.stages.train import TrainOptions
from leandl.registry import STAGES

__all__ = ["NASOptions", "NASStage"]


class NASOptions(TrainOptions):  # type: ignore[misc, valid-type]
    """Options of a ``nas`` stage (plus every training override and techniques for the retraining)."""

    search_epochs: int = Field(8, ge=1, le=10_000)
    arch_warmup: int = Field(0, ge=0, le=10_000)
    search_width: int = Field(8, ge=2, le=1024)
    search_batch_size: int = Field(64, ge=1, le=1 << 16)
    cells: int = Field(3, ge=1, le=64)
    nodes: int = Field(2, ge=1, le=8)
    ops: list[str] | None = None
    pool: bool = False
    arch_lr: float = Field(3e-3, gt=0, le=10)
    macs_weight: float = Field(0.0, ge=0, le=1e6)
    max_macs: Annotated[float, Field(gt=0)] | None = None
    kd: bool = False
    kd_beta: float = Field(0.5, ge=0, le=1)
    kd_temperature: float = Field(4.0, gt=0, le=100)


_SEARCH = "search.json"


def _settings(cfg: Any) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))


def _save_search(path: Path, cfg: Any, found: Any) -> None:
    """Write the search's result beside the settings it ran with (atomically)."""
    from leandl.serialization import atomic_write_text, crash_point

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({"settings": _settings(cfg), "result": dataclasses.asdict(found)}))
    crash_point("nas.searched")


def _saved_search(path: Path, cfg: Any) -> Any:
    """The saved result when it exists, reads back and ran with these settings; else ``None``."""
    from leandl.errors import LeandlError
    from leandl.nas.darts import SearchResult
    from leandl.nas.derive import check_genotype
    from leandl.serialization import read_json_bounded

    if not path.is_file():
        return None
    try:
        data = read_json_bounded(path)
        if data.get("settings") != _settings(cfg):
            return None
        res = data["result"]
        return SearchResult(genotype=check_genotype(res["genotype"]), alphas=dict(res["alphas"]),
                            seconds=float(res["seconds"]), history=list(res["history"]))
    except (LeandlError, KeyError, TypeError, ValueError, AttributeError):
        return None  # unreadable or from other settings: search again


@STAGES.register("nas")
class NASStage(Stage):
    """Differentiable cell search (DARTS, arXiv 1806.09055; NAS-KD with a teacher), then train the cell net."""

    kind = "nas"
    Options = NASOptions
    trains = True

    def run(self, ctx: RunContext) -> StageResult:
        import torch

        from leandl.measure import count_macs
        from leandl.models import create_model
        from leandl.nas import PRIMITIVES, SearchConfig, check_genotype, darts_search, fit_width
        from leandl.nas.space import check_ops
        from leandl.train.trainer import Trainer

        opts: NASOptions = self.options  # type: ignore[assignment]
        shape = tuple(int(s) for s in ctx.data.input_shape)
        incoming = ctx.model.eval()
        target = opts.max_macs or float(count_macs(incoming, torch.zeros(1, *shape, device=ctx.device)).total)
        teacher = incoming if opts.kd else None
        ops = check_ops(opts.ops or list(PRIMITIVES), where=f"stages[{ctx.stage_index}].ops")
        cfg = SearchConfig(epochs=opts.search_epochs, arch_warmup=opts.arch_warmup,
                           batch_size=opts.search_batch_size, width=opts.search_width,
                           cells=opts.cells, nodes=opts.nodes, ops=ops, pool=opts.pool, arch_lr=opts.arch_lr,
                           macs_weight=opts.macs_weight, max_macs=target, kd_beta=opts.kd_beta,
                           kd_temperature=opts.kd_temperature, seed=ctx.recipe.seed, device=str(ctx.device))
        found = _saved_search(ctx.stage_dir / _SEARCH, cfg) if ctx.resume else None
        if found is None:
            found = darts_search(ctx.data.train, shape, ctx.data.num_classes, cfg, teacher=teacher)
            _save_search(ctx.stage_dir / _SEARCH, cfg, found)
        genotype = check_genotype(found.genotype)
        width = fit_width(genotype, target, shape, ctx.data.num_classes, opts.cells, opts.pool)
        torch.manual_seed(ctx.recipe.seed)
        model = create_model("nas_cellnet", genotype=genotype, num_classes=ctx.data.num_classes,
                             input_shape=list(shape), width=width, cells=opts.cells, pool=opts.pool).to(ctx.device)
        techniques = ctx.build_techniques(opts.techniques)
        if teacher is not None:
            from leandl.distill.kd import KnowledgeDistillation

            techniques.append(KnowledgeDistillation(teacher, temperature=opts.kd_temperature, alpha=opts.kd_beta))
        trainer = Trainer(model, ctx.train_config(opts), train_data=ctx.data.train, val_data=ctx.data.val,
                          num_classes=ctx.data.num_classes, techniques=techniques, device=ctx.device,
                          run_dir=ctx.stage_dir, logger=ctx.stage_logger(), resume=ctx.resume, rank=ctx.rank,
                          world_size=ctx.world_size, description=opts.name or "nas")
        result = trainer.fit()
        searched = count_macs(result.model, torch.zeros(1, *shape, device=ctx.device)).total
        metrics = {**result.metrics, "genotype": genotype, "search_seconds": found.seconds,
                   "searched_macs": searched, "max_macs": target, "width": width,
                   "search_history": [{k: v for k, v in h.items() if k != "genotype"} for h in found.history]}
        return StageResult(model=result.model, metrics=metrics, artifacts={"nas_genotype": genotype})

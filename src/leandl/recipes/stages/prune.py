"""The ``prune`` stage: physically prune the current (trained) model to a target.

Recipe example::

    - {kind: prune, criterion: l1, target: {macs: 0.5}, scope: global}

``target`` takes one of ``ratio`` (fraction of units removed), ``macs`` / ``params`` (fraction
of the original KEPT: ``macs: 0.5`` halves the MACs), ``latency_ms`` or ``latency`` (fraction of
the measured dense latency kept), the last two with ``batch_size`` and ``threads``. Data
criteria (``taylor``, ``di``) read ``batches`` training batches. When an earlier stage left a
``prune_keep`` artifact (group name -> kept indices, e.g. the early-bird ticket), that mask is
applied instead of a criterion. Follow with a ``train`` stage to fine-tune.

``sparsity: S`` (with ``scope`` global or layerwise) instead runs one-shot unstructured
magnitude pruning: the fraction S of the conv/linear weights of smallest magnitude are zeroed
(Han et al. arXiv 1506.02626; folded into the weights, no hooks). Shapes, MACs and dense latency
do not change; the metrics report the sparsity and the compressed storage (bitmask and CSR).
A later ``train`` stage fine-tunes the zeros away unless it keeps them (not done here).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from leandl.errors import ConfigError
from leandl.recipes.context import RunContext
from leandl.recipes.schema import Strict
from leandl.recipes.stage import Stage, StageResult
from leandl.registry import STAGES

__all__ = ["PruneStage", "PruneOptions"]


class PruneOptions(Strict):
    """Options of a ``prune`` stage (see :func:`leandl.prune_`)."""

    criterion: str = "l1"
    target: dict[str, float] = Field(default_factory=lambda: {"macs": 0.5})
    scope: Literal["global", "layerwise"] = "global"
    max_ratio: float = Field(0.9, gt=0.0, le=1.0)
    round_to: int | None = Field(8, ge=1)
    ignored_layers: list[str] | None = None
    batches: int = Field(8, ge=1)
    iterative_steps: int = Field(1, ge=1)
    strict: bool = False
    allow_miss: bool = False
    sparsity: float | None = Field(None, ge=0.0, lt=1.0)

    @field_validator("criterion")
    @classmethod
    def _known_criterion(cls, value: str) -> str:
        from leandl.registry import CRITERIA

        CRITERIA.get(value)  # raises with the closest valid name
        return value

    @field_validator("target")
    @classmethod
    def _one_target(cls, value: dict[str, float]) -> dict[str, float]:
        from leandl.prune.api import check_target

        try:
            check_target(value)
        except ConfigError as exc:  # pydantic reports ValueErrors with the field's location
            raise ValueError(str(exc)) from None
        return value


def _train_batches(ctx: RunContext, n: int) -> list[tuple[Any, Any]]:
    from leandl.data.loader import make_loader

    loader = make_loader(ctx.data.train, ctx.recipe.data.batch_size, shuffle=True,
                         seed=ctx.recipe.seed)
    out = []
    for batch in loader:
        out.append((batch[0].to(ctx.device), batch[1].to(ctx.device)))
        if len(out) >= n:
            break
    return out


@STAGES.register("prune")
class PruneStage(Stage):
    """Structured pruning to a MACs / params / ratio / latency target (physical surgery)."""

    kind = "prune"
    Options = PruneOptions
    needs_trained_model = True

    def run(self, ctx: RunContext) -> StageResult:
        if self.options.sparsity is not None:  # same on every rank: magnitudes are replicated
            return _unstructured(ctx, self.options)
        if getattr(ctx, "world_size", 1) > 1:
            return _run_distributed(ctx, self.options)
        model, metrics, widths = _prune(ctx, self.options, ctx.model)
        return StageResult(model=model, metrics=metrics, artifacts={"prune_report": {"widths": widths}})


def _unstructured(ctx: RunContext, o: PruneOptions) -> StageResult:
    from leandl.prune.unstructured import compressed_storage, prune_unstructured_

    masks = prune_unstructured_(ctx.model, float(o.sparsity or 0.0), scope=o.scope,
                                ignored_layers=o.ignored_layers or ())
    rep = compressed_storage(ctx.model, o.ignored_layers or ())
    metrics = {"prune_source": f"unstructured magnitude ({o.scope})", "weight_sparsity": rep.sparsity,
               "pruned_weights": sum(int((~m).sum()) for m in masks.values()),
               "dense_bytes": rep.dense_bytes, "bitmask_bytes": rep.bitmask_bytes, "csr_bytes": rep.csr_bytes}
    return StageResult(model=ctx.model, metrics=metrics)


def _prune(ctx: RunContext, o: PruneOptions, model: Any) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    from leandl.prune.api import prune_
    from leandl.registry import CRITERIA

    keep = ctx.artifacts.get("prune_keep")
    batches = None
    if keep is None and CRITERIA.get(o.criterion).needs_data:
        batches = _train_batches(ctx, o.batches)
    report = prune_(
        model, ctx.example_input(1), criterion=o.criterion, target=dict(o.target),
        scope=o.scope, max_ratio=o.max_ratio, ignored_layers=o.ignored_layers,
        round_to=o.round_to, batches=batches, iterative_steps=o.iterative_steps,
        keep={k: list(v) for k, v in keep.items()} if keep is not None else None,
        strict=o.strict, allow_miss=o.allow_miss,
    )
    metrics: dict[str, Any] = {
        "macs_before": report.macs_before, "macs_after": report.macs_after,
        "params_before": report.params_before, "params_after": report.params_after,
        "macs_kept_fraction": report.achieved["macs"],
        "kept_per_group": {k: v[1] for k, v in report.widths.items()},
        "prune_source": "prune_keep artifact" if keep is not None else o.criterion,
        "kept_whole": dict(report.kept_whole),
    }
    metrics.update({f"latency_{k}": v for k, v in report.latency.items()})
    return model, metrics, report.widths


def _run_distributed(ctx: RunContext, o: PruneOptions) -> StageResult:
    """Decide on rank 0 (a copy), broadcast the structural edits, replay them on every rank."""
    import copy

    from leandl.recipes.dist import broadcast_object
    from leandl.spec import get_edits, replay_edits

    decided = None
    if ctx.is_main:
        before = len(get_edits(ctx.model))
        probe, metrics, widths = _prune(ctx, o, copy.deepcopy(ctx.model))
        decided = {"edits": get_edits(probe)[before:], "metrics": metrics, "widths": widths}
    decided = broadcast_object(decided)
    model = replay_edits(ctx.model, decided["edits"])
    metrics = dict(decided["metrics"])
    metrics["prune_decided_on"] = "rank 0, broadcast to every rank"
    metrics["prune_masks_identical_across_ranks"] = _same_on_every_rank(get_edits(model))
    return StageResult(model=model, metrics=metrics, artifacts={"prune_report": {"widths": decided["widths"]}})


def _same_on_every_rank(edits: list[dict[str, Any]]) -> bool:
    """All-gather each rank's edit log (as JSON) and compare: the masks every rank applied."""
    import json

    import torch.distributed as dist

    mine = json.dumps(edits, sort_keys=True)
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, mine)
    return all(g == mine for g in gathered)

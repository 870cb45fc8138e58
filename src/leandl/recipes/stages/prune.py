"""The ``prune`` stage: physically prune the current (trained) model to a target.

Recipe example::

    - {kind: prune, criterion: l1, target: {macs: 0.5}, scope: global}

``target`` takes one of ``ratio`` (fraction of units removed), ``macs`` / ``params`` (fraction
of the original KEPT: ``macs: 0.5`` halves the MACs) or ``latency_ms`` (+ ``batch_size``). Data
criteria (``taylor``, ``di``) read ``batches`` training batches. When an earlier stage left a
``prune_keep`` artifact (group name -> kept indices, e.g. the early-bird ticket), that mask is
applied instead of a criterion. Follow with a ``train`` stage to fine-tune.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from leandl.recipes.context import RunContext
from leandl.recipes.schema import Strict
from leandl.recipes.stage import Stage, StageResult
from leandl.registry import STAGES

__all__ = ["PruneStage", "PruneOptions"]


class PruneOptions(Strict):
    """Options of a ``prune`` stage (see :func:`leandl.prune_`)."""

    criterion: str = "l1"
    target: dict[str, float] = Field(default_factory=lambda: {"macs": 0.5})
    scope: str = "global"
    max_ratio: float = 0.9
    round_to: int | None = 8
    ignored_layers: list[str] | None = None
    batches: int = 8
    iterative_steps: int = 1


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
        from leandl.prune.api import prune_
        from leandl.registry import CRITERIA

        o = self.options
        keep = ctx.artifacts.get("prune_keep")
        batches = None
        if keep is None and CRITERIA.get(o.criterion).needs_data:
            batches = _train_batches(ctx, o.batches)
        report = prune_(
            ctx.model, ctx.example_input(1), criterion=o.criterion, target=dict(o.target),
            scope=o.scope, max_ratio=o.max_ratio, ignored_layers=o.ignored_layers,
            round_to=o.round_to, batches=batches, iterative_steps=o.iterative_steps,
            keep={k: list(v) for k, v in keep.items()} if keep is not None else None,
        )
        metrics: dict[str, Any] = {
            "macs_before": report.macs_before, "macs_after": report.macs_after,
            "params_before": report.params_before, "params_after": report.params_after,
            "macs_kept_fraction": report.achieved["macs"],
            "kept_per_group": {k: v[1] for k, v in report.widths.items()},
            "prune_source": "prune_keep artifact" if keep is not None else o.criterion,
        }
        metrics.update({f"latency_{k}": v for k, v in report.latency.items()})
        return StageResult(model=ctx.model, metrics=metrics,
                           artifacts={"prune_report": {"widths": report.widths}})

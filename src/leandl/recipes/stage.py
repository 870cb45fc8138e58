"""The stage base class: one recipe stage kind = one registered class.

A stage kind is a subclass of :class:`Stage` in ``leandl/recipes/stages/<kind>.py``,
registered with ``@STAGES.register("<kind>")``, with an ``Options`` pydantic model (its recipe
keys; unknown keys rejected) and a ``run(ctx) -> StageResult`` method. The runner measures the
returned model (accuracy, params, MACs, size, latency) and fills every metric the stage did
not set itself, writes the checkpoint and the stage summary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from torch import nn

from leandl.recipes.schema import Strict

if TYPE_CHECKING:
    from leandl.recipes.context import RunContext

__all__ = ["Stage", "StageResult"]


@dataclass
class StageResult:
    """What a stage hands back.

    Args:
        model: the model for the next stage (and the stage checkpoint).
        metrics: stage metrics; keys set here win over the runner's measurements.
        artifacts: JSON-safe values later stages may read via ``ctx.artifacts``.
        measure: let the runner profile the model (False for stages that measure themselves).
        eval_model: a callable ``x -> logits`` used for test accuracy instead of ``model``.
    """

    model: nn.Module
    metrics: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)
    measure: bool = True


class Stage:
    """Base class of recipe stages.

    Class attributes:
        kind: the recipe ``kind`` string.
        Options: pydantic model of the stage's options.
        trains: the stage produces a trained model (train, distill, exits ...).
        needs_trained_model: the stage makes no sense on an untrained model (prune by a trained
            criterion, quantize, bench); the runner refuses such a stage before any training
            stage unless the recipe starts from a checkpoint.
    """

    kind: ClassVar[str] = "stage"
    Options: ClassVar[type[Strict]] = Strict
    trains: ClassVar[bool] = False
    needs_trained_model: ClassVar[bool] = False

    def __init__(self, options: Strict) -> None:
        self.options = options

    def run(self, ctx: RunContext) -> StageResult:
        """Run the stage on ``ctx.model`` and return the result."""
        raise TypeError(f"stage class {type(self).__name__} does not define run()")

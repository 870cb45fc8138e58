"""``RunContext``: what a stage can use (recipe, data, current model, run directory, logger)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from leandl.recipes.schema import Recipe, TechniqueEntry
from leandl.train.config import TrainConfig
from leandl.train.metrics_log import MetricsLogger

__all__ = ["RunContext"]


@dataclass
class RunContext:
    """Shared state of one run, handed to every stage.

    Attributes:
        recipe: the resolved recipe.
        out_dir: the run directory.
        data: the :class:`leandl.data.DataBundle`.
        model: the current model (the previous stage's output).
        device: torch device of the run.
        logger: the run's metrics.jsonl logger.
        resume: continue interrupted stages from their resume state.
        artifacts: JSON-safe values stages pass on (masks, thresholds, teacher paths ...).
        stage_index / stage_dir / stage_name: the running stage.
        rank / world_size: distributed position.
        summaries: summaries of the stages done so far.
    """

    recipe: Recipe
    out_dir: Path
    data: Any
    model: nn.Module
    device: torch.device
    logger: MetricsLogger
    resume: bool = False
    artifacts: dict[str, Any] = field(default_factory=dict)
    stage_index: int = 0
    stage_dir: Path = Path(".")
    stage_name: str = ""
    rank: int = 0
    world_size: int = 1
    summaries: list[dict[str, Any]] = field(default_factory=list)

    @property
    def is_main(self) -> bool:
        """True on the process that writes files (rank 0)."""
        return self.rank == 0

    def train_config(self, overrides: Any = None) -> TrainConfig:
        """Recipe defaults + data batch sizes + seed, then the stage's non-None overrides."""
        values = self.recipe.defaults.model_dump()
        if overrides is not None:
            src = overrides if isinstance(overrides, dict) else overrides.model_dump()
            values.update({k: v for k, v in src.items() if v is not None and k in values})
        values["milestones"] = tuple(values["milestones"])
        values["betas"] = tuple(values["betas"])
        per_rank = max(1, self.recipe.data.batch_size // max(1, self.world_size))
        return TrainConfig(batch_size=per_rank, eval_batch_size=self.recipe.data.eval_batch_size,
                           seed=self.recipe.seed, num_workers=self.recipe.data.num_workers, **values)

    def build_techniques(self, entries: list[TechniqueEntry]) -> list[Any]:
        """Instantiate technique entries of the running stage (validated)."""
        from leandl.recipes.techniques import build_techniques

        return build_techniques(entries, f"stages[{self.stage_index}]")

    def example_input(self, batch_size: int = 1) -> torch.Tensor:
        """A batch of real test inputs of the given size (repeated when the split is small)."""
        xs = [self.data.test[i % len(self.data.test)][0] for i in range(batch_size)]
        return torch.stack(xs).to(self.device)

    def stage_logger(self) -> MetricsLogger:
        """The run logger with this stage's name in every record."""
        return self.logger.child(stage=self.stage_name)

"""The recipe schema (pydantic): unknown keys are rejected, every error names its field path.

A recipe has ``name``, ``model``, ``data``, ``defaults`` (training settings every stage
inherits), ``measure`` (how each stage's model is measured) and an ordered list of
``stages``; each stage is ``{kind: ..., **options}`` validated by the stage class registered
under that kind (see :mod:`leandl.recipes.stages`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

__all__ = ["Strict", "ModelConfig", "NoiseConfig", "DataConfig", "TrainDefaults", "TrainOverrides",
           "MeasureConfig", "TechniqueEntry", "Recipe"]


class Strict(BaseModel):
    """Base for recipe sections: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(Strict):
    """The model: a registry name / import path with kwargs, or a checkpoint directory."""

    name: str | None = None
    kwargs: dict[str, Any] = Field(default_factory=dict)
    checkpoint: str | None = None
    trust: bool = False

    @model_validator(mode="after")
    def _one_source(self) -> ModelConfig:
        if (self.name is None) == (self.checkpoint is None):
            raise ValueError("give exactly one of 'name' (a model) or 'checkpoint' (a directory)")
        return self


class NoiseConfig(Strict):
    """Synthetic label noise injected into the training split (clean labels are kept)."""

    type: Literal["symmetric", "pairflip", "asymmetric"] = "symmetric"
    rate: float = Field(0.4, ge=0.0, le=1.0)
    convention: Literal["exclude_true", "include_true"] = "exclude_true"
    mapping: dict[int, int] | None = None
    seed: int = 0


class DataConfig(Strict):
    """The data set and its loaders."""

    name: str
    root: str | None = None
    batch_size: int = Field(64, ge=1)
    eval_batch_size: int = Field(512, ge=1)
    num_workers: int = Field(0, ge=0)
    options: dict[str, Any] = Field(default_factory=dict)
    noise: NoiseConfig | None = None


class TrainDefaults(Strict):
    """Training settings inherited by every training stage (see :class:`TrainConfig`)."""

    epochs: int = Field(10, ge=0)
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = Field(0.05, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(5e-4, ge=0)
    nesterov: bool = True
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: Literal["constant", "step", "cosine", "onecycle"] = "cosine"
    warmup_epochs: float = Field(0.0, ge=0)
    milestones: list[float] = Field(default_factory=lambda: [0.5, 0.75])
    gamma: float = Field(0.1, gt=0)
    grad_clip: float | None = Field(None, gt=0)
    eval_every: int = Field(1, ge=1)
    restore_best: bool = False
    on_nan: Literal["stop", "skip_batch"] = "stop"
    max_nan_skips: int = Field(10, ge=0)
    log_every: int = Field(50, ge=0)
    checkpoint_every: int = Field(1, ge=0)
    progress: bool = True


def _optional_fields(model: type[BaseModel]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, f in model.model_fields.items():
        ann = Annotated[f.annotation, *f.metadata] if f.metadata else f.annotation
        out[name] = (Optional[ann], None)  # noqa: UP007 - runtime-built annotation
    return out


# Every TrainDefaults field, optional (None = inherit): a stage overrides only what it names.
TrainOverrides = create_model("TrainOverrides", __base__=Strict, **_optional_fields(TrainDefaults))


class MeasureConfig(Strict):
    """How each stage's model is measured after the stage."""

    batch_sizes: list[int] = Field(default_factory=lambda: [1, 64])
    threads: int | None = Field(None, ge=1)
    warmup: int = Field(3, ge=0)
    repeats: int = Field(10, ge=1)
    latency: bool = True
    energy: bool = True


class TechniqueEntry(BaseModel):
    """``{name: <technique>, **kwargs}``; kwargs are checked against the technique's signature."""

    model_config = ConfigDict(extra="allow")
    name: str

    def kwargs(self) -> dict[str, Any]:
        """The technique's keyword arguments (every key but ``name``)."""
        return dict(self.model_extra or {})


class StageEntry(BaseModel):
    """``{kind: <stage kind>, **options}``; options are checked by the stage class."""

    model_config = ConfigDict(extra="allow")
    kind: str


class Recipe(Strict):
    """A whole recipe."""

    name: str
    description: str = ""
    seed: int = 0
    device: str = "cpu"
    model: ModelConfig
    data: DataConfig
    defaults: TrainDefaults = Field(default_factory=TrainDefaults)
    measure: MeasureConfig = Field(default_factory=MeasureConfig)
    stages: list[StageEntry] = Field(min_length=1)

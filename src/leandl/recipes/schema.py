"""The recipe schema (pydantic): unknown keys are rejected, every error names its field path.

A recipe has ``name``, ``model``, ``data``, ``defaults`` (training settings every stage
inherits), ``measure`` (how each stage's model is measured) and an ordered list of
``stages``; each stage is ``{kind: ..., **options}`` validated by the stage class registered
under that kind (see :mod:`leandl.recipes.stages`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional

import re

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

# Upper bounds: far beyond any sensible recipe, low enough that no value can exhaust memory or
# time before training starts (a batch of 10**9, 10**9 threads, 10**9 warm-up calls ...).
MAX_BATCH = 1 << 20
MAX_MEASURE_BATCH = 1 << 16
MAX_THREADS = 1024
MAX_WORKERS = 256
MAX_EPOCHS = 1_000_000
MAX_SEED = 2**32 - 1
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9 ._+-]{0,99}$")
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d{1,3})?)$")
Finite = Annotated[float, Field(allow_inf_nan=False)]
Fraction = Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)]
Beta = Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)]
MeasureBatch = Annotated[int, Field(ge=1, le=MAX_MEASURE_BATCH)]

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
    mapping: dict[Annotated[int, Field(ge=0)], Annotated[int, Field(ge=0)]] | None = None
    seed: int = Field(0, ge=0, le=MAX_SEED)


class DataConfig(Strict):
    """The data set and its loaders."""

    name: str
    root: str | None = None
    batch_size: int = Field(64, ge=1, le=MAX_BATCH)
    eval_batch_size: int = Field(512, ge=1, le=MAX_BATCH)
    num_workers: int = Field(0, ge=0, le=MAX_WORKERS)
    options: dict[str, Any] = Field(default_factory=dict)
    noise: NoiseConfig | None = None


class TrainDefaults(Strict):
    """Training settings inherited by every training stage (see :class:`TrainConfig`)."""

    epochs: int = Field(10, ge=0, le=MAX_EPOCHS)
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = Field(0.05, gt=0, allow_inf_nan=False)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(5e-4, ge=0, allow_inf_nan=False)
    nesterov: bool = True
    betas: tuple[Beta, Beta] = (0.9, 0.999)
    schedule: Literal["constant", "step", "cosine", "onecycle"] = "cosine"
    warmup_epochs: float = Field(0.0, ge=0, le=MAX_EPOCHS, allow_inf_nan=False)
    milestones: list[Fraction] = Field(default_factory=lambda: [0.5, 0.75], max_length=100)
    gamma: float = Field(0.1, gt=0, allow_inf_nan=False)
    grad_clip: float | None = Field(None, gt=0, allow_inf_nan=False)
    eval_every: int = Field(1, ge=1)
    restore_best: bool = False
    on_nan: Literal["stop", "skip_batch"] = "stop"
    max_nan_skips: int = Field(10, ge=0)
    log_every: int = Field(50, ge=0)
    checkpoint_every: int = Field(1, ge=0)
    progress: bool = True
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"

    @field_validator("milestones")
    @classmethod
    def _increasing(cls, value: list[float]) -> list[float]:
        return _check_milestones(value)


def _check_milestones(value: list[float] | None) -> list[float] | None:
    if value is not None and any(b <= a for a, b in zip(value, value[1:], strict=False)):
        raise ValueError("milestones must be strictly increasing fractions of training in (0, 1)")
    return value


def _optional_fields(model: type[BaseModel]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, f in model.model_fields.items():
        ann = Annotated[f.annotation, *f.metadata] if f.metadata else f.annotation
        out[name] = (Optional[ann], None)  # noqa: UP007 - runtime-built annotation
    return out


# Every TrainDefaults field, optional (None = inherit): a stage overrides only what it names.
TrainOverrides = create_model(
    "TrainOverrides", __base__=Strict,
    __validators__={"_increasing": field_validator("milestones")(lambda cls, v: _check_milestones(v))},
    **_optional_fields(TrainDefaults))


class MeasureConfig(Strict):
    """How each stage's model is measured after the stage."""

    batch_sizes: list[MeasureBatch] = Field(default_factory=lambda: [1, 64], min_length=1, max_length=32)
    threads: int | None = Field(None, ge=1, le=MAX_THREADS)
    warmup: int = Field(3, ge=0, le=10_000)
    repeats: int = Field(10, ge=1, le=100_000)
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
    seed: int = Field(0, ge=0, le=MAX_SEED)
    device: str = "cpu"
    model: ModelConfig
    data: DataConfig
    defaults: TrainDefaults = Field(default_factory=TrainDefaults)
    measure: MeasureConfig = Field(default_factory=MeasureConfig)
    stages: list[StageEntry] = Field(min_length=1, max_length=1000)

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if not _NAME.match(value) or ".." in value:
            raise ValueError("a recipe name is 1-100 letters, digits, spaces and . _ + - (no '/', '\\' or '..', "
                             "not starting with '.'); it names the run directory")
        return value

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if not _DEVICE.match(value):
            raise ValueError("device must be 'auto', 'cpu', 'mps', 'cuda' or 'cuda:N'")
        return value

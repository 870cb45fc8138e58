"""Training: the Trainer, its State and Events, techniques, resume state."""

from __future__ import annotations

from leandl.train.config import TrainConfig
from leandl.train.evaluate import evaluate, predict_logits
from leandl.train.events import Event
from leandl.train.losses import one_hot, soft_cross_entropy
from leandl.train.metrics_log import MetricsLogger
from leandl.train.state import State
from leandl.train.technique import Engine, Technique
from leandl.train.trainer import FitResult, Trainer

__all__ = ["TrainConfig", "Trainer", "FitResult", "State", "Event", "Technique", "Engine",
           "MetricsLogger", "evaluate", "predict_logits", "soft_cross_entropy", "one_hot"]

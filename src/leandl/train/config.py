"""``TrainConfig``: the knobs of one training stage, validated on creation."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["TrainConfig", "OPTIMIZERS", "SCHEDULES", "PRECISIONS"]

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "step", "cosine", "onecycle")
PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class TrainConfig:
    """Training settings.

    Args:
        epochs: passes over the training set.
        batch_size / eval_batch_size: samples per step / per evaluation batch.
        optimizer: ``sgd`` (momentum, nesterov), ``adam`` or ``adamw``.
        lr, momentum, weight_decay, nesterov, betas: optimizer settings.
        schedule: ``constant``, ``step`` (``gamma`` at ``milestones``, fractions of training),
            ``cosine`` or ``onecycle``; ``warmup_epochs`` of linear warm-up (may be fractional).
        grad_clip: max global grad norm (None = off).
        seed: seeds weights' RNG use, dropout and data order.
        eval_every: evaluate every N epochs (the last epoch is always evaluated).
        restore_best: load the weights of the best validation epoch at the end.
        on_nan: ``stop`` (raise with the step and the last good checkpoint) or ``skip_batch``.
        max_nan_skips: with ``skip_batch``, how many non-finite batches to tolerate.
        progress: show a progress bar.
        log_every: write a step record to metrics.jsonl every N steps.
        checkpoint_every: write resume state every N epochs (0 = never).
        precision: ``fp32`` (default), ``bf16`` or ``fp16``: the forward pass and the loss run under
            ``torch.autocast`` with that dtype (weights, gradients and the optimizer stay fp32);
            ``fp16`` adds dynamic loss scaling (``torch.amp.GradScaler``) that skips steps whose
            gradients overflow. Evaluation runs in fp32.
    """

    epochs: int = 10
    batch_size: int = 64
    eval_batch_size: int = 512
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = True
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    milestones: tuple[float, ...] = field(default=(0.5, 0.75))
    gamma: float = 0.1
    grad_clip: float | None = None
    seed: int = 0
    eval_every: int = 1
    restore_best: bool = False
    on_nan: str = "stop"
    max_nan_skips: int = 10
    progress: bool = True
    log_every: int = 50
    checkpoint_every: int = 1
    num_workers: int = 0
    precision: str = "fp32"

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 0, "epochs must be >= 0"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.eval_batch_size >= 1, "eval_batch_size must be >= 1"),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}"),
            (self.lr > 0, "lr must be > 0"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (self.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}"),
            (self.warmup_epochs >= 0, "warmup_epochs must be >= 0"),
            (self.grad_clip is None or self.grad_clip > 0, "grad_clip must be > 0"),
            (self.on_nan in ("stop", "skip_batch"), "on_nan must be 'stop' or 'skip_batch'"),
            (self.eval_every >= 1, "eval_every must be >= 1"),
            (self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)

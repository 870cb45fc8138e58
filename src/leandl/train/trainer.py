"""The one ``Trainer`` behind every training stage (train, fine-tune, distill, QAT, exits).

See :mod:`leandl.train.events` for the loop and where each event fires. The trainer owns the
mechanics (devices, data order, optimizer, schedule, loss reduction, evaluation, resume
state (in :mod:`leandl.train._trainer_resume`), signals, non-finite losses); everything that changes *what* is learned is a technique.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from leandl.errors import TrainingError
from leandl.train._trainer_resume import ResumeStateMixin, non_finite_tensors
from leandl.train.amp import AmpContext
from leandl.train.config import TrainConfig
from leandl.train.evaluate import evaluate
from leandl.train.events import Event
from leandl.train.losses import one_hot, soft_cross_entropy
from leandl.train.metrics_log import MetricsLogger
from leandl.train.optim import build_optimizer
from leandl.train.progress import TrainProgress
from leandl.train.resume import has_resume
from leandl.train.schedule import Schedule
from leandl.train.signals import STOP_SIGNALS, TrainingInterrupted
from leandl.train.state import State
from leandl.train.technique import Engine, Technique

__all__ = ["Trainer", "FitResult", "non_finite_tensors"]


@dataclass
class FitResult:
    """What a fit returns: the trained model, final metrics and the per-epoch history."""

    model: nn.Module
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)


class Trainer(ResumeStateMixin):
    """Trains ``model`` on ``train_data`` with ``techniques`` hooked into the loop.

    Args:
        model: the network (a tensor or a list of logits per forward).
        config: :class:`TrainConfig`.
        train_data / val_data: datasets of ``(input, target, index)``; ``val_data`` may be None.
        num_classes: K for one-hot targets.
        techniques: :class:`Technique` objects, run in ``(order, position)`` order.
        device: torch device.
        run_dir: stage directory; resume state goes to ``run_dir/resume`` (None: no resume).
        logger: metrics.jsonl logger.
        resume: continue from ``run_dir/resume`` when it exists.
        rank / world_size: distributed position (DDP wraps the model when world_size > 1).
    """

    def __init__(self, model: nn.Module, config: TrainConfig, *, train_data: Any, val_data: Any,
                 num_classes: int, techniques: list[Technique] | tuple[Technique, ...] = (),
                 device: str | torch.device = "cpu", run_dir: str | Path | None = None,
                 logger: MetricsLogger | None = None, resume: bool = False, rank: int = 0,
                 world_size: int = 1, trace: bool = False, description: str = "train") -> None:
        self.cfg = config
        self.train_data, self.val_data = train_data, val_data
        self.device = torch.device(device)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.logger = logger or MetricsLogger(None)
        self.resume = resume
        self.description = description
        self.engine = Engine(techniques, trace=trace)
        self.state = State(model=model.to(self.device), num_classes=num_classes, device=self.device,
                           max_epochs=config.epochs, rank=rank, world_size=world_size)
        self.state.eval_fn = self._evaluate
        self._fwd: nn.Module = model
        self._schedule: Schedule | None = None
        self._base_lrs: list[float] = []
        self.history: list[dict[str, Any]] = []
        self._best: dict[str, Any] = {"accuracy": -math.inf, "epoch": -1, "weights": None}
        self._nan_skips = 0
        self._signals = STOP_SIGNALS
        self.amp = AmpContext("fp32", self.device)

    # ---------------------------------------------------------------- loaders and eval
    def _loader(self, dataset: Any, train: bool, epoch: int) -> Any:
        from leandl.data import make_loader

        st = self.state
        bs = self.cfg.batch_size if train else self.cfg.eval_batch_size
        return make_loader(dataset, bs, shuffle=train, seed=self.cfg.seed, epoch=epoch,
                           num_workers=self.cfg.num_workers,
                           rank=st.rank if train else 0, world_size=st.world_size if train else 1)

    def _evaluate(self, model: nn.Module | None = None, dataset: Any = None) -> dict[str, Any]:
        data = self.val_data if dataset is None else dataset
        if data is None:
            return {}
        return evaluate(model or self.state.model, self._loader(data, False, 0), self.device)

    # ---------------------------------------------------------------- setup
    def _setup(self) -> int:
        st, cfg = self.state, self.cfg
        torch.manual_seed(cfg.seed)
        st.train_loader = self._loader(self.train_data, True, 0)
        st.steps_per_epoch = max(1, len(st.train_loader))
        st.precision = cfg.precision
        self.engine.run(Event.FIT_START, st)
        self.amp = AmpContext(st.precision, self.device)  # a technique may have changed the precision
        st.optimizer = build_optimizer(st.model, cfg)
        st.loss_fn = st.loss_fn or soft_cross_entropy
        self._base_lrs = [g["lr"] for g in st.optimizer.param_groups]
        self._schedule = Schedule(
            kind=cfg.schedule, total_steps=st.max_steps,
            warmup_steps=int(round(cfg.warmup_epochs * st.steps_per_epoch)),
            milestones=tuple(cfg.milestones), gamma=cfg.gamma)
        self._fwd = self._wrap_distributed(st.model)
        if self.resume and self.run_dir is not None and has_resume(self.run_dir / "resume"):
            return self._load_resume()
        return 0

    def _wrap_distributed(self, model: nn.Module) -> nn.Module:
        if self.state.world_size <= 1:
            return model
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DDP(model, device_ids=ids, find_unused_parameters=True)

    # ---------------------------------------------------------------- the loop
    def fit(self) -> FitResult:
        """Run the training loop and return the trained model with its metrics."""
        st, cfg = self.state, self.cfg
        t0 = time.perf_counter()
        self._resume_batch = 0
        start_epoch = self._setup()
        st.model.train()
        progress = TrainProgress(cfg.progress and st.rank == 0, st.max_steps, self.description)
        with progress, self._signals:
            progress.set_completed(st.step)
            for epoch in range(start_epoch, cfg.epochs):
                self._run_epoch(epoch, progress)
                if st.stop:
                    self.logger.log({"event": "stopped", "epoch": epoch, "reason": st.stop_reason})
                    break
        self.engine.run(Event.FIT_END, st)
        return self._finish(time.perf_counter() - t0)

    def _run_epoch(self, epoch: int, progress: TrainProgress) -> None:
        st, cfg = self.state, self.cfg
        st.epoch = epoch
        skip = self._resume_batch
        self._resume_batch = 0
        if skip == 0:
            self.engine.run(Event.EPOCH_START, st)
        t_epoch = time.perf_counter()
        loader = self._loader(self.train_data, True, epoch)
        st.train_loader = loader
        stats = self._train_batches(loader, epoch, skip, progress)
        epoch_seconds = time.perf_counter() - t_epoch
        self.engine.run(Event.EPOCH_END, st)
        record = {"event": "epoch", "epoch": epoch, "step": st.step, "epoch_seconds": epoch_seconds, **stats}
        if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs or st.stop:
            st.metrics = {f"val_{k}": v for k, v in self._evaluate().items()}
            self.engine.run(Event.EVAL_END, st)
            self._track_best(epoch)
            record.update(st.metrics)
        record.update({f"counter_{k}": v for k, v in st.counters.items()})
        self.history.append(record)
        self.logger.log(record)
        progress.print(_epoch_line(record, cfg.epochs))
        if cfg.checkpoint_every and (epoch + 1) % cfg.checkpoint_every == 0:
            self._save_resume(epoch + 1, 0)

    def _train_batches(self, loader: Any, epoch: int, skip: int, progress: TrainProgress) -> dict[str, Any]:
        st = self.state
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        seen = 0
        for b, batch in enumerate(loader):
            if b < skip:
                continue
            st.batch_index = b
            done = self._train_step(batch)
            if done is not None:
                loss_sum += done[0] * done[2]
                correct += done[1]
                seen += done[2]
            self._after_batch(progress, done)
            if self._signals.requested:
                self._interrupt(epoch, b + 1)
            if st.stop:
                break
        return {"train_loss": float(loss_sum) / max(seen, 1), "train_accuracy": float(correct) / max(seen, 1),
                "samples_trained": seen}

    def _after_batch(self, progress: TrainProgress, done: tuple | None) -> None:
        st = self.state
        st.step += 1
        if st.step % 10 == 0 or st.step == st.max_steps:
            info = f"loss {float(done[0]):.3f}" if done is not None else ""
            progress.advance(10 if st.step % 10 == 0 else st.step % 10, info)
        if self.cfg.log_every and st.step % self.cfg.log_every == 0 and done is not None:
            rec = {"event": "step", "step": st.step, "epoch": st.epoch, "loss": float(done[0]), "lr": st.lr}
            rec.update({f"loss_{k}": float(v) for k, v in st.loss_terms.items()})
            self.logger.log(rec)

    def _set_lr(self) -> None:
        st = self.state
        factor = self._schedule.factor(st.step)
        for g, base in zip(st.optimizer.param_groups, self._base_lrs, strict=True):
            g["lr"] = base * factor
        st.lr = self._base_lrs[0] * factor if self._base_lrs else 0.0
        st.lr_factor = factor

    def _train_step(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor, int] | None:
        st, eng = self.state, self.engine
        x, y = batch[0].to(self.device, non_blocking=True), batch[1].to(self.device, non_blocking=True)
        st.inputs, st.targets, st.indices = x, y, batch[2]
        st.targets_soft = one_hot(y, st.num_classes)
        st.sample_weights, st.output_weights, st.loss_terms = None, None, {}
        st.skip_batch, st.outputs, st.loss = False, None, None
        self._set_lr()
        eng.run(Event.BATCH_START, st)
        if st.skip_batch:
            eng.run(Event.BATCH_END, st)
            return None
        saved = self._buffers() if self.cfg.on_nan == "skip_batch" else None
        with self.amp.autocast():  # fp32: a no-op; bf16/fp16: low-precision forward and loss
            st.outputs = self._fwd(x)
            eng.run(Event.AFTER_FORWARD, st)
            eng.run(Event.BEFORE_LOSS, st)
            st.loss = self._reduce_loss()
            eng.run(Event.AFTER_LOSS, st)
        if not bool(torch.isfinite(st.loss)):
            self._non_finite()
            if saved is not None:  # the skipped batch's forward must not leave NaN running statistics
                self._restore_buffers(saved)
            eng.run(Event.BATCH_END, st)
            return None
        st.optimizer.zero_grad(set_to_none=True)
        self.amp.backward(st.loss, st.optimizer)  # fp16: scaled backward, then unscaled gradients
        eng.run(Event.AFTER_BACKWARD, st)
        if self.cfg.grad_clip is not None:
            nn.utils.clip_grad_norm_(st.model.parameters(), self.cfg.grad_clip)
        eng.run(Event.BEFORE_STEP, st)
        if not self.amp.step(st.optimizer):  # fp16: a step with inf/NaN gradients is skipped
            st.count("amp_steps_skipped", 1)
        eng.run(Event.AFTER_STEP, st)
        eng.run(Event.BATCH_END, st)
        pred = st.final_outputs
        correct = (pred.detach().argmax(dim=-1) == y).sum()
        return st.loss.detach(), correct, y.numel()

    def _buffers(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Copies of the model's buffers (batch-norm statistics and counters) before a forward."""
        return [(b, b.detach().clone()) for b in self.state.model.buffers()]

    @staticmethod
    def _restore_buffers(saved: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        with torch.no_grad():
            for buf, copy_ in saved:
                buf.copy_(copy_)

    def _reduce_loss(self) -> torch.Tensor:
        st = self.state
        outs = st.outputs
        fn = st.loss_fn
        if not isinstance(outs, list | tuple):
            per = fn(outs, st.targets_soft)
            st.per_sample_loss = per
            return (per * st.sample_weights).mean() if st.sample_weights is not None else per.mean()
        weights = st.output_weights or [1.0] * len(outs)
        targets = st.targets_soft if isinstance(st.targets_soft, list) else [st.targets_soft] * len(outs)
        total = outs[0].new_zeros(())
        for w, o, t in zip(weights, outs, targets, strict=True):
            per = fn(o, t)
            total = total + w * ((per * st.sample_weights).mean() if st.sample_weights is not None else per.mean())
        st.per_sample_loss = per
        return total

    def _non_finite(self) -> None:
        st = self.state
        last = str(self.run_dir / "resume") if self.run_dir is not None and has_resume(self.run_dir / "resume") else "none yet"
        if self.cfg.on_nan == "skip_batch" and self._nan_skips < self.cfg.max_nan_skips:
            self._nan_skips += 1
            st.count("nan_batches_skipped", 1)
            self.logger.log({"event": "nan_skipped", "step": st.step, "epoch": st.epoch})
            return
        raise TrainingError(
            f"the loss became non-finite ({float(st.loss.detach())}) at step {st.step} (epoch {st.epoch}, batch "
            f"{st.batch_index}); last good checkpoint: {last}",
            fix="lower the learning rate, add grad_clip, or set on_nan: skip_batch; then run again with --resume",
        )

    def _interrupt(self, epoch: int, next_batch: int) -> None:
        where = self._save_resume(epoch, next_batch)
        if where is None and self.run_dir is not None:  # another rank (rank 0) writes it
            where = self.run_dir / "resume"
        self.logger.log({"event": "interrupted", "signal": self._signals.name, "epoch": epoch, "step": self.state.step})
        raise TrainingInterrupted(self._signals.name, self.state.step, where)

    def _track_best(self, epoch: int) -> None:
        acc = self.state.metrics.get("val_accuracy")
        if acc is None or not (acc > self._best["accuracy"]):
            return
        self._best["accuracy"], self._best["epoch"] = float(acc), epoch
        if self.cfg.restore_best:
            self._best["weights"] = copy.deepcopy(self.state.model.state_dict())

    def _finish(self, seconds: float) -> FitResult:
        st = self.state
        if self.cfg.restore_best and self._best.get("weights") is not None:
            shapes = {k: v.shape for k, v in st.model.state_dict().items()}
            if shapes == {k: v.shape for k, v in self._best["weights"].items()}:
                st.model.load_state_dict(self._best["weights"])
            else:  # a technique changed the structure at fit_end (physical pruning)
                self.logger.log({"event": "restore_best_skipped", "reason": "model structure changed at fit_end"})
        final = {f"val_{k}": v for k, v in self._evaluate().items()}
        metrics: dict[str, Any] = {**final, "train_seconds": seconds, "epochs_run": len(self.history),
                                   "best_val_accuracy": self._best["accuracy"] if self._best["epoch"] >= 0 else None,
                                   "best_epoch": self._best["epoch"], **st.counters}
        if self.history:
            metrics["train_accuracy"] = self.history[-1].get("train_accuracy")
        if self.amp.enabled:
            metrics.update({"precision": self.amp.precision, "amp_loss_scale": self.amp.scale})
        for tech in self.engine.techniques:
            metrics.update(tech.summary())
        st.model.eval()
        return FitResult(model=st.model, metrics=metrics, history=self.history)


def _epoch_line(rec: dict[str, Any], epochs: int) -> str:
    parts = [f"epoch {rec['epoch'] + 1}/{epochs}", f"loss {rec['train_loss']:.4f}",
             f"train acc {rec['train_accuracy']:.4f}"]
    if "val_accuracy" in rec:
        parts.append(f"val acc {rec['val_accuracy']:.4f}")
    parts.append(f"{rec['epoch_seconds']:.2f} s")
    return "  ".join(parts)

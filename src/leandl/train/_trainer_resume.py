"""The trainer's resume state: what is saved after each epoch (or on a stop signal) and how a
resumed :class:`leandl.train.trainer.Trainer` reads it back (model, optimizer, technique
states, RNG, counters, history, best epoch, AMP scaler, the batch to continue from)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from leandl.errors import TrainingError
from leandl.serialization import as_os_error
from leandl.train.resume import has_resume, load_resume, rng_state, save_resume, set_rng_state

__all__ = ["ResumeStateMixin", "non_finite_tensors"]


def non_finite_tensors(model: nn.Module) -> list[str]:
    """Names of the model's floating-point parameters and buffers that hold NaN or inf."""
    bad = []
    for name, value in model.state_dict().items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad.append(name)
    return bad


class ResumeStateMixin:
    """Saving and loading the resume state; mixed into the trainer, whose attributes it uses."""

    state: Any
    engine: Any
    amp: Any
    logger: Any
    run_dir: Path | None
    history: list[dict[str, Any]]
    _best: dict[str, Any]
    _nan_skips: int
    _resume_batch: int

    def _resume_tree(self, epoch: int, batch_index: int) -> dict[str, Any]:
        st = self.state
        return {
            "epoch": epoch, "batch_index": batch_index, "step": st.step,
            "model": st.model.state_dict(), "optimizer": st.optimizer.state_dict(),
            "techniques": [t.state_dict() for t in self.engine.techniques],
            "rng": rng_state(), "counters": dict(st.counters), "history": self.history,
            "best": {k: v for k, v in self._best.items() if v is not None},
            "metrics": dict(st.metrics), "nan_skips": self._nan_skips, "amp": self.amp.state_dict(),
        }

    def _save_resume(self, epoch: int, batch_index: int) -> Path | None:
        if self.run_dir is None or self.state.rank != 0:
            return None
        bad = non_finite_tensors(self.state.model)
        if bad:
            last = self.run_dir / "resume"
            raise TrainingError(
                f"non-finite values in {', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''} at step {self.state.step} "
                f"(epoch {epoch}); not saved, the last good checkpoint is "
                f"{last if has_resume(last) else 'none yet'}",
                fix="lower the learning rate or add grad_clip; then run again with --resume")
        try:
            return save_resume(self.run_dir / "resume", self._resume_tree(epoch, batch_index))
        except Exception as exc:
            err = as_os_error(exc)
            if err is None:
                raise
            raise TrainingError(
                f"could not write the resume checkpoint ({err.strerror or err})",
                where=str(self.run_dir / "resume"),
                fix="free disk space or make the run directory writable; the previous checkpoint is intact",
            ) from exc

    def _load_resume(self) -> int:
        st = self.state
        tree = load_resume(self.run_dir / "resume")
        st.model.load_state_dict(tree["model"])
        st.optimizer.load_state_dict(tree["optimizer"])
        if len(tree["techniques"]) != len(self.engine.techniques):
            raise TrainingError(
                f"the resume state holds {len(tree['techniques'])} technique states but this stage has "
                f"{len(self.engine.techniques)} techniques", where=str(self.run_dir / "resume"),
                fix="resume with the same recipe (the run directory's recipe.yaml) or start a new run")
        for tech, sd in zip(self.engine.techniques, tree["techniques"], strict=True):
            tech.load_state_dict(sd)
        set_rng_state(tree["rng"])
        st.step, st.counters, st.metrics = int(tree["step"]), dict(tree["counters"]), dict(tree["metrics"])
        self.history = list(tree["history"])
        self._best.update(tree["best"])
        self._nan_skips = int(tree["nan_skips"])
        if "amp" in tree:
            self.amp.load_state_dict(tree["amp"])
        self._resume_batch = int(tree["batch_index"])
        self.logger.log({"event": "resumed", "epoch": int(tree["epoch"]), "step": st.step})
        return int(tree["epoch"])

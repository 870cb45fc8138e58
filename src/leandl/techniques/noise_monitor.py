"""Noise monitor: how much of the label noise the model has fitted (memorised) or corrected.

What: with synthetic label noise (``data.noise``) the clean labels are known. After each epoch
(and at the end of the fit) the model predicts every training input in eval mode, without
augmentation, and the monitor reports

- ``clean_train_accuracy``: share of train samples predicted as their *clean* label;
- ``memorised``: share of the noisy samples (noisy label != clean label) predicted as their
  *noisy* label, i.e. the wrong label was fitted (Arpit et al.'s memorisation);
- ``corrected``: share of the noisy samples predicted as their *clean* label;
- ``noisy_train_accuracy``: agreement with the labels actually trained on.

When: added automatically by the train stage when the recipe sets ``data.noise``; usable by hand
as ``NoiseMonitor(clean_targets=..., noisy_targets=..., dataset=...)`` in any Trainer.
Cost: one forward pass over the training split per monitored epoch (``every`` epochs).
Per epoch the numbers are added to the epoch record in ``metrics.jsonl`` (through the state's
metrics at ``eval_end``) and the final ones to the stage summary. It runs last (``order`` 100)
so that a technique swapping weights at ``fit_end`` (SWA) is measured after the swap.
Reference: the memorisation measure of the IMAE / DM papers (arXiv 1903.12141, 1905.11233).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from leandl.registry import TECHNIQUES
from leandl.train.state import State
from leandl.train.technique import Technique

__all__ = ["noise_metrics", "predict_labels", "NoiseMonitor"]


def noise_metrics(pred: Tensor, clean: Tensor, noisy: Tensor) -> dict[str, float]:
    """Clean accuracy, memorisation and correction of predicted labels.

    Args:
        pred: ``(N,)`` predicted classes.
        clean: ``(N,)`` clean labels.
        noisy: ``(N,)`` labels trained on.

    Returns:
        ``clean_train_accuracy = mean(pred == clean)``, ``noisy_train_accuracy = mean(pred ==
        noisy)``, and over ``M = {i: noisy_i != clean_i}``: ``memorised = mean_M(pred == noisy)``,
        ``corrected = mean_M(pred == clean)`` (0 when ``M`` is empty).
    """
    pred, clean, noisy = pred.reshape(-1).cpu(), clean.reshape(-1).cpu(), noisy.reshape(-1).cpu()
    m = noisy != clean
    n_noisy = int(m.sum())
    return {
        "clean_train_accuracy": float((pred == clean).float().mean()),
        "noisy_train_accuracy": float((pred == noisy).float().mean()),
        "memorised": float((pred[m] == noisy[m]).float().mean()) if n_noisy else 0.0,
        "corrected": float((pred[m] == clean[m]).float().mean()) if n_noisy else 0.0,
    }


def _plain(dataset: Any) -> Any:
    """The split without random augmentation (a copy of an in-memory split with ``augment=None``)."""
    if getattr(dataset, "augment", None) is None:
        return dataset
    import copy

    plain = copy.copy(dataset)
    plain.augment = None
    plain._table = None
    return plain


@torch.no_grad()
def predict_labels(model: nn.Module, dataset: Any, device: torch.device | str = "cpu",
                   batch_size: int = 512) -> tuple[Tensor, Tensor]:
    """``(predicted classes, sample indices)`` of ``dataset`` in eval mode, no augmentation."""
    from leandl.data import make_loader

    was = model.training
    model.eval()
    preds, idxs = [], []
    try:
        for batch in make_loader(_plain(dataset), batch_size, shuffle=False):
            out = model(batch[0].to(device))
            out = out[-1] if isinstance(out, list | tuple) else out
            preds.append(out.argmax(dim=-1).cpu())
            idxs.append(torch.as_tensor(batch[2]).reshape(-1).cpu())
    finally:
        model.train(was)
    return torch.cat(preds), torch.cat(idxs)


@TECHNIQUES.register("noise_monitor")
class NoiseMonitor(Technique):
    """Reports clean-train accuracy, memorised and corrected shares of the noisy labels.

    Args:
        data: a bundle from :func:`leandl.data.noise.apply_noise` (gives the three below).
        clean_targets / noisy_targets / dataset: alternatively the labels and the train split.
        every: monitor every N epochs (the final model is always measured).
    """

    name = "noise_monitor"
    order = 100

    def __init__(self, data: Any = None, *, clean_targets: Any = None, noisy_targets: Any = None,
                 dataset: Any = None, every: int = 1) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        if data is not None:
            clean_targets = getattr(data, "clean_train_targets", None)
            noisy_targets = getattr(data, "noisy_train_targets", None)
            dataset = data.train
        if clean_targets is None or noisy_targets is None or dataset is None:
            raise ValueError("noise_monitor needs a noisy data bundle (data.noise set) or "
                             "clean_targets, noisy_targets and dataset")
        self.clean = torch.as_tensor(clean_targets).to(torch.int64).reshape(-1)
        self.noisy = torch.as_tensor(noisy_targets).to(torch.int64).reshape(-1)
        self.dataset = dataset
        self.every = int(every)
        self.last: dict[str, float] = {}
        self.history: list[dict[str, float]] = []

    def measure(self, state: State) -> dict[str, float]:
        """Predict the whole train split and compute :func:`noise_metrics`."""
        pred, idx = predict_labels(state.model, self.dataset, state.device)
        self.last = noise_metrics(pred, self.clean[idx], self.noisy[idx])
        return self.last

    def epoch_end(self, state: State) -> None:
        if (state.epoch + 1) % self.every == 0:
            self.history.append({"epoch": state.epoch, **self.measure(state)})

    def eval_end(self, state: State) -> None:
        if self.history and self.history[-1]["epoch"] == state.epoch:
            state.metrics.update({k: v for k, v in self.history[-1].items() if k != "epoch"})

    def fit_end(self, state: State) -> None:
        self.measure(state)

    def state_dict(self) -> dict[str, Any]:
        return {"history": list(self.history)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = list(state.get("history", []))

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.last)
        if self.history:
            out["memorised_by_epoch"] = [h["memorised"] for h in self.history]
            out["clean_train_accuracy_by_epoch"] = [h["clean_train_accuracy"] for h in self.history]
        return out

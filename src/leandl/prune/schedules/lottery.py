"""Lottery-ticket rewinding and "train the pruned architecture from scratch" baselines.

Weight rewinding (IMP with rewinding): train the dense network and store its weights
``theta_k`` after ``k`` optimizer steps (``rewind_point`` technique; ``k = 0`` is the original
lottery ticket, the initialisation). After pruning, the survivors are reset to ``theta_k``
(structured: the dense ``theta_k`` is cut by replaying the pruned model's structural edits;
unstructured: weights that are zero in the pruned model stay zero and are held at zero while
retraining) and the ticket is retrained with the original schedule.

From scratch (Liu et al.): re-initialise the pruned architecture and train it for
``Scratch-E`` = ``E`` epochs (as many as the large model) or ``Scratch-B`` = the same compute,

    E_B = min(cap * E, round(E * MACs_full / MACs_pruned)),   cap = 2 by default.

Recipes ask for them with the ``retrain`` stage after a ``prune`` stage (and ``rewind_point``
in the dense ``train`` stage for rewinding)::

    - {kind: train, epochs: 30, techniques: [{name: rewind_point, step: 50}]}
    - {kind: prune, criterion: l1, target: {macs: 0.5}}
    - {kind: retrain, init: rewind}          # or init: scratch, budget: E | B

When: always, as the baseline a pruning method must beat (Liu et al. found structured
pruning + fine-tuning often no better than Scratch-B). Cost: a full retraining.
Papers: Frankle & Carbin, "The Lottery Ticket Hypothesis", arXiv 1803.03635; Frankle et al.,
"Linear Mode Connectivity and the Lottery Ticket Hypothesis" (rewinding), arXiv 1912.05671;
Liu et al., "Rethinking the Value of Network Pruning", arXiv 1810.05270.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from leandl.registry import TECHNIQUES
from leandl.train.state import State
from leandl.train.technique import Technique

__all__ = ["REWIND_ATTR", "scratch_epochs", "reinitialize_", "rewound_model_state", "zero_masks",
           "RewindPoint", "HoldZeros"]

REWIND_ATTR = "_leandl_rewind"


def scratch_epochs(epochs: int, macs_full: float, macs_pruned: float, budget: str = "B", cap: float = 2.0) -> int:
    """Epochs of a from-scratch baseline: ``E`` (Scratch-E) or ``min(cap E, round(E F / F_p))`` (Scratch-B)."""
    if budget == "E":
        return epochs
    if budget != "B":
        raise ValueError(f"budget must be 'E' or 'B', got {budget!r}")
    if macs_pruned <= 0 or macs_full <= 0:
        raise ValueError("MACs must be > 0")
    return int(min(math.floor(cap * epochs), round(epochs * macs_full / macs_pruned)))


def reinitialize_(model: nn.Module, seed: int = 0) -> int:
    """Re-initialise every module with ``reset_parameters`` (PyTorch's default init); returns the count."""
    torch.manual_seed(seed)
    n = 0
    for mod in model.modules():
        reset = getattr(mod, "reset_parameters", None)
        if callable(reset):
            reset()
            n += 1
    return n


def zero_masks(model: nn.Module) -> dict[str, Tensor]:
    """Keep-masks ``w != 0`` of every Conv/Linear weight that has exact zeros (unstructured pruning)."""
    from leandl.prune.unstructured import prunable_weights

    return {k: w.detach() != 0 for k, w in prunable_weights(model).items() if bool((w == 0).any())}


def rewound_model_state(pruned: nn.Module, dense_state: dict[str, Tensor]) -> dict[str, Tensor]:
    """``theta_k`` cut to the pruned architecture: rebuild the dense model, load, replay the edits."""
    from leandl.errors import ModelError
    from leandl.models import create_model
    from leandl.spec import get_edits, get_spec, replay_edits

    spec = get_spec(pruned)
    if spec is None:
        raise ModelError("weight rewinding needs a model built by leandl (it has no build spec)",
                         where=type(pruned).__name__, fix="use init: scratch for models built outside leandl")
    dense = create_model(spec["name"], **spec["kwargs"])
    dense.load_state_dict(dense_state)
    edits = [e for e in get_edits(pruned) if e.get("kind") == "prune_units"]
    return replay_edits(dense, edits).state_dict()


@TECHNIQUES.register("rewind_point")
class RewindPoint(Technique):
    """Store the weights after ``step`` optimizer steps for lottery-ticket rewinding (arXiv 1912.05671)."""

    name = "rewind_point"
    order = 90

    def __init__(self, step: int = 0) -> None:
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        self.step = step
        self.weights: dict[str, Tensor] | None = None

    def _store(self, state: State) -> None:
        self.weights = {k: v.detach().cpu().clone() for k, v in state.model.state_dict().items()}

    def fit_start(self, state: State) -> None:
        if self.step == 0 and self.weights is None:
            self._store(state)

    def after_step(self, state: State) -> None:
        if self.weights is None and state.step + 1 == self.step:
            self._store(state)

    def fit_end(self, state: State) -> None:
        if self.weights is None:
            self._store(state)
        object.__setattr__(state.model, REWIND_ATTR, {"step": self.step, "weights": self.weights})

    def state_dict(self) -> dict[str, Any]:
        return {"weights": self.weights}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.weights = state["weights"]

    def summary(self) -> dict[str, Any]:
        return {"rewind_step": self.step}


class HoldZeros(Technique):
    """Re-apply fixed keep-masks after every optimizer step (an unstructured ticket stays sparse)."""

    name = "hold_zeros"
    order = 40

    def __init__(self, masks: dict[str, Tensor]) -> None:
        self.masks = masks

    def after_step(self, state: State) -> None:
        from leandl.prune.unstructured import apply_masks_

        apply_masks_(state.model, self.masks)

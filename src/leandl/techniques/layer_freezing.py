"""Progressive layer freezing, FreezeOut style (Brock, Lim, Ritchie, Weston, arXiv 1706.04983).

What: the blocks of the network (see :func:`leandl.techniques.selective_layer_update.model_units`)
are frozen one after another, front to back. Block ``i`` of ``L`` freezes once the training
progress ``t = step / max_steps`` reaches

    ``t_i = s(t_0 + (1 - t_0) * i / (L - 1))``,   ``s(x) = x`` (linear) or ``x**3`` (cubic),

as in FreezeOut's schedule; the last block (the classifier head) has ``t_{L-1} = 1`` and trains
to the end. A frozen block keeps ``requires_grad=False`` (set *before* the forward), so its
weight gradients are never computed, and because frozen blocks form a prefix of the network the
backward pass stops at the first trainable block (no input gradients below it, no saved
activations). A frozen block's batch-norm layers switch to their running statistics and stop
updating them, so a frozen block is a fixed function.
Learning rate (``anneal=True``, FreezeOut's layer-wise schedule): block ``i`` steps with
learning rate

    ``c_i * min(lr(t), lr_0 * (1 + cos(pi * t / t_i)) / 2)``,   ``c_i = 1 / t_i`` if ``scale_lr`` else 1,

where ``lr(t)`` is the trainer's scheduled rate and ``lr_0`` its base rate: a cosine that reaches 0
exactly when the block freezes (no jump), never above the trainer's rate (warm-up still
applies). With the trainer's ``cosine`` (whose curve lies above the compressed one) or
``constant`` schedule this is exactly FreezeOut's per-layer schedule; with ``scale_lr`` the area
under a block's curve matches a block that trains to the end. The head (``t_i = 1``) follows the
trainer's schedule. The rate is applied by scaling each step's update
(``p <- p_old + m (p_new - p_old)``, ``m`` the ratio to the trainer's rate), which for SGD
(momentum, weight decay), Adam and AdamW equals stepping with that rate, without splitting the
optimizer's parameter groups.
Cost saved: per trained sample ``sum_{frozen} F_b`` weight-gradient MACs plus, for the default
blocks (a prefix of the model), the input-gradient MACs of the frozen prefix except those of the
model's first conv/linear layer (which the baseline never computes either):
``backward_macs_saved = 2 F_prefix - F_first``. Counter ``backward_macs_saved`` (MACs) goes to
``metrics.jsonl``; the summary reports the fraction of baseline backward MACs (``2 F N``) saved.
Hyper-parameters: ``t0`` in (0, 1] (FreezeOut uses 0.5-0.8; 1 disables freezing), ``scale``
(``linear`` or ``cubic``), ``anneal`` and ``scale_lr`` (FreezeOut's "unscaled linear" is the
default here; its code defaults to scaled cubic), ``layers`` (explicit blocks in forward order).
Interactions: every block is trainable again at ``fit_end`` so later stages start unfrozen.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from torch import nn

from leandl.registry import TECHNIQUES
from leandl.techniques.selective_layer_update import model_units, set_trainable_, unit_forward_macs
from leandl.train.state import State
from leandl.train.technique import Technique

__all__ = ["freeze_times", "frozen_prefix", "lr_multiplier", "LayerFreezing"]

_SCALES = ("linear", "cubic")


def freeze_times(num_units: int, t0: float, scale: str = "linear") -> list[float]:
    """FreezeOut freeze time (fraction of training) of each of ``num_units`` blocks.

    ``t_i = s(t0 + (1 - t0) * i / (L - 1))``; the last block gets 1 (never frozen).

    Example:
        >>> freeze_times(3, 0.5)
        [0.5, 0.75, 1.0]
    """
    if not 0.0 < t0 <= 1.0:
        raise ValueError(f"t0 must be in (0, 1], got {t0}")
    if scale not in _SCALES:
        raise ValueError(f"scale must be one of {_SCALES}, got {scale!r}")
    if num_units <= 1:
        return [1.0] * num_units
    times = [t0 + (1.0 - t0) * i / (num_units - 1) for i in range(num_units)]
    return [t**3 if scale == "cubic" else t for t in times]


def frozen_prefix(times: list[float], progress: float) -> int:
    """Number of leading blocks whose freeze time is <= ``progress`` (blocks with time 1 never freeze)."""
    n = 0
    for t in times:
        if t >= 1.0 or progress < t:
            break
        n += 1
    return n


def lr_multiplier(progress: float, t_i: float, scale_lr: bool = False, schedule_factor: float = 1.0) -> float:
    """Block learning rate / trainer learning rate for a block with freeze time ``t_i``.

    ``c * min(1, (1 + cos(pi * progress / t_i)) / 2 / schedule_factor)`` before ``t_i``, with
    ``c = 1 / t_i`` under ``scale_lr`` (else 1) and ``schedule_factor`` the trainer's rate over its
    base rate; 0 from ``t_i`` on; 1 for a block that never freezes (``t_i >= 1``).

    Example:
        >>> lr_multiplier(0.25, 0.5), lr_multiplier(0.25, 0.5, scale_lr=True), lr_multiplier(0.6, 0.5)
        (0.5, 1.0, 0.0)
    """
    if t_i >= 1.0:
        return 1.0
    if progress >= t_i:
        return 0.0
    c = 1.0 / t_i if scale_lr else 1.0
    cos = 0.5 * (1.0 + math.cos(math.pi * progress / t_i))
    return c * (min(1.0, cos / schedule_factor) if schedule_factor > 0 else 1.0)


def _first_compute_macs(model: nn.Module, example: Any) -> int:
    """Forward MACs per sample of the model's first conv/linear layer (registration order)."""
    from leandl.measure import count_macs

    per_module = count_macs(model, example[:1]).per_module
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.conv._ConvNd | nn.Linear) and per_module.get(name, 0) > 0:
            return per_module[name]
    return 0


def _freeze_norm_stats_(module: nn.Module) -> None:
    """Batch-norm layers of a frozen block stop updating their running statistics."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


@TECHNIQUES.register("layer_freezing")
class LayerFreezing(Technique):
    """Freeze blocks front to back on a FreezeOut schedule (arXiv 1706.04983)."""

    name = "layer_freezing"
    order = -40

    def __init__(self, t0: float = 0.5, scale: str = "linear", layers: list[str] | None = None,
                 anneal: bool = True, scale_lr: bool = False) -> None:
        if not 0.0 < t0 <= 1.0:
            raise ValueError(f"t0 must be in (0, 1], got {t0}")
        if scale not in _SCALES:
            raise ValueError(f"scale must be one of {_SCALES}, got {scale!r}")
        self.t0, self.scale, self.layers = t0, scale, layers
        self.anneal, self.scale_lr = bool(anneal), bool(scale_lr)
        self._before: list[tuple[float, list[torch.Tensor], list[torch.Tensor]]] = []
        self.units: list[tuple[str, nn.Module]] = []
        self.times: list[float] = []
        self.prefix_saved: list[int] = []  # backward MACs/sample saved with the first k blocks frozen
        self.forward_macs = 0
        self.samples_trained = 0
        self.macs_saved = 0
        self.n_frozen = 0

    def fit_start(self, state: State) -> None:
        from leandl.measure import count_macs
        from leandl.techniques.minibatch_dropping import first_batch_inputs

        self.units = model_units(state.model, self.layers)
        self.times = freeze_times(len(self.units), self.t0, self.scale)
        example = first_batch_inputs(state.train_loader, state.device)
        macs = unit_forward_macs(state.model, example, [n for n, _ in self.units])
        self.forward_macs = int(count_macs(state.model, example[:1]).total)
        first = _first_compute_macs(state.model, example) if self.layers is None else 0
        self.prefix_saved, acc = [0], 0
        for name, _ in self.units:
            acc += macs[name]
            both = 2 * acc - first if self.layers is None else acc  # input grads only for a true prefix
            self.prefix_saved.append(max(both, acc))

    def batch_start(self, state: State) -> None:
        if state.skip_batch:
            return
        k = frozen_prefix(self.times, state.progress)
        if k != self.n_frozen:
            for i, (_, module) in enumerate(self.units):
                set_trainable_(module, i >= k)
            self.n_frozen = k
        for _, module in self.units[:k]:  # the trainer puts the model in train mode each epoch
            _freeze_norm_stats_(module)
        batch = int(state.inputs.shape[0])
        self.samples_trained += batch
        saved = batch * self.prefix_saved[k]
        self.macs_saved += saved
        if saved:
            state.count("backward_macs_saved", saved)

    def before_step(self, state: State) -> None:
        """Remember the trainable parameters of every block whose multiplier is not 1."""
        self._before = []
        if not self.anneal:
            return
        for i, (_, module) in enumerate(self.units[self.n_frozen:], start=self.n_frozen):
            m = lr_multiplier(state.progress, self.times[i], self.scale_lr, state.lr_factor)
            params = [p for p in module.parameters() if p.requires_grad]
            if m != 1.0 and params:
                self._before.append((m, params, [p.detach().clone() for p in params]))

    def after_step(self, state: State) -> None:
        """Scale each remembered block's update by its multiplier: ``p = old + m (p - old)``."""
        with torch.no_grad():
            for m, params, old in self._before:
                for p, o in zip(params, old, strict=True):
                    p.lerp_(o, 1.0 - m)
        self._before = []

    def fit_end(self, state: State) -> None:
        for _, module in self.units:
            set_trainable_(module, True)
        self.n_frozen = 0

    def state_dict(self) -> dict[str, Any]:
        return {"samples_trained": self.samples_trained, "macs_saved": self.macs_saved}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.samples_trained = int(state["samples_trained"])
        self.macs_saved = int(state["macs_saved"])

    def summary(self) -> dict[str, Any]:
        baseline = 2 * self.forward_macs * self.samples_trained
        return {"freeze_units": len(self.units), "freeze_times": list(self.times), "freeze_anneal": self.anneal,
                "freeze_backward_fraction_saved": self.macs_saved / baseline if baseline else 0.0}

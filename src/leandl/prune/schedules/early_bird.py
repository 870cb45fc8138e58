"""Early-Bird tickets: stop dense training as soon as the channel mask stops changing.

What: train with a BN-gamma L1 penalty (the ``l1_bn`` technique). At the start of every epoch
(here: at the end of the previous one, the same weights) take the network-slimming mask

    m_c = |gamma_c| > q,   q = the sorted |gamma| over all prunable BN channels at index
    floor(p * N)   (p = ``ratio``, the fraction of channels to prune),

push it into a FIFO of ``queue`` (5) masks and, once the FIFO is full, compute the normalised
Hamming distance of the newest mask to each older one, ``d = 1 - #equal / #channels``. When
every ``d <= epsilon`` (0.1) the early-bird ticket has emerged: dense training stops
(``state.stop``), the mask is kept as ``{group name: kept unit indices}`` and handed to the next
``prune`` stage (``summary()["early_bird_keep"]`` -> ``artifacts["prune_keep"]``), which cuts the
ticket out; a following ``train`` stage trains the ticket ("EB Train").

Savings: dense epochs run ``E_eb`` of ``E`` planned; the training MACs saved are
``(E - E_eb) * 3 * forward MACs per sample * training samples`` (forward + backward ~= 3 x
forward), reported as a fraction ``1 - E_eb / E`` and as a count.

When: a large-LR dense training whose only purpose is to find which channels to keep.
Cost: one sort over the BN gammas per epoch. Hyper-parameters: ``ratio`` (0.3/0.5/0.7 in the
paper), ``queue`` (5), ``epsilon`` (0.1). Interactions: needs BatchNorm after the prunable
layers and the ``l1_bn`` sparsity technique (s = 1e-4) to separate the gammas; groups
without BatchNorm are not part of the mask. The distance is global, so small layers barely
count (paper's pitfall). A ticket found at the very first full FIFO means the masks were
stable from the start (e.g. a pretrained network): check the ratio is what you want.

Low-precision search ("EB Train LL"): the paper also searches with 8-bit SWALP training.
``precision: bf16`` (or ``fp16``) runs the dense search stage under mixed-precision autocast
(:mod:`leandl.train.amp`) whatever the stage's own ``precision`` says; the mask is still taken
from the fp32 BN gammas. This is a substitution: bf16/fp16 autocast, not SWALP's 8-bit
block-floating-point weights, activations and gradients with stochastic rounding.
Paper: You et al., "Drawing Early-Bird Tickets: Towards More Efficient Training of Deep
Networks", ICLR 2020, arXiv 1909.11957.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import torch
from torch import Tensor

from leandl.prune.schedules import _masks as M
from leandl.registry import TECHNIQUES
from leandl.train.state import State
from leandl.train.technique import Technique

__all__ = ["slimming_masks", "mask_distance", "ticket_emerged", "EarlyBird"]


def slimming_masks(gammas: dict[str, Tensor], ratio: float) -> dict[str, Tensor]:
    """Global-threshold keep-masks ``|gamma| > sorted(|gamma|)[floor(ratio * N)]``.

    Every group keeps at least its largest-``|gamma|`` unit.
    """
    names = list(gammas)
    flat = torch.cat([gammas[k].abs().flatten() for k in names])
    idx = min(int(math.floor(ratio * flat.numel())), flat.numel() - 1)
    thr = torch.sort(flat).values[idx]
    out = {}
    for k in names:
        g = gammas[k].abs()
        m = g > thr
        if not bool(m.any()):
            m[int(torch.argmax(g))] = True
        out[k] = m
    return out


def mask_distance(a: dict[str, Tensor], b: dict[str, Tensor]) -> float:
    """Normalised Hamming distance ``1 - #equal / #channels`` between two mask dicts."""
    total = sum(a[k].numel() for k in a)
    equal = sum(int((a[k] == b[k]).sum()) for k in a)
    return 1.0 - equal / total if total else 0.0


def ticket_emerged(queue: list[dict[str, Tensor]], size: int, epsilon: float) -> tuple[bool, float]:
    """(found, max distance): the FIFO is full and the newest mask is within ``epsilon`` of all others."""
    if len(queue) < size:
        return False, math.inf
    dists = [mask_distance(queue[-1], older) for older in queue[:-1]]
    worst = max(dists) if dists else 0.0
    return worst <= epsilon, worst


@TECHNIQUES.register("early_bird")
class EarlyBird(Technique):
    """Early-bird ticket search: stop dense training when the BN-gamma mask settles (arXiv 1909.11957)."""

    name = "early_bird"
    order = 60  # after the l1_bn subgradient and any weight averaging

    def __init__(self, ratio: float = 0.5, queue: int = 5, epsilon: float = 0.1, stop: bool = True,
                 ignored_layers: list[str] | None = None, precision: str | None = None) -> None:
        from leandl.train.config import PRECISIONS

        if precision is not None and precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS} or null, got {precision!r}")
        self.precision = precision
        M.check_fraction("ratio", ratio)
        M.check_fraction("epsilon", epsilon, high_open=False)
        if queue < 2:
            raise ValueError(f"queue must hold >= 2 masks, got {queue}")
        self.ratio, self.queue_size, self.epsilon, self.stop = ratio, queue, epsilon, stop
        self.ignored = list(ignored_layers) if ignored_layers is not None else None
        self.queue: deque[dict[str, Tensor]] = deque(maxlen=queue)
        self.distances: list[float] = []
        self.found_epoch: int | None = None
        self.ticket: dict[str, Tensor] = {}
        self.dense_epochs = 0
        self.planned_epochs = 0
        self.forward_macs = 0
        self.samples = 0
        self._groups: list[Any] = []

    def fit_start(self, state: State) -> None:
        from leandl.measure import count_macs
        from leandl.prune.schedules._defaults import default_ignored

        if self.precision is not None:
            state.precision = self.precision  # the trainer builds its autocast after fit_start
        example = M.example_batch(state)
        ignored = self.ignored if self.ignored is not None else default_ignored(state.model)
        groups = M.discover_groups(state.model, example, ignored)
        self._groups = [g for g in groups if M.bn_gamma(state.model, g) is not None]
        if not self._groups:
            from leandl.errors import ModelError

            raise ModelError("early_bird needs BatchNorm layers after the prunable layers; none found",
                             where=type(state.model).__name__,
                             fix="use a model with BatchNorm (e.g. mnist1d_cnn, resnet20) or another schedule")
        self.planned_epochs = state.max_epochs
        self.forward_macs = count_macs(state.model, example[:1]).total
        self.samples = _dataset_len(state)

    def epoch_end(self, state: State) -> None:
        self.dense_epochs = state.epoch + 1
        if self.found_epoch is not None:
            return
        gammas = {g.name: M.bn_gamma(state.model, g) for g in self._groups}
        mask = slimming_masks(gammas, self.ratio)
        self.queue.append(mask)
        self.ticket = mask
        found, worst = ticket_emerged(list(self.queue), self.queue_size, self.epsilon)
        self.distances.append(worst if math.isfinite(worst) else -1.0)
        if found:
            self.found_epoch = state.epoch + 1
            if self.stop:
                state.stop = True
                state.stop_reason = f"early-bird ticket found after {self.found_epoch} epochs"

    def train_macs_saved(self) -> tuple[float, float]:
        """(fraction, count) of planned dense-training MACs not spent (3 x forward x samples per epoch)."""
        if not self.planned_epochs:
            return 0.0, 0.0
        per_epoch = 3.0 * self.forward_macs * self.samples
        saved_epochs = self.planned_epochs - self.dense_epochs
        return saved_epochs / self.planned_epochs, saved_epochs * per_epoch

    def state_dict(self) -> dict[str, Any]:
        return {"queue": list(self.queue), "distances": list(self.distances), "found_epoch": self.found_epoch,
                "ticket": dict(self.ticket), "dense_epochs": self.dense_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.queue = deque(state["queue"], maxlen=self.queue_size)
        self.distances = list(state["distances"])
        self.found_epoch = state["found_epoch"]
        self.ticket = dict(state["ticket"])
        self.dense_epochs = int(state["dense_epochs"])

    def summary(self) -> dict[str, Any]:
        frac, count = self.train_macs_saved()
        total = sum(m.numel() for m in self.ticket.values())
        kept = sum(int(m.sum()) for m in self.ticket.values())
        return {
            "early_bird_found": self.found_epoch is not None,
            "early_bird_precision": self.precision or "stage",
            "early_bird_epoch": self.found_epoch,
            "early_bird_keep": M.keep_indices(self.ticket),
            "early_bird_channels_kept": kept, "early_bird_channels": total,
            "early_bird_dense_epochs": self.dense_epochs, "early_bird_planned_epochs": self.planned_epochs,
            "early_bird_last_distance": self.distances[-1] if self.distances else None,
            "early_bird_train_macs_saved_fraction": frac,
            "early_bird_train_macs_saved": count,
            "early_bird_train_macs_per_epoch": 3.0 * self.forward_macs * self.samples,
        }


def _dataset_len(state: State) -> int:
    ds = getattr(state.train_loader, "dataset", None)
    try:
        return len(ds) if ds is not None else state.steps_per_epoch
    except TypeError:
        return state.steps_per_epoch

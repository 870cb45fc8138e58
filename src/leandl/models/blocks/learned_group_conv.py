"""CondenseNet's learned group convolution (Huang, Liu, van der Maaten, Weinberger; CVPR 2018, arXiv 1711.09224).

What: a 1x1 convolution (after BN-ReLU) whose ``out_channels`` filters are split into ``G``
groups by interleaving (filter ``o`` belongs to group ``o mod G``); during training each group
*learns* which ``1/C`` of the input channels it keeps (``C`` = condensation factor):

1. The first half of training is split into ``C - 1`` condensing stages; stage ``s`` is the first
   ``i`` with ``2 * progress < (i + 1) / (C - 1)`` (``C - 1`` once progress >= 1/2).
2. Entering stage ``s`` drops, in every group ``g``, the ``in / C`` not-yet-dropped input columns
   ``j`` with the lowest importance ``sum_{o in g} |W[o, j]|`` (the mask ``M[g::G, j] = 0``).
3. After ``C - 1`` stages each group keeps ``in / C`` inputs; the second half trains with that
   fixed mask. An optional group lasso ``lambda * sum_g sum_j sqrt(sum_{o in g} W[o, j]^2)``
   (1e-5 on ImageNet, 0 on CIFAR in the paper) pushes whole columns to zero before they are cut.
4. Conversion (:func:`condense_model`): each layer becomes an index layer that gathers every
   group's kept inputs, the preceding BN restricted to the gathered channels, a real
   ``Conv2d(groups=G)`` with ``in * G / C`` inputs, and a channel shuffle that restores the
   interleaved output order, so the result computes the same function at ``1/C`` of the MACs.

The :class:`Condense` technique (``learned_group_conv`` in recipes) feeds the training progress to
every :class:`LearnedGroupConv`, adds the group lasso and converts at ``fit_end``; the conversion
is a ``condense`` structural edit, so checkpoints reload. :func:`condensenet_tiny` is a small
CondenseNet-style model (dense blocks of learned-group 1x1 + group 3x3 layers, growth doubling
per block) for 8x8 digits and similar inputs.

Defaults: ``G = C = 4`` as in the paper's code. Cost: a masked dense 1x1 conv while training
(no saving until conversion); the gather at inference costs memory bandwidth.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from leandl.models._common import Backbone, ClassifierHead, check_input_shape
from leandl.registry import EDITS, MODELS, TECHNIQUES
from leandl.spec import add_edit
from leandl.train.state import State
from leandl.train.technique import Technique

__all__ = ["condense_stage", "LearnedGroupConv", "CondensedGroupConv", "condense_model", "Condense",
           "CondenseNetTiny", "condensenet_tiny"]


def condense_stage(progress: float, condense_factor: int) -> int:
    """Condensing stage (0 .. C-1) at a training progress in [0, 1]: ``s`` inputs/C dropped per group."""
    for i in range(condense_factor - 1):
        if progress * 2 < (i + 1) / (condense_factor - 1):
            return i
    return condense_factor - 1


class LearnedGroupConv(nn.Module):
    """BN-ReLU-1x1 conv whose ``groups`` learn which ``1/condense_factor`` of the inputs to keep."""

    def __init__(self, in_channels: int, out_channels: int, groups: int = 4, condense_factor: int = 4) -> None:
        super().__init__()
        if groups < 1 or out_channels % groups:
            raise ValueError(f"out_channels ({out_channels}) must be a multiple of groups ({groups})")
        if condense_factor < 2 or in_channels % condense_factor:
            raise ValueError(f"in_channels ({in_channels}) must be a multiple of condense_factor "
                             f"({condense_factor}) >= 2")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.groups, self.condense_factor = groups, condense_factor
        self.norm = nn.BatchNorm2d(in_channels)
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.register_buffer("mask", torch.ones(out_channels, in_channels))

    def forward(self, x: Tensor) -> Tensor:
        w = self.conv.weight * self.mask[:, :, None, None]
        return F.conv2d(F.relu(self.norm(x)), w)

    def dropped(self) -> int:
        """Input columns dropped per group so far."""
        return int((self.mask[0 :: self.groups].sum(0) == 0).sum())

    @torch.no_grad()
    def condense_to(self, progress: float) -> int:
        """Drop columns until the stage of ``progress`` is reached; returns the columns dropped now."""
        delta = self.in_channels // self.condense_factor
        target = condense_stage(progress, self.condense_factor) * delta
        done = 0
        while self.dropped() < target:
            w = (self.conv.weight[:, :, 0, 0] * self.mask).abs()
            for g in range(self.groups):
                importance = w[g :: self.groups].sum(0)  # (in,)
                alive = self.mask[g :: self.groups].sum(0) > 0
                importance = importance.masked_fill(~alive, float("inf"))
                drop = torch.argsort(importance, stable=True)[:delta]
                self.mask[g :: self.groups, drop] = 0.0
            done += delta
        return done

    def group_lasso(self) -> Tensor:
        """``sum_g sum_j sqrt(sum_{o in g} W[o, j]^2)`` over the kept columns."""
        w = (self.conv.weight[:, :, 0, 0] * self.mask).square()
        return sum(w[g :: self.groups].sum(0).clamp_min(1e-12).sqrt().sum() for g in range(self.groups))

    def kept_inputs(self) -> list[list[int]]:
        """Per group, the sorted input channels it keeps."""
        return [(self.mask[g :: self.groups].sum(0) > 0).nonzero().flatten().tolist() for g in range(self.groups)]


class CondensedGroupConv(nn.Module):
    """Index (gather) -> BN-ReLU -> ``Conv2d(groups=G)`` 1x1 -> channel shuffle: a converted layer."""

    def __init__(self, index: Sequence[int], out_channels: int, groups: int) -> None:
        super().__init__()
        self.register_buffer("index", torch.as_tensor(list(index), dtype=torch.long))
        self.groups = groups
        self.norm = nn.BatchNorm2d(len(index))
        self.conv = nn.Conv2d(len(index), out_channels, 1, bias=False, groups=groups)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(F.relu(self.norm(x.index_select(1, self.index))))
        n, c, h, w = y.shape  # (N, G * d, H, W) -> (N, d, G, H, W): output j*G+g came from g*d+j
        return y.view(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)

    @classmethod
    @torch.no_grad()
    def from_learned(cls, layer: LearnedGroupConv) -> CondensedGroupConv:
        """The converted layer, computing what ``layer`` computes (exactly in eval mode)."""
        kept = layer.kept_inputs()
        if len({len(k) for k in kept}) != 1:
            raise ValueError(f"groups keep different numbers of inputs {[len(k) for k in kept]}; "
                             "condense only after the condensing stages")
        index = [j for k in kept for j in k]
        new = cls(index, layer.out_channels, layer.groups)
        idx = new.index
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(new.norm, name).copy_(getattr(layer.norm, name)[idx])
        new.norm.num_batches_tracked.copy_(layer.norm.num_batches_tracked)
        G = layer.groups
        d = layer.out_channels // G
        w = layer.conv.weight[:, :, 0, 0]
        for g in range(G):
            rows = w[g::G][:, kept[g]]  # (d, k): group g's filters on its kept inputs
            new.conv.weight[g * d:(g + 1) * d, :, 0, 0] = rows
        return new.train(layer.training).to(layer.conv.weight.device)


def condense_model(model: nn.Module) -> nn.Module:
    """Replace every :class:`LearnedGroupConv` by its :class:`CondensedGroupConv` (logged as an edit)."""
    layers = {n: m.kept_inputs() for n, m in model.named_modules() if isinstance(m, LearnedGroupConv)}
    return apply_condense(model, {"kind": "condense", "layers": layers})


@EDITS.register("condense")
def apply_condense(model: nn.Module, edit: dict[str, Any]) -> nn.Module:
    """Replay a ``condense`` edit: convert the recorded layers with the recorded kept inputs."""
    from leandl.errors import ModelError

    for name, kept in edit["layers"].items():
        layer = dict(model.named_modules()).get(name)
        if not isinstance(layer, LearnedGroupConv) or len(kept) != layer.groups:
            raise ModelError(f"condense edit: '{name}' is not a learned group conv with {len(kept)} groups",
                             where=name, fix="load the checkpoint on the model the edit was recorded on")
        with torch.no_grad():  # rebuild the mask the edit describes, then convert
            layer.mask.zero_()
            for g, cols in enumerate(kept):
                layer.mask[g :: layer.groups, cols] = 1.0
        parent, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, attr, CondensedGroupConv.from_learned(layer))
    add_edit(model, edit)
    return model


@TECHNIQUES.register("learned_group_conv")
class Condense(Technique):
    """CondenseNet training: condensing stages over the first half, group lasso, convert at the end (arXiv 1711.09224)."""

    name = "learned_group_conv"
    changes_model = True

    def __init__(self, lasso: float = 0.0, convert: bool = True) -> None:
        if lasso < 0:
            raise ValueError(f"lasso must be >= 0, got {lasso}")
        self.lasso, self.convert = float(lasso), convert
        self.columns_dropped = 0

    def _layers(self, state: State) -> list[LearnedGroupConv]:
        return [m for m in state.model.modules() if isinstance(m, LearnedGroupConv)]

    def fit_start(self, state: State) -> None:
        if not self._layers(state):
            from leandl.errors import ModelError

            raise ModelError("learned_group_conv needs LearnedGroupConv layers; none found",
                             where=type(state.model).__name__, fix="use condensenet_tiny or a model built with them")

    def batch_start(self, state: State) -> None:
        for layer in self._layers(state):
            self.columns_dropped += layer.condense_to(state.progress)

    def after_loss(self, state: State) -> None:
        if self.lasso:
            state.add_loss_term("group_lasso", self.lasso * sum(m.group_lasso() for m in self._layers(state)))

    def fit_end(self, state: State) -> None:
        for layer in self._layers(state):
            layer.condense_to(1.0)
        if self.convert:
            state.model = condense_model(state.model)

    def state_dict(self) -> dict[str, Any]:
        return {"columns_dropped": self.columns_dropped}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.columns_dropped = int(state["columns_dropped"])

    def summary(self) -> dict[str, Any]:
        return {"condense_columns_dropped": self.columns_dropped}


class _DenseLayer(nn.Module):
    def __init__(self, cin: int, growth: int, bottleneck: int, groups: int, condense_factor: int) -> None:
        super().__init__()
        self.conv1 = LearnedGroupConv(cin, bottleneck * growth, groups, condense_factor)
        self.norm2 = nn.BatchNorm2d(bottleneck * growth)
        self.conv2 = nn.Conv2d(bottleneck * growth, growth, 3, padding=1, bias=False, groups=groups)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([x, self.conv2(F.relu(self.norm2(self.conv1(x))))], dim=1)


class CondenseNetTiny(Backbone):
    """Stem conv, dense blocks of learned-group layers (growth doubling per block), BN-ReLU, head."""

    _chain = ("stem", "blocks", "final")

    def __init__(self, in_channels: int, num_classes: int, stages: Sequence[int], growth: Sequence[int],
                 bottleneck: int = 4, groups: int = 4, condense_factor: int = 4, pool: bool = True) -> None:
        super().__init__()
        c = 2 * growth[0]
        self.stem = nn.Conv2d(in_channels, c, 3, padding=1, bias=False)
        blocks: list[nn.Module] = []
        points: list[str] = []
        for i, (n, k) in enumerate(zip(stages, growth, strict=True)):
            for _ in range(n):
                blocks.append(_DenseLayer(c, k, bottleneck, groups, condense_factor))
                c += k
            points.append(f"blocks.{len(blocks) - 1}")  # each dense block's last layer
            if i < len(stages) - 1 and pool:
                blocks.append(nn.AvgPool2d(2))
        self.blocks = nn.Sequential(*blocks)
        self.final = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU())
        self.head = ClassifierHead(c, num_classes)
        self.exit_points = tuple(points)


@MODELS.register("condensenet_tiny")
def condensenet_tiny(*, num_classes: int = 10, input_shape: Sequence[int] = (1, 8, 8), stages: Sequence[int] = (2, 2),
                     growth: Sequence[int] = (8, 16), bottleneck: int = 4, groups: int = 4,
                     condense_factor: int = 4) -> CondenseNetTiny:
    """Small CondenseNet (learned group convolutions, arXiv 1711.09224) for 8x8 digits; G = C = 4.

    Args:
        num_classes / input_shape: classes and one sample's (C, H, W).
        stages / growth: dense layers and growth rate per block (a 2x2 average pool between blocks).
        bottleneck: 1x1 width = bottleneck x growth. groups / condense_factor: G and C.
    """
    c, h, w = check_input_shape("condensenet_tiny", input_shape, ndim=2)
    if len(stages) != len(growth) or not stages:
        raise ValueError(f"stages {list(stages)} and growth {list(growth)} need the same non-zero length")
    return CondenseNetTiny(c, num_classes, stages, growth, bottleneck, groups, condense_factor,
                           pool=min(h, w) >= 2 ** (len(stages) - 1))

"""Shared machinery of the pruning schedules: channel-group masks during training.

A structured mask is ``{group name: bool tensor (size,)}`` with True = kept unit. Masks are
applied softly with :func:`leandl.prune.groups.zero_units_` (weights, bias, BN weight and
bias of the pruned units are zeroed, so a pruned unit emits exactly 0 and removal does not
change the function) and turned into a physically smaller model with
:func:`leandl.prune.groups.remove_units_`, which records the structural edit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from leandl.errors import ConfigError

__all__ = [
    "example_batch",
    "discover_groups",
    "criterion_scores",
    "bn_gamma",
    "prune_counts",
    "masks_from_scores",
    "apply_group_masks_",
    "zero_filters_",
    "masked_producers",
    "remove_masked",
    "keep_indices",
    "snapshot_units",
    "restore_units_",
    "check_fraction",
]


def check_fraction(name: str, value: float, *, low: float = 0.0, high: float = 1.0,
                   high_open: bool = True) -> None:
    """Raise ValueError unless ``low <= value < high`` (``<= high`` when not ``high_open``)."""
    ok = low <= value < high if high_open else low <= value <= high
    if not ok:
        bracket = ")" if high_open else "]"
        raise ValueError(f"{name} must be in [{low}, {high}{bracket}, got {value}")


def example_batch(state: Any, n: int = 2) -> Tensor:
    """A small input batch from the trainer's loader, for tracing the dependency groups."""
    batch = next(iter(state.train_loader))
    return batch[0][:n].to(state.device)


def discover_groups(model: nn.Module, example_inputs: Tensor, ignored_layers: Iterable[str] = ()) -> list[Any]:
    """``channel_groups`` traced in eval mode (so BN running statistics are untouched)."""
    from leandl.prune.groups import channel_groups

    was = model.training
    model.eval()
    try:
        groups = channel_groups(model, example_inputs, ignored_layers=tuple(ignored_layers))
    finally:
        model.train(was)
    if not groups:
        raise ConfigError("the model has no prunable channel group", where="ignored_layers",
                          fix="ignore fewer layers, or prune a model with Conv/Linear layers")
    return groups


def criterion_scores(model: nn.Module, groups: Sequence[Any], criterion: str,
                     batches: list[Any] | None = None) -> dict[str, Tensor]:
    """Importance (higher = more important) of every unit of every group, by a registered criterion."""
    from leandl.prune.criteria import get_criterion

    fn = get_criterion(criterion)
    with torch.no_grad() if batches is None else torch.enable_grad():
        return {g.name: fn(model, g, batches=batches).detach().float().cpu() for g in groups}


def bn_gamma(model: nn.Module, group: Any) -> Tensor | None:
    """Mean ``|gamma|`` over the group's BatchNorm producers, or None when it has none."""
    mods = dict(model.named_modules())
    vals = []
    for mod_name, pname, dim in group.producers:
        mod = mods[mod_name]
        if isinstance(mod, nn.modules.batchnorm._BatchNorm) and pname == "weight" and mod.weight is not None:
            vals.append(mod.weight.detach().abs().float().cpu())
    return torch.stack(vals).mean(0) if vals else None


def prune_counts(scores: dict[str, Tensor], ratio: float, scope: str = "layerwise",
                 max_ratio: float = 0.9) -> dict[str, int]:
    """How many units each group loses for an overall pruning ``ratio`` of units.

    layerwise: ``floor(ratio * size)`` per group. global: scores are divided by their group
    mean and the ``floor(ratio * total)`` lowest units overall are removed. Either way a group
    loses at most ``floor(max_ratio * size)`` units and always keeps one.
    """
    caps = {k: min(int(math.floor(max_ratio * s.numel())), s.numel() - 1) for k, s in scores.items()}
    if scope == "layerwise":
        return {k: max(0, min(int(math.floor(ratio * s.numel())), caps[k])) for k, s in scores.items()}
    if scope != "global":
        raise ConfigError(f"unknown scope '{scope}'", where="scope", fix="use 'layerwise' or 'global'")
    names = list(scores)
    normed = [scores[k] / scores[k].abs().mean().clamp_min(1e-12) for k in names]
    owner = torch.cat([torch.full((s.numel(),), i) for i, s in enumerate(normed)])
    total = int(math.floor(ratio * owner.numel()))
    counts = dict.fromkeys(names, 0)
    for pos in torch.sort(torch.cat(normed), stable=True).indices.tolist():
        if total <= 0:
            break
        k = names[int(owner[pos])]
        if counts[k] < caps[k]:
            counts[k] += 1
            total -= 1
    return counts


def masks_from_scores(scores: dict[str, Tensor], counts: dict[str, int],
                      forced_out: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
    """Keep-masks removing ``counts[g]`` lowest-scored units per group.

    ``forced_out`` (keep-masks) marks units that must stay pruned (scored -inf) — the AGP rule
    that nothing regrows.
    """
    masks = {}
    for k, s in scores.items():
        s = s.clone()
        if forced_out is not None and k in forced_out:
            s[~forced_out[k].cpu()] = -math.inf
        keep = torch.ones(s.numel(), dtype=torch.bool)
        n = counts.get(k, 0)
        if n > 0:
            keep[torch.sort(s, stable=True).indices[:n]] = False
        masks[k] = keep
    return masks


@torch.no_grad()
def apply_group_masks_(model: nn.Module, groups: Sequence[Any], masks: dict[str, Tensor]) -> None:
    """Zero every pruned unit (soft mask) of every group."""
    from leandl.prune.groups import zero_units_

    for g in groups:
        m = masks.get(g.name)
        if m is None or bool(m.all()):
            continue
        zero_units_(model, g, (~m).nonzero().flatten().tolist())


def masked_producers(model: nn.Module, groups: Sequence[Any], masks: dict[str, Tensor],
                     norms: bool = False) -> Iterator[tuple[Tensor, int, Tensor]]:
    """``(tensor, dim, indices)`` of every conv/linear weight and bias (and, with ``norms``, norm
    weight and bias) that produces a masked-out unit of ``groups``."""
    from leandl.prune.groups import unit_indices

    kinds: tuple[type, ...] = (nn.modules.conv._ConvNd, nn.Linear)
    if norms:
        kinds += (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)
    for g in groups:
        m = masks.get(g.name)
        if m is None or bool(m.all()):
            continue
        units = (~m).nonzero().flatten()
        for mod_name, pname, dim, off, r in g.slices("producers"):
            mod = model.get_submodule(mod_name) if mod_name else model
            if isinstance(mod, kinds) and pname in ("weight", "bias"):
                t = getattr(mod, pname)
                if t is not None:
                    yield t, dim, unit_indices(units, off, r).to(t.device)


@torch.no_grad()
def zero_filters_(model: nn.Module, groups: Sequence[Any], masks: dict[str, Tensor]) -> None:
    """SFP's soft mask: zero only the conv/linear weights and biases producing pruned units.

    Norm layers are left alone, so a zeroed filter still receives a gradient (through the BN
    scale) and can recover; :func:`apply_group_masks_` also zeroes BN weight and bias.
    """
    for t, dim, idx in masked_producers(model, groups, masks):
        t.index_fill_(dim, idx, 0.0)


def keep_indices(masks: dict[str, Tensor]) -> dict[str, list[int]]:
    """``{group: kept indices}`` for every group that loses at least one unit."""
    return {k: m.nonzero().flatten().tolist() for k, m in masks.items() if not bool(m.all())}


def remove_masked(model: nn.Module, example_inputs: Tensor, masks: dict[str, Tensor]) -> nn.Module:
    """Physically remove the masked units (records the structural edit); returns the new model."""
    from leandl.prune.groups import remove_units_

    keep = keep_indices(masks)
    if not keep:
        return model
    was = model.training
    model.eval()
    out = remove_units_(model, example_inputs, keep)
    out.train(was)
    return out


def snapshot_units(model: nn.Module, group: Any, idxs: Iterable[int]) -> dict[tuple[str, str, int, int, int], Tensor]:
    """Copies of the producer slices of units ``idxs`` (weights, biases, BN parameters and stats).

    Keys are ``(module, tensor, dim, offset, r)`` as in ``ChannelGroup.slices()``; each value
    holds ``len(idxs) * r`` entries along ``dim``, unit-major.
    """
    from leandl.prune.groups import unit_indices

    units = torch.as_tensor(list(idxs), dtype=torch.long)
    out = {}
    for mod_name, pname, dim, off, r in group.slices("producers"):
        t = getattr(model.get_submodule(mod_name) if mod_name else model, pname, None)
        if isinstance(t, Tensor):
            out[(mod_name, pname, dim, off, r)] = t.detach().index_select(
                dim, unit_indices(units, off, r).to(t.device)).clone()
    return out


@torch.no_grad()
def restore_units_(model: nn.Module, idxs: Iterable[int], saved: dict[tuple[str, str, int, int, int], Tensor]) -> None:
    """Write slices saved by :func:`snapshot_units` back at units ``idxs``."""
    from leandl.prune.groups import unit_indices

    units = torch.as_tensor(list(idxs), dtype=torch.long)
    for (mod_name, pname, dim, off, r), vals in saved.items():
        t = getattr(model.get_submodule(mod_name) if mod_name else model, pname)
        t.index_copy_(dim, unit_indices(units, off, r).to(t.device), vals.to(t.device, t.dtype))

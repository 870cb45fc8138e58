"""Physical slicing of coupled tensors and the module attributes that describe their shapes."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from leandl.errors import ModelError

if TYPE_CHECKING:
    from leandl.prune.groups import ChannelGroup

__all__ = ["apply_keep", "forward_shape"]


def forward_shape(model: nn.Module, example_inputs: Any, where: str | None = None) -> Any:
    """Run one eval-mode forward pass without gradients; return the output shape(s).

    Raises:
        ModelError: the forward pass fails (names ``where``, the groups just pruned).
    """
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(*example_inputs) if isinstance(example_inputs, tuple) else model(
                example_inputs)
    except Exception as exc:  # any failure here means the surgery broke the model
        raise ModelError(f"the pruned model fails its forward pass ({type(exc).__name__}: "
                         f"{exc})", where=where or type(model).__name__,
                         fix="add these groups to ignored_layers and report the model") from exc
    finally:
        model.train(was)
    return _shapes(out)


def _shapes(out: Any) -> Any:
    if isinstance(out, torch.Tensor):
        return tuple(out.shape)
    if isinstance(out, (list, tuple)):
        return [_shapes(o) for o in out]
    if isinstance(out, dict):
        return {k: _shapes(v) for k, v in out.items()}
    return None


@torch.no_grad()
def apply_keep(model: nn.Module, groups: list[ChannelGroup], keep: dict[str, list[int]]) -> None:
    """Remove every unit not in ``keep[group.name]`` from all producer and consumer slices."""
    from leandl.prune.groups import unit_indices

    removed: dict[tuple[str, str, int], set[int]] = defaultdict(set)
    for g in groups:
        drop = torch.tensor(sorted(set(range(g.size)) - set(keep[g.name])), dtype=torch.long)
        if drop.numel() == 0:
            continue
        for role in ("producers", "consumers"):
            for m, p, d, o, r in g.slices(role):
                removed[(m, p, d)].update(unit_indices(drop, o, r).tolist())
    old_shapes = {}
    for (m, p, d), idx in removed.items():
        mod = model.get_submodule(m) if m else model
        t = getattr(mod, p)
        old_shapes.setdefault(m, _shape_attrs(mod))
        keep_idx = torch.tensor(sorted(set(range(t.shape[d])) - idx), dtype=torch.long)
        new = t.data.index_select(d, keep_idx.to(t.device)).clone()
        if isinstance(t, nn.Parameter):
            setattr(mod, p, nn.Parameter(new, requires_grad=t.requires_grad))
        else:
            mod._buffers[p] = new
    for m, old in old_shapes.items():
        _update_attrs(model.get_submodule(m) if m else model, old, m)
    for parent in {m.rpartition(".")[0] for m in old_shapes if m}:
        mod = model.get_submodule(parent)
        if hasattr(mod, "num_attention_heads") and hasattr(mod, "query"):  # BERT-style heads
            mod.num_attention_heads = mod.query.out_features // mod.attention_head_size
            mod.all_head_size = mod.query.out_features


def _shape_attrs(mod: nn.Module) -> dict[str, Any]:
    if isinstance(mod, nn.modules.conv._ConvNd):
        return {"groups": mod.groups, "in": mod.in_channels, "out": mod.out_channels}
    return {}


def _update_attrs(mod: nn.Module, old: dict[str, Any], name: str) -> None:
    if isinstance(mod, nn.modules.conv._ConvNd):
        out = mod.weight.shape[0]
        if old["groups"] > 1 and old["groups"] == old["in"] == old["out"]:
            mod.groups = mod.in_channels = mod.out_channels = out
        elif old["groups"] == 1:
            mod.out_channels, mod.in_channels = out, mod.weight.shape[1]
        else:
            raise ModelError("grouped conv cannot be sliced", where=name)
    elif isinstance(mod, nn.Linear):
        mod.out_features, mod.in_features = mod.weight.shape
    elif isinstance(mod, nn.modules.batchnorm._BatchNorm):
        ref = mod.weight if mod.weight is not None else mod.running_mean
        mod.num_features = ref.shape[0]
    elif isinstance(mod, nn.LayerNorm):
        mod.normalized_shape = (mod.weight.shape[0],)

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
    from leandl.prune._inputs import call

    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = call(model, example_inputs)
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
    heads: dict[str, tuple[int, int]] = {}
    for parent in {m.rpartition(".")[0] for m in old_shapes if m}:
        _update_attention(model.get_submodule(parent), old_shapes, parent, heads)
    sync_config(model, old_shapes, heads)


_MLP_KEYS = ("intermediate_size", "n_inner", "d_ff", "hidden_dim", "encoder_ffn_dim",
             "decoder_ffn_dim", "ffn_dim")


def sync_config(model: nn.Module, old_shapes: dict[str, dict[str, Any]],
                heads: dict[str, tuple[int, int]]) -> dict[str, int]:
    """Write uniform new widths into a Hugging Face ``model.config`` (returns what changed).

    ``save_pretrained``/``from_pretrained`` rebuild a model from its config, which holds one
    MLP width and one head count for all layers: the config is updated when every pruned
    layer ended at the same width (``scope="layerwise"`` gives that), and head counts only
    where the config states ``head_dim`` explicitly (LLaMA-style; BERT-style models derive
    the head size from the head count). Otherwise the config is left alone and leandl's own
    checkpoint (``leandl.save``) is the way to reload the model.
    """
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "to_dict"):
        return {}
    changed: dict[str, int] = {}
    for key in _MLP_KEYS:
        value = getattr(config, key, None)
        if not isinstance(value, int) or isinstance(value, bool):
            continue
        new = set()
        for name, old in old_shapes.items():
            w = getattr(model.get_submodule(name) if name else model, "weight", None)
            if old.get("weight") and isinstance(w, torch.Tensor) and w.dim() == 2:
                for d in range(2):
                    if old["weight"][d] == value and w.shape[d] != value:
                        new.add(int(w.shape[d]))
        if len(new) == 1:
            setattr(config, key, new.pop())
            changed[key] = getattr(config, key)
    if heads and isinstance(getattr(config, "head_dim", None), int):
        q = {v[0] for v in heads.values()}
        kv = {v[1] for v in heads.values()}
        if len(q) == 1 and hasattr(config, "num_attention_heads"):
            config.num_attention_heads = changed["num_attention_heads"] = q.pop()
        if len(kv) == 1 and hasattr(config, "num_key_value_heads"):
            config.num_key_value_heads = changed["num_key_value_heads"] = kv.pop()
    return changed


def _shape_attrs(mod: nn.Module) -> dict[str, Any]:
    w = getattr(mod, "weight", None)
    out: dict[str, Any] = {"weight": tuple(w.shape) if isinstance(w, torch.Tensor) else None}
    if isinstance(mod, nn.modules.conv._ConvNd):
        out.update(groups=mod.groups, cin=mod.in_channels, cout=mod.out_channels)
    if isinstance(mod, nn.GroupNorm):
        out.update(groups=mod.num_groups, channels=mod.num_channels)
    for attr in _HEAD_ATTRS + _WIDTH_ATTRS + ("head_dim", "attention_head_size",
                                                "key_value_proj_dim", "head_size", "dim_head"):
        v = getattr(mod, attr, None)
        if isinstance(v, int) and not isinstance(v, bool):
            out[attr] = v
    return out


def _update_attrs(mod: nn.Module, old: dict[str, Any], name: str) -> None:
    w = getattr(mod, "weight", None)
    if isinstance(mod, nn.modules.conv._ConvNd):
        cin_g, cout_g = old["cin"] // old["groups"], old["cout"] // old["groups"]
        if mod.transposed:
            cin, cout = mod.weight.shape[0], mod.weight.shape[1] * old["groups"]
            if old["groups"] != 1:
                raise ModelError("grouped transposed conv cannot be sliced", where=name)
            mod.in_channels, mod.out_channels = cin, cout
            return
        cout = mod.weight.shape[0]
        if old["groups"] == 1:
            mod.out_channels, mod.in_channels = cout, mod.weight.shape[1]
            return
        groups = cout // cout_g
        mod.groups, mod.out_channels, mod.in_channels = groups, cout, groups * cin_g
    elif isinstance(mod, nn.Linear):
        mod.out_features, mod.in_features = mod.weight.shape
    elif isinstance(mod, nn.modules.batchnorm._BatchNorm):
        ref = mod.weight if mod.weight is not None else mod.running_mean
        mod.num_features = ref.shape[0]
    elif isinstance(mod, nn.GroupNorm):
        per = old["channels"] // old["groups"]
        mod.num_channels = mod.weight.shape[0]
        mod.num_groups = mod.num_channels // per if old["groups"] > 1 else 1
    elif isinstance(mod, nn.Embedding):
        mod.num_embeddings, mod.embedding_dim = mod.weight.shape
    elif hasattr(mod, "normalized_shape") and isinstance(w, torch.Tensor) and w.dim() == 1:
        mod.normalized_shape = (w.shape[0],)  # LayerNorm, RMSNorm and look-alikes
    elif isinstance(getattr(mod, "nf", None), int) and isinstance(w, torch.Tensor) and w.dim() == 2:
        mod.nf = w.shape[1]  # GPT-2's Conv1D: weight (in, out)
    if isinstance(w, torch.Tensor) and w.dim() == 1 and isinstance(getattr(mod, "dim", None), int):
        if old.get("weight") and old["weight"][0] == mod.dim:
            mod.dim = w.shape[0]  # timm layer scale (gamma of size dim)


_Q = ("q_proj", "query", "q", "q_lin", "to_q", "wq")
_K = ("k_proj", "key", "k", "k_lin", "to_k", "wk")
_FUSED = ("qkv", "c_attn", "in_proj", "Wqkv", "query_key_value")
_HEAD_ATTRS = ("num_heads", "num_attention_heads", "n_heads", "n_head", "num_key_value_heads",
               "n_kv_heads", "num_kv_heads")
_WIDTH_ATTRS = ("all_head_size", "inner_dim", "split_size", "attn_dim")


def _out_width(mod: nn.Module, old: dict[str, Any] | None) -> tuple[int, int] | None:
    """(old, new) output width of a q/k/fused projection (Linear or Conv1D)."""
    w = getattr(mod, "weight", None)
    if not isinstance(w, torch.Tensor) or w.dim() < 2 or old is None or old.get("weight") is None:
        return None
    dim = 1 if isinstance(getattr(mod, "nf", None), int) else 0
    return old["weight"][dim], w.shape[dim]


def _update_attention(mod: nn.Module, old_shapes: dict[str, dict[str, Any]], name: str,
                      counts: dict[str, tuple[int, int]]) -> None:
    """Head counts and widths of an attention module after its projections were sliced."""
    def child(names: tuple[str, ...]) -> tuple[int, int] | None:
        for n in names:
            full = f"{name}.{n}" if name else n
            if isinstance(getattr(mod, n, None), nn.Module) and full in old_shapes:
                return _out_width(getattr(mod, n), old_shapes[full])
        return None

    q, k, fused = child(_Q), child(_K), child(_FUSED)
    if q is None and fused is None:
        return
    if fused is not None:
        q = (fused[0] // 3, fused[1] // 3)
        k = k or q
    k = k or q
    heads = next((getattr(mod, a) for a in ("num_heads", "num_attention_heads", "n_heads",
                                             "n_head") if isinstance(getattr(mod, a, None), int)),
                 None)
    hd = next((getattr(mod, a) for a in ("head_dim", "attention_head_size", "key_value_proj_dim",
                                          "head_size", "dim_head")
               if isinstance(getattr(mod, a, None), int)),
              None)
    if hd is None and heads:
        hd = q[0] // heads
    if not hd:
        return
    for a in ("num_heads", "num_attention_heads", "n_heads", "n_head"):
        if isinstance(getattr(mod, a, None), int):
            setattr(mod, a, q[1] // hd)
    for a in ("num_key_value_heads", "n_kv_heads", "num_kv_heads"):
        if isinstance(getattr(mod, a, None), int):
            setattr(mod, a, k[1] // hd)
    for a in ("all_head_size", "inner_dim", "attn_dim"):
        if getattr(mod, a, None) == q[0]:
            setattr(mod, a, q[1])
    if getattr(mod, "split_size", None) == q[0]:
        mod.split_size = q[1]
    counts[name] = (q[1] // hd, k[1] // hd)

"""Per-ATen-op channel rules for :mod:`leandl.prune._trace` (see its docstring for the model).

One function per op family; :func:`apply` dispatches on the op's name. An op with a tracked
input and no rule marks its inputs' spaces unsupported (kept whole) and names itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils._pytree import tree_flatten

from leandl.prune._rules_base import _info, _tie, _unknown, _unsupported, _where
from leandl.prune._rules_compute import (_batch_norm, _conv, _group_norm, _layer_norm, _mm,
                                         _reduce, _rms_norm, _sdpa)
from leandl.prune._rules_layout import (_cat, _copy, _expand, _index, _pad, _pixel_shuffle,
                                        _reshape, _select, _slice, _split, _squeeze, _stack,
                                        _transpose_like, _unsqueeze)
from leandl.prune._trace import Graph, Info

__all__ = ["apply"]

_PASS = {
    "clone", "_to_copy", "alias", "detach", "lift_fresh", "lift_fresh_copy", "contiguous",
    "native_dropout", "dropout", "feature_dropout", "_softmax", "softmax", "_log_softmax",
    "_safe_softmax",
    "log_softmax", "avg_pool1d", "avg_pool2d", "avg_pool3d", "max_pool2d_with_indices",
    "max_pool1d", "max_pool2d", "max_pool3d_with_indices", "max_pool1d_with_indices",
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "_adaptive_avg_pool2d", "adaptive_max_pool2d",
    "adaptive_avg_pool3d", "_adaptive_avg_pool3d", "adaptive_max_pool1d",
    "upsample_nearest1d", "upsample_nearest2d", "upsample_bilinear2d", "upsample_bicubic2d",
    "_upsample_nearest_exact2d", "_upsample_bilinear2d_aa", "roll", "flip", "cumsum",
    "reflection_pad1d", "reflection_pad2d", "replication_pad1d", "replication_pad2d",
    "_native_batch_norm_legit_functional", "fill", "zero", "bernoulli", "masked_fill",
    "triu", "tril", "as_strided", "resize", "hardswish", "hardsigmoid", "gelu", "silu", "mish",
    "relu", "relu6", "leaky_relu", "elu", "celu", "selu", "hardtanh", "sigmoid", "tanh",
    "softplus", "log_sigmoid_forward", "threshold", "clamp", "clamp_min", "clamp_max",
    "logit", "erf", "exp", "log", "abs", "neg", "sqrt", "rsqrt", "pow", "square",
}
_NORM_STATS = {"var", "var_mean", "std", "std_mean", "mean", "sum", "amax", "amin", "max",
               "min", "norm", "linalg_vector_norm", "logsumexp", "prod", "any", "all", "argmax"}
_VIEWS = {"view", "_unsafe_view", "reshape", "_reshape_alias", "unflatten", "flatten"}


def apply(g: Graph, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
    """Compute the infos of ``func``'s outputs from its inputs' (already in ``g.infos``)."""
    name = func._overloadpacket.__name__
    base = name[:-1] if name.endswith("_") and not name.startswith("_") else name
    outs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
    ins = [a for a in tree_flatten((args, kwargs))[0] if isinstance(a, torch.Tensor)]
    infos = [_info(g, a) for a in ins]
    if base.endswith("_like") and infos and infos[0].view is not None:
        base = "clone"  # zeros_like / empty_like (dropout masks): same layout as the input
    elif not any(i.view or i.param for i in infos) or base.endswith("_like"):
        for o in outs:  # a factory op or one on untracked tensors: untracked result
            g.infos.pop(id(o), None)
        return
    rule = _RULES.get(base)
    if rule is None and torch.Tag.pointwise in getattr(func, "tags", ()):
        rule = _pointwise
    if rule is None and base in _PASS:
        rule = _pass
    if rule is None and base in _NORM_STATS:
        rule = _reduce
    if rule is None:
        rule = _unknown
    try:
        results = rule(g, name, args, kwargs, out)
    except Exception as exc:  # noqa: BLE001 - a rule's blind spot must not break the forward
        results = _unsupported(g, name, args, kwargs, out,
                               f"op '{name}' ({type(exc).__name__} in its channel rule)")
    if not isinstance(results, list):
        results = [results]
    for o, info in zip(outs, results + [Info()] * (len(outs) - len(results))):
        g.infos[id(o)] = info
        g.keep.append(o)


def _pass(g: Graph, name: str, args: tuple, kwargs: dict, out: Any) -> list[Info]:
    x = _info(g, args[0])
    o = out[0] if isinstance(out, (tuple, list)) else out
    if x.view is None or not isinstance(o, torch.Tensor) or o.dim() != args[0].dim() or \
            o.shape[x.cdim] != args[0].shape[x.cdim]:
        if x.view is not None:
            return _unsupported(g, name, args, kwargs, out, f"'{name}' changes the channel dim")
        return [Info(param=x.param)] if x.param and o.shape == args[0].shape else []
    if name in ("roll", "flip", "cumsum", "_softmax", "softmax", "_log_softmax", "log_softmax",
                "_safe_softmax"):
        dims = args[1] if len(args) > 1 else kwargs.get("dims", kwargs.get("dim", ()))
        dims = dims if isinstance(dims, (list, tuple)) else [dims]
        if name in ("roll", "flip", "cumsum") and x.cdim in [int(d) % o.dim() for d in dims]:
            return _unsupported(g, name, args, kwargs, out, f"'{name}' along the channels")
    return [Info(x.view, x.cdim)]


def _pointwise(g: Graph, name: str, args: tuple, kwargs: dict, out: Any) -> Info:
    o = out if isinstance(out, torch.Tensor) else tree_flatten(out)[0][0]
    nd = o.dim()
    tensors = [a for a in tree_flatten((args, kwargs))[0] if isinstance(a, torch.Tensor)]
    tracked = [(a, _info(g, a)) for a in tensors if _info(g, a).view is not None]
    where = _where(g, name)
    if not tracked:  # a parameter scaled by a constant (weight standardisation) stays one
        params = [_info(g, a) for a in tensors if _info(g, a).param]
        plain = [a for a in tensors if _info(g, a).param is None and a.numel() > 1]
        if len(params) == 1 and not plain and params[0].param is not None:
            src = next(a for a in tensors if _info(g, a).param)
            if src.shape == o.shape:
                return Info(param=params[0].param)
        return Info()
    base_t, base = tracked[0]
    pos = base.cdim - base_t.dim()  # channel position counted from the end (negative)
    if o.dim() < -pos or o.shape[pos] != base_t.shape[base.cdim]:
        g.mark(base.view, f"broadcast over the channels at {where}")
        return Info()
    for a, info in ((a, _info(g, a)) for a in tensors):
        if a is base_t:
            continue
        adim = a.dim() + pos
        size = a.shape[adim] if 0 <= adim < a.dim() else 1
        if info.view is not None:
            if info.cdim != adim:
                g.mark(base.view + info.view, f"element-wise op on different dims at {where}")
            else:
                _tie(g, base.view, info.view, where)
        elif info.param is not None and size > 1:
            pdim = info.param[2][adim]
            if pdim is None:
                g.mark(base.view, f"expanded parameter over the channels at {where}")
            else:
                g.add(base.view, info.param[0], [info.param[1]], pdim, "p")
        elif size > 1:
            g.mark(base.view, f"element-wise op with an untracked tensor at {where}")
    return Info(base.view, nd + pos)


_RULES: dict[str, Callable[..., Any]] = {
    "convolution": _conv, "_convolution": _conv,
    "mm": _mm, "bmm": _mm, "addmm": _mm, "baddbmm": _mm, "matmul": _mm, "linear": _mm,
    "_native_batch_norm_legit_no_training": _batch_norm, "_native_batch_norm_legit": _batch_norm,
    "native_batch_norm": _batch_norm, "batch_norm": _batch_norm,
    "_batch_norm_with_update": _batch_norm, "_batch_norm_no_update": _batch_norm,
    "cudnn_batch_norm": _batch_norm, "native_layer_norm": _layer_norm, "layer_norm": _layer_norm,
    "rms_norm": _rms_norm, "_fused_rms_norm": _rms_norm, "native_group_norm": _group_norm,
    "t": _transpose_like, "transpose": _transpose_like, "permute": _transpose_like,
    "swapaxes": _transpose_like, "unsqueeze": _unsqueeze, "squeeze": _squeeze,
    "expand": _expand, "slice": _slice, "select": _select, "narrow": _slice,
    "split": _split, "split_with_sizes": _split, "unbind": _split, "unsafe_split": _split,
    "cat": _cat, "stack": _stack, "index": _index, "index_select": _index, "gather": _index,
    "embedding": _index, "constant_pad_nd": _pad, "copy": _copy,
    "_scaled_dot_product_flash_attention_for_cpu": _sdpa,
    "_scaled_dot_product_attention_math": _sdpa, "_scaled_dot_product_flash_attention": _sdpa,
    "_scaled_dot_product_efficient_attention": _sdpa, "scaled_dot_product_attention": _sdpa,
    "_scaled_dot_product_cudnn_attention": _sdpa,
    "pixel_shuffle": _pixel_shuffle, "pixel_unshuffle": _pixel_shuffle,
    **{v: _reshape for v in _VIEWS},
}

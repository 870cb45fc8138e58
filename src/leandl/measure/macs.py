"""Multiply-accumulate (MAC) counts, in total and per module, from PyTorch's own counter.

Definition: the MACs of one forward pass at the given inputs are half the FLOPs that
``torch.utils.flop_counter.FlopCounterMode`` reports. That counter has formulas for matrix
products and convolutions (``mm``, ``addmm``, ``bmm``, ``baddbmm``, ``convolution``,
scaled-dot-product attention, ...), each counted as 2 FLOPs per multiply-accumulate; leandl
adds formulas for two fused CPU kernels the counter leaves at 0 (scaled-dot-product attention
on CPU and ``nn.MultiheadAttention``'s inference path), so
``MACs = FLOPs / 2`` exactly. Bias additions, BatchNorm, pooling, activations and other
elementwise operations are **not** counted (Torch-Pruning's counter, which counts BN and
pooling, reports about 1.3 % more on a ResNet-56).

``per_module`` holds each module's *own* MACs (its counted work minus that of its direct
children), keyed by dotted module name as in ``model.named_modules()``; only modules with
non-zero own work appear, so for ordinary networks these are the leaf Conv/Linear layers, and a
module that calls ``F.linear`` or ``torch.matmul`` itself appears too. Work done directly by the
root module's ``forward`` is keyed ``""``. The values sum to ``total``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from leandl.measure._util import as_args, eval_mode

__all__ = ["MacCount", "count_macs"]

_GLOBAL = "Global"


@dataclass(frozen=True)
class MacCount:
    """MACs of one forward pass (units: multiply-accumulates)."""

    total: int
    per_module: dict[str, int] = field(default_factory=dict)

    @property
    def flops(self) -> int:
        """FLOPs of the counted operations: ``2 * total``."""
        return 2 * self.total


def _sdpa_cpu_flops(query: Any, key: Any, value: Any, *args: Any, **kwargs: Any) -> int:
    """CPU scaled-dot-product attention: QK^T and (softmax)V, 2 FLOPs per MAC."""
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(query, key, value)


def _mha_flops(query: Any, key: Any, value: Any, embed_dim: int, num_head: int, *args: Any,
               **kwargs: Any) -> int:
    """``nn.MultiheadAttention``'s fused inference kernel: q/k/v and output projections plus
    attention over ``num_head`` heads of ``embed_dim // num_head``."""
    b, lq, e = query
    lk = key[-2]
    proj = lq * e * e + 2 * lk * e * e + lq * e * embed_dim  # q, k, v, out
    attn = 2 * lq * lk * embed_dim
    return 2 * b * (proj + attn)


def _custom_mapping() -> dict[Any, Any]:
    """Formulas for fused CPU kernels ``FlopCounterMode`` has none for (counted as 0 before):
    without them an eval-mode, no-grad count misses a transformer's attention."""
    ops = torch.ops.aten
    out: dict[Any, Any] = {}
    if hasattr(ops, "_scaled_dot_product_flash_attention_for_cpu"):
        out[ops._scaled_dot_product_flash_attention_for_cpu] = _sdpa_cpu_flops
    if hasattr(ops, "_native_multi_head_attention"):
        out[ops._native_multi_head_attention] = _mha_flops
    return out


def count_macs(model: nn.Module, example_inputs: Any) -> MacCount:
    """Count the MACs of ``model(*example_inputs)`` with ``FlopCounterMode``.

    The forward runs once under ``torch.no_grad()`` in eval mode; every submodule's training
    flag is restored afterwards. Multi-output models (returning a list or tuple) work.

    Args:
        model: the network.
        example_inputs: a tensor, a tuple/list of positional arguments or a dict of keyword
            arguments. The batch size is
            whatever these tensors carry; pass batch 1 for per-sample MACs.

    Returns:
        ``MacCount(total, per_module)``; see the module docstring for the definitions.

    Example:
        >>> count_macs(nn.Conv2d(3, 8, 3, padding=1), torch.zeros(1, 3, 8, 8)).total
        13824
    """
    counter = FlopCounterMode(display=False, custom_mapping=_custom_mapping())
    with eval_mode(model), torch.no_grad(), counter:
        if isinstance(example_inputs, dict):
            model(**example_inputs)
        else:
            model(*as_args(example_inputs))
    flops_by_name = {
        name: int(sum(ops.values())) for name, ops in counter.get_flop_counts().items()
    }
    total = int(counter.get_total_flops()) // 2
    root = type(model).__name__
    module_flops = {
        _dotted(name, root): flops for name, flops in flops_by_name.items() if name != _GLOBAL
    }
    return MacCount(total=total, per_module=_own_macs(module_flops))


def _dotted(tracker_name: str, root: str) -> str:
    """Tracker names are ``"<RootClass>.a.b"``; module names are ``"a.b"`` (root is ``""``)."""
    if tracker_name == root:
        return ""
    prefix = root + "."
    return tracker_name[len(prefix):] if tracker_name.startswith(prefix) else tracker_name


def _own_macs(module_flops: dict[str, int]) -> dict[str, int]:
    """Inclusive FLOPs per module -> own MACs (minus direct children's), non-zero only."""
    own: dict[str, int] = {}
    for name, flops in module_flops.items():
        children = sum(
            f for other, f in module_flops.items() if other != name and _parent(other) == name
        )
        macs = (flops - children) // 2
        if macs > 0:
            own[name] = macs
    return own


def _parent(name: str) -> str | None:
    if name == "":
        return None
    return name.rsplit(".", 1)[0] if "." in name else ""

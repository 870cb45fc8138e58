"""Input-dependent layer and channel skipping: the input half of Dual Dynamic Inference (DDI).

What: every gated block ``F`` gets a small gate (global average pool -> Linear -> ReLU ->
Linear) that picks, per input, one option from ``fractions`` (default ``0, 1/4, 1/2, 3/4, 1``):
fraction 0 skips the block (its input passes through), 1 runs it whole, and ``f`` in between
runs only its first ``round(f C)`` output channels (the slimmable "first-k" order, so it is a
slice of the weight, never a gather) while the other channels pass their input through::

    out[:, :k] = F_k(x)        out[:, k:] = x[:, k:]        k = round(f C)

Training (straight-through Gumbel-softmax, hard one-hot forward, soft backward): the block runs
whole and the one-hot choice ``g`` mixes it with the identity through a channel mask
``m = g @ M`` (``M[j, c] = 1[c < k_j]``): ``out = x + (F(x) - x) * m``; the fraction a sample
used, ``g @ fractions``, stays differentiable. The ``ddi_budget`` technique adds the compute
penalty ``weight * (E[MACs] / MACs_full - target)^2`` over the batch to the cross-entropy
(DDI trains "CE + computation penalty"; the squared-deviation form is leandl's choice, the
paper's exact penalty is not published with code).

Inference: the gate's argmax; samples are partitioned by their choice and each group runs only
its slice (skipped samples run nothing), so skipping saves real time and MACs.
:func:`per_sample_macs` counts each input's MACs (gates included); :func:`calibrate_gates` sets
one cost bias on every gate's logits (``logit_j - delta * f_j``) so the mean MACs on a held-out
set meet a budget, as exit thresholds are calibrated for early exits.

Which blocks: shape-preserving ``Sequential(Conv, BatchNorm, activation...)`` blocks get channel
options; any other shape-preserving module named in ``blocks`` may only be skipped (fractions
0 and 1).

Scope: DDI's resource half (halting at exits under a hard budget) is
:mod:`leandl.dynamic.halt`; gates and exits are not combined in one model here.

Measured (``benchmarks/ddi.py``, MNIST-1D, 50 % of the MACs): the gates lose to static early
exits (94.8 % vs 97.6 %) and settle on nearly input-independent choices.

Paper: Wang et al., "Dual Dynamic Inference: Enabling More Efficient, Adaptive and Controllable
Deep Inference", arXiv 1907.04523 (MGL2S gates; the gate design here follows SkipNet's pooled
feed-forward gate, since DDI's gate internals are unpublished).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from leandl.errors import ConfigError, ModelError
from leandl.measure import count_macs
from leandl.registry import EDITS, TECHNIQUES
from leandl.spec import add_edit, get_spec
from leandl.train.state import State
from leandl.train.technique import Technique

__all__ = ["DEFAULT_FRACTIONS", "SkipGate", "GatedBlock", "attach_ddi_gates", "gated_blocks",
           "per_sample_macs", "expected_fraction", "calibrate_gates", "strip_gates", "DDIBudget"]

DEFAULT_FRACTIONS: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
_CONVS = (nn.Conv1d, nn.Conv2d)
_BNS = (nn.BatchNorm1d, nn.BatchNorm2d)


def _is_conv_bn_act(m: nn.Module) -> bool:
    return (isinstance(m, nn.Sequential) and len(m) >= 2 and isinstance(m[0], _CONVS)
            and m[0].groups == 1 and m[0].padding_mode == "zeros" and isinstance(m[1], _BNS)
            and all(not any(True for _ in a.parameters()) for a in list(m)[2:]))


class SkipGate(nn.Module):
    """Pooled two-layer gate: ``(N, C, ...) -> (N, K)`` option logits (SkipNet's FFGate shape)."""

    def __init__(self, channels: int, options: int, hidden: int = 16) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(channels, hidden), nn.Linear(hidden, options)
        nn.init.zeros_(self.fc2.weight)
        with torch.no_grad():  # start by running every block whole
            self.fc2.bias.zero_()
            self.fc2.bias[-1] = 3.0
        self.register_buffer("cost_bias", torch.zeros(()))

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.relu(self.fc1(x.flatten(2).mean(-1))))


class GatedBlock(nn.Module):
    """A shape-preserving block behind a per-input skip/channel gate (see the module docstring)."""

    def __init__(self, block: nn.Module, channels: int, fractions: Sequence[float], hidden: int = 16,
                 tau: float = 1.0) -> None:
        super().__init__()
        self.block, self.channels, self.tau = block, int(channels), float(tau)
        self.fractions = tuple(float(f) for f in fractions)
        self.widths = tuple(int(round(f * channels)) for f in self.fractions)
        self.gate = SkipGate(channels, len(self.fractions), hidden)
        self.register_buffer("cost", torch.tensor(self.fractions), persistent=False)
        self.register_buffer("masks", (torch.arange(channels)[None] < torch.tensor(self.widths)[:, None])
                             .float(), persistent=False)
        self.block_macs, self.gate_macs = 0, 0
        self.last_fraction: Tensor | None = None

    def logits(self, x: Tensor) -> Tensor:
        """Option logits after the calibrated cost bias: ``gate(x) - delta * fractions``."""
        return self.gate(x) - self.gate.cost_bias * self.cost

    def forward(self, x: Tensor) -> Tensor:
        z = self.logits(x)
        if self.training:
            g = F.gumbel_softmax(z, tau=self.tau, hard=True)  # (N, K) one-hot, soft gradient
            m = (g @ self.masks).view(*x.shape[:2], *([1] * (x.dim() - 2)))  # (N, C, 1...)
            self.last_fraction = g @ self.cost
            return x + (self.block(x) - x) * m
        choice = z.argmax(-1)
        self.last_fraction = self.cost[choice]
        return self._partitioned(x, choice)

    def _partitioned(self, x: Tensor, choice: Tensor) -> Tensor:
        """Run each group of samples through only the slice its choice pays for."""
        out = None
        for j, w in enumerate(self.widths):
            if w == 0:
                continue
            idx = (choice == j).nonzero().flatten()
            if idx.numel() == 0:
                continue
            if idx.numel() == x.shape[0] and w == self.channels:
                return self.block(x)  # the whole batch runs the block whole
            out = x.clone() if out is None else out
            xs = x.index_select(0, idx)
            if w == self.channels:
                out.index_copy_(0, idx, self.block(xs))
            else:
                out[idx, :w] = self._slice(xs, w)
        return x if out is None else out

    def _slice(self, x: Tensor, w: int) -> Tensor:
        """The block's first ``w`` output channels (conv weight rows, BN statistics sliced)."""
        conv, bn = self.block[0], self.block[1]
        fn = F.conv1d if isinstance(conv, nn.Conv1d) else F.conv2d
        y = fn(x, conv.weight[:w], None if conv.bias is None else conv.bias[:w], conv.stride,
               conv.padding, conv.dilation, 1)
        y = F.batch_norm(y, bn.running_mean[:w], bn.running_var[:w],
                         None if bn.weight is None else bn.weight[:w],
                         None if bn.bias is None else bn.bias[:w], False, 0.0, bn.eps)
        for act in list(self.block)[2:]:
            y = act(y)
        return y


def gated_blocks(model: nn.Module) -> list[tuple[str, GatedBlock]]:
    """``(name, block)`` of every gated block, in module order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, GatedBlock)]


def _auto_blocks(model: nn.Module, x: Tensor) -> list[str]:
    names, shapes = [n for n, m in model.named_modules() if n and _is_conv_bn_act(m)], {}
    hooks = [model.get_submodule(n).register_forward_hook(
        lambda m, i, o, n=n: shapes.__setitem__(n, (tuple(i[0].shape), tuple(o.shape)))) for n in names]
    try:
        with torch.no_grad():
            model.eval()(x)
    finally:
        for h in hooks:
            h.remove()
    return [n for n in names if n in shapes and shapes[n][0] == shapes[n][1]]


def attach_ddi_gates(model: nn.Module, blocks: Sequence[str] | None = None, *,
                     fractions: Sequence[float] = DEFAULT_FRACTIONS, hidden: int = 16,
                     input_shape: Sequence[int] | None = None) -> nn.Module:
    """Put a :class:`GatedBlock` around each block in ``blocks`` (in place) and record the edit.

    Args:
        model: the network (a leandl model or any ``nn.Module`` with a known input shape).
        blocks: dotted names of shape-preserving blocks; default every shape-preserving
            conv-BN-activation ``Sequential``.
        fractions: per-block options, increasing, in [0, 1], first 0 and last 1.
        hidden: hidden units of each gate.
        input_shape: one sample's shape (default: the model spec's ``input_shape``).

    Raises:
        ModelError: an unknown or shape-changing block, no block to gate, no input shape, or
            channel fractions for a block that is not conv-BN-activation.
        ConfigError: bad ``fractions`` or ``hidden``.
    """
    fr = [float(f) for f in fractions]
    if len(fr) < 2 or fr[0] != 0.0 or fr[-1] != 1.0 or any(b <= a for a, b in zip(fr, fr[1:])):
        raise ConfigError(f"fractions must increase from 0 to 1, got {fr}", where="ddi.fractions")
    if not 1 <= int(hidden) <= 4096:
        raise ConfigError(f"hidden must lie in [1, 4096], got {hidden}", where="ddi.hidden")
    if gated_blocks(model):
        raise ModelError("the model already has DDI gates", where="attach_ddi_gates")
    spec = get_spec(model)
    shape = input_shape if input_shape is not None else (spec or {}).get("kwargs", {}).get("input_shape")
    if shape is None:
        raise ModelError("the input shape is unknown", where="attach_ddi_gates",
                         fix="pass input_shape=(C, L) or (C, H, W) of one sample")
    p = next(model.parameters())
    x = torch.zeros(1, *shape, device=p.device)
    was_training = model.training
    full = count_macs(model, x).total
    names = list(blocks) if blocks is not None else _auto_blocks(model, x)
    if not names:
        raise ModelError("no shape-preserving block to gate", where="attach_ddi_gates",
                         fix="name the blocks to gate in 'blocks'")
    inputs: dict[str, Tensor] = {}
    for n in names:
        try:
            mod = model.get_submodule(n)
        except AttributeError:
            raise ModelError(f"no module named '{n}'", where="ddi.blocks") from None
        if fr != [0.0, 1.0] and not _is_conv_bn_act(mod):
            raise ModelError(f"block '{n}' is not a conv-BN-activation Sequential, so it can only be "
                             "skipped whole", where="ddi.blocks", fix="use fractions: [0, 1]")
        mod.register_forward_hook(lambda m, i, o, n=n: inputs.__setitem__(n, (i[0], o)))
    with torch.no_grad():
        model.eval()(x)
    for n in names:
        mod = model.get_submodule(n)
        mod._forward_hooks.clear()
        i, o = inputs.get(n, (None, None))
        if i is None or i.shape != o.shape:
            raise ModelError(f"block '{n}' {'never runs' if i is None else 'changes the shape'} "
                             f"({None if i is None else tuple(i.shape)} -> {None if o is None else tuple(o.shape)})",
                             where="ddi.blocks", fix="gate only blocks whose output shape equals their input's")
        gb = GatedBlock(mod, int(i.shape[1]), fr, int(hidden)).to(p.device)
        gb.block_macs, gb.gate_macs = count_macs(mod, i).total, count_macs(gb.gate, i).total
        parent, _, leaf = n.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, leaf, gb)
    model.ddi_full_macs = int(full)
    model.train(was_training)
    add_edit(model, {"kind": "ddi_gates", "blocks": names, "fractions": fr, "hidden": int(hidden),
                     "input_shape": [int(s) for s in shape]})
    return model


@EDITS.register("ddi_gates")
def _replay(model: nn.Module, edit: dict[str, Any]) -> nn.Module:
    """Replay a ``ddi_gates`` edit on a freshly built model."""
    return attach_ddi_gates(model, edit["blocks"], fractions=edit["fractions"], hidden=edit["hidden"],
                            input_shape=edit["input_shape"])


def _gated_macs(model: nn.Module) -> tuple[list[GatedBlock], int]:
    gbs = [g for _, g in gated_blocks(model)]
    if not gbs:
        raise ModelError("the model has no DDI gates", where=type(model).__name__,
                         fix="attach them with leandl.dynamic.ddi_gates.attach_ddi_gates")
    return gbs, _full_macs(model) - sum(g.block_macs for g in gbs)


def _full_macs(model: nn.Module) -> int:
    """The ungated model's MACs, recorded at attach time (found through wrappers such as DDP)."""
    return int(next(m.ddi_full_macs for m in model.modules() if hasattr(m, "ddi_full_macs")))


def expected_fraction(model: nn.Module) -> Tensor:
    """Mean MACs of the last forward over its batch, as a fraction of the ungated model's MACs.

    Differentiable in training (the gates' straight-through choices).
    """
    gbs, fixed = _gated_macs(model)
    if any(g.last_fraction is None for g in gbs):
        raise RuntimeError("expected_fraction needs a forward pass first")
    macs = fixed + sum(g.gate_macs + g.last_fraction * g.block_macs for g in gbs)
    return macs.mean() / float(_full_macs(model))


@torch.no_grad()
def per_sample_macs(model: nn.Module, x: Tensor, batch_size: int = 1024) -> Tensor:
    """MACs each input of ``x`` costs in eval mode, gates included: ``(N,)`` float."""
    gbs, fixed = _gated_macs(model)
    model.eval()
    parts = []
    for i in range(0, x.shape[0], batch_size):
        model(x[i:i + batch_size])
        parts.append(fixed + sum(g.gate_macs + g.last_fraction.double() * g.block_macs for g in gbs))
    return torch.cat(parts).cpu()


@torch.no_grad()
def calibrate_gates(model: nn.Module, x: Tensor, budget: float, steps: int = 40) -> dict[str, float]:
    """Set every gate's cost bias so the mean MACs on ``x`` fall within ``budget`` x full MACs.

    Bisects the smallest bias ``delta`` (most compute) whose mean fraction is ``<= budget``.

    Returns:
        ``cost_bias`` and the mean ``fraction`` reached on ``x``.

    Raises:
        ConfigError: the budget is below what skipping every block costs.
    """
    gbs, _ = _gated_macs(model)
    full = float(_full_macs(model))

    def frac(delta: float) -> float:
        for g in gbs:
            g.gate.cost_bias.fill_(delta)
        return float(per_sample_macs(model, x).mean()) / full

    lo, hi = -100.0, 100.0
    if frac(hi) > budget:
        raise ConfigError(f"a budget of {budget:.3f} x MACs is below the cost of skipping every gated "
                          f"block ({frac(hi):.3f})", where="ddi.budget")
    if frac(lo) <= budget:
        hi = lo
    for _ in range(steps if hi != lo else 0):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if frac(mid) <= budget else (mid, hi)
    return {"cost_bias": hi, "fraction": frac(hi)}


def strip_gates(model: nn.Module) -> nn.Module:
    """A copy of the model with every gated block replaced by its plain block (the full network)."""
    plain = copy.deepcopy(model)
    for n, g in gated_blocks(plain):
        parent, _, leaf = n.rpartition(".")
        setattr(plain.get_submodule(parent) if parent else plain, leaf, g.block)
    return plain


@TECHNIQUES.register("ddi_budget")
class DDIBudget(Technique):
    """DDI's compute penalty on gated models: ``weight * (E[MACs]/MACs_full - target)^2`` (arXiv 1907.04523).

    Args:
        target: the MACs fraction to train towards, in (0, 1].
        weight: the penalty's weight (> 0).
        ramp: fraction of training over which the target falls linearly from 1 to ``target``
            (0: the full target from the first step; leandl's option, not the paper's).
    """

    name = "ddi_budget"

    def __init__(self, target: float = 0.5, weight: float = 10.0, ramp: float = 0.0) -> None:
        if not 0.0 < target <= 1.0:
            raise ConfigError(f"target must lie in (0, 1], got {target}", where="ddi_budget.target")
        if weight <= 0:
            raise ConfigError(f"weight must be > 0, got {weight}", where="ddi_budget.weight")
        if not 0.0 <= ramp <= 1.0:
            raise ConfigError(f"ramp must lie in [0, 1], got {ramp}", where="ddi_budget.ramp")
        self.target, self.weight, self.ramp, self._last = float(target), float(weight), float(ramp), float("nan")

    def current_target(self, progress: float) -> float:
        """The target at training ``progress`` in [0, 1] (see ``ramp``)."""
        if self.ramp <= 0:
            return self.target
        return 1.0 - (1.0 - self.target) * min(1.0, max(0.0, progress) / self.ramp)

    def after_loss(self, state: State) -> None:
        """Add the penalty for the batch's mean MACs fraction."""
        frac = expected_fraction(state.model)
        target = self.current_target(float(state.progress))
        state.add_loss_term("ddi_budget", self.weight * (frac - target) ** 2)
        self._last = float(frac.detach())

    def summary(self) -> dict[str, Any]:
        """The last training batch's MACs fraction."""
        return {"ddi_train_macs_fraction": self._last}

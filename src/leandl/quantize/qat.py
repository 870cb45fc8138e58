"""Quantisation-aware training (QAT): train with fake-quantised weights and activations.

What: every Conv1d/Conv2d/Linear becomes a fake-quant module computing
``layer(Q_a(x), Q_w(W))`` (see :mod:`leandl.quantize.fake_quant`); the forward pass sees the
quantisation error, gradients pass through with the straight-through estimator, and LSQ step
sizes / PACT clips are trained with the weights. BN is folded into the preceding conv first
(``fold_bn``), so the weights that are quantised are the deployed ones.
When: after fp32 training (fine-tune ~5-10 % of the epochs at 0.01-0.1x the LR), or from scratch
with ``fold_bn=False``; needed below 8 bits, where post-training quantisation breaks down.
Cost: ~1.3-2x the float step time (extra elementwise ops); no change to the float model size
until export. Weights: per-channel symmetric; activations: per-tensor, unsigned when the layer
input is non-negative (post-ReLU), signed otherwise (decided on one calibration batch).
Hyper-parameters: ``weight_bits``, ``act_bits``, ``first_last_bits`` (8 by default: the first
and last layers are the most sensitive, as in LSQ/PACT/DoReFa), ``bits`` (per-layer weight-bit
overrides, e.g. from :mod:`leandl.quantize.mixed_precision`), ``weight_method``/``act_method``
(``lsq``, ``observer``, ``pact``), ``observer`` for the observer method.
Interactions: runs at ``fit_start`` before the optimizer is built, so new parameters (LSQ steps,
PACT clips) are trained. Works on a pruned model (the modules' current shapes are used and the
weight tensors are shared, so pruning masks keep applying) and with distillation (teacher
untouched). The swap is recorded as a ``qat_swap`` structural edit, so
``leandl.checkpoint.load`` rebuilds the quantised model without pickle; scales, steps and zero
points are buffers/parameters in the weights file.
Papers: Jacob et al. 2018 (arXiv 1712.05877); LSQ (arXiv 1902.08153); PACT (arXiv 1805.06085).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from leandl.errors import ModelError
from leandl.quantize.bn_fold import find_conv_bn_pairs, fold_bn_pairs
from leandl.quantize.config import PerChannel, PerTensor, QuantConfig
from leandl.quantize.fake_quant import FAKE_QUANT_TYPES, ObserverQuantizer
from leandl.registry import EDITS, TECHNIQUES
from leandl.spec import add_edit
from leandl.train.state import State
from leandl.train.technique import Technique

__all__ = [
    "quantizable_layers",
    "input_signs",
    "plan_layers",
    "swap_to_fake_quant",
    "apply_qat_swap",
    "prepare_qat",
    "weight_bits_of",
    "QAT",
]

_FAKE = tuple(FAKE_QUANT_TYPES.values())


def quantizable_layers(model: nn.Module) -> list[str]:
    """Names of the float Conv1d/Conv2d/Linear modules, in forward-definition order."""
    return [n for n, m in model.named_modules()
            if type(m) in FAKE_QUANT_TYPES and not isinstance(m, _FAKE)]


@torch.no_grad()
def input_signs(model: nn.Module, batch: Tensor, names: list[str]) -> dict[str, bool]:
    """Whether each named layer's input takes negative values on ``batch`` (eval mode)."""
    modules = dict(model.named_modules())
    signed: dict[str, bool] = {}
    hooks = [modules[n].register_forward_pre_hook(
        lambda m, args, n=n: signed.__setitem__(n, bool((args[0] < 0).any()))) for n in names]
    was_training = model.training
    model.eval()
    try:
        model(batch)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return signed


def plan_layers(names: list[str], signed_inputs: dict[str, bool], *, weight_bits: int = 8,
                act_bits: int | None = 8, first_last_bits: int | None = 8,
                bits: dict[str, int] | None = None, weight_method: str = "lsq",
                act_method: str = "lsq", observer: str = "moving_average") -> list[dict[str, Any]]:
    """Per-layer quantiser configs (JSON form) for the ``qat_swap`` edit.

    Weight bits: ``bits[name]`` if given, else ``first_last_bits`` for the first and last
    layer (when not None), else ``weight_bits``. Activations: ``act_bits`` (None = float),
    unsigned for non-negative inputs. PACT on a signed input falls back to LSQ.
    """
    bits = dict(bits or {})
    unknown = sorted(set(bits) - set(names))
    if unknown:
        raise ModelError(f"bits names layers that are not quantisable: {unknown}",
                         fix=f"use names from {names}")
    plan = []
    for i, name in enumerate(names):
        wb = weight_bits
        if first_last_bits is not None and i in (0, len(names) - 1):
            wb = first_last_bits
        wb = bits.get(name, wb)
        wmethod = "lsq" if wb == 1 else weight_method
        wcfg = QuantConfig(bits=wb, symmetric=True, granularity=PerChannel(0), method=wmethod,
                           observer="minmax")
        acfg = None
        if act_bits is not None:
            signed = signed_inputs.get(name, True)
            method = "lsq" if (act_method == "pact" and signed) else act_method
            acfg = QuantConfig(bits=act_bits, symmetric=method != "observer" or not signed,
                               granularity=PerTensor(), method=method, observer=observer,
                               signed=signed if method != "observer" else None)
        plan.append({"name": name, "weight": wcfg.to_dict(), "act": acfg.to_dict() if acfg else None})
    return plan


def swap_to_fake_quant(model: nn.Module, layers: list[dict[str, Any]]) -> nn.Module:
    """Replace each named float layer by its fake-quant version (parameters shared)."""
    modules = dict(model.named_modules())
    for spec in layers:
        name = spec["name"]
        old = modules.get(name)
        if old is None or type(old) not in FAKE_QUANT_TYPES:
            raise ModelError(f"layer '{name}' is not a Conv1d/Conv2d/Linear of this model",
                             fix="quantise the model the qat_swap edit was recorded on")
        wcfg = QuantConfig.from_dict(spec["weight"]) if spec.get("weight") else None
        acfg = QuantConfig.from_dict(spec["act"]) if spec.get("act") else None
        new = FAKE_QUANT_TYPES[type(old)].from_float(old, wcfg, acfg)
        new.train(old.training)
        parent_name, _, child = name.rpartition(".")
        setattr(modules[parent_name] if parent_name else model, child, new)
    return model


@EDITS.register("qat_swap")
def apply_qat_swap(model: nn.Module, edit: dict[str, Any]) -> nn.Module:
    """Replay a ``qat_swap`` edit: fold the recorded BN pairs, swap the recorded layers."""
    fold_bn_pairs(model, [tuple(p) for p in edit.get("fold_bn", [])])
    swap_to_fake_quant(model, edit["layers"])
    add_edit(model, edit)
    return model


def prepare_qat(model: nn.Module, calib_batch: Tensor, *, fold_bn: bool = True, weight_bits: int = 8,
                act_bits: int | None = 8, first_last_bits: int | None = 8,
                bits: dict[str, int] | None = None, weight_method: str = "lsq",
                act_method: str = "lsq", observer: str = "moving_average") -> nn.Module:
    """Fold BN, swap in fake-quant layers, initialise quantisers on ``calib_batch``; return model.

    Usable in a plain PyTorch loop: call before building the optimizer. Records the
    ``qat_swap`` edit on the model.
    """
    names = quantizable_layers(model)
    if not names:
        raise ModelError("the model has no Conv1d/Conv2d/Linear layer to quantise",
                         where=type(model).__name__)
    pairs = find_conv_bn_pairs(model) if fold_bn else []
    if pairs:
        model.eval()  # folding uses the running statistics
    signs = input_signs(model, calib_batch, names)
    layers = plan_layers(names, signs, weight_bits=weight_bits, act_bits=act_bits,
                         first_last_bits=first_last_bits, bits=bits, weight_method=weight_method,
                         act_method=act_method, observer=observer)
    edit = {"kind": "qat_swap", "fold_bn": [list(p) for p in pairs], "layers": layers}
    was_training = model.training
    apply_qat_swap(model, edit)
    with torch.no_grad():  # initialise LSQ steps / PACT clips / observers
        model.eval()
        model(calib_batch)
    model.train(was_training)
    return model


def weight_bits_of(model: nn.Module) -> dict[str, int]:
    """Weight bits of each fake-quant layer (32 for float weights)."""
    return {n: (m.wcfg.bits if m.wcfg else 32) for n, m in model.named_modules() if isinstance(m, _FAKE)}


def _check_bits(name: str, value: int | None, low: int, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, int) or not low <= value <= 8:
        raise ValueError(f"{name} must be an int in {low}..8{' or None' if allow_none else ''}, got {value!r}")


@TECHNIQUES.register("qat")
class QAT(Technique):
    """Quantisation-aware training with LSQ/PACT/observer fake quantisation (arXiv 1902.08153)."""

    name = "qat"
    order = -50  # swap layers before other techniques look at the model

    def __init__(self, weight_bits: int = 8, act_bits: int | None = 8, first_last_bits: int | None = 8,
                 bits: dict[str, int] | None = None, weight_method: str = "lsq", act_method: str = "lsq",
                 observer: str = "moving_average", fold_bn: bool = True,
                 freeze_observers: float = 0.8) -> None:
        _check_bits("weight_bits", weight_bits, 1)
        _check_bits("act_bits", act_bits, 2, allow_none=True)
        _check_bits("first_last_bits", first_last_bits, 1, allow_none=True)
        for k, v in (bits or {}).items():
            _check_bits(f"bits['{k}']", v, 1)
        if weight_method not in ("lsq", "observer"):
            raise ValueError(f"weight_method must be 'lsq' or 'observer', got {weight_method!r}")
        if act_method not in ("lsq", "observer", "pact"):
            raise ValueError(f"act_method must be 'lsq', 'observer' or 'pact', got {act_method!r}")
        if not 0.0 <= freeze_observers <= 1.0:
            raise ValueError(f"freeze_observers must be a fraction in [0, 1], got {freeze_observers}")
        QuantConfig(observer=observer)  # validates the observer name
        self.kwargs = dict(weight_bits=weight_bits, act_bits=act_bits, first_last_bits=first_last_bits,
                           bits=dict(bits or {}), weight_method=weight_method, act_method=act_method,
                           observer=observer, fold_bn=fold_bn)
        self.freeze_observers = freeze_observers
        self.chosen: dict[str, int] = {}

    def fit_start(self, state: State) -> None:
        batch = next(iter(state.train_loader))
        x = batch[0].to(state.device)
        prepare_qat(state.model, x, **self.kwargs)
        self.chosen = weight_bits_of(state.model)

    def epoch_start(self, state: State) -> None:
        frozen = state.epoch >= int(self.freeze_observers * state.max_epochs)
        for m in state.model.modules():
            if isinstance(m, ObserverQuantizer):
                m.frozen = frozen

    def summary(self) -> dict[str, Any]:
        return {"qat_weight_bits": dict(self.chosen), "qat_act_bits": self.kwargs["act_bits"]}

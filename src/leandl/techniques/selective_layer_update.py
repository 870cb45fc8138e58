"""Selective layer update (SLU), after E2-Train (Wang et al., NeurIPS 2019, arXiv 1910.13349).

What: at every step only a subset of the network's blocks receives a weight update; the others
are frozen for that step (``requires_grad=False`` *before* the forward, so autograd never
computes their weight gradients). E2-Train picks the blocks with a per-sample SkipNet-style LSTM
gate trained with an energy-aware loss and skips the block's forward too. leandl implements a
documented, cheaper policy instead: **each candidate block is frozen independently with
probability ``freeze_prob`` at every step** (seeded generator), the classifier head is always
updated, and the forward pass is unchanged (so the model never changes structure and BN running
statistics keep updating). This is the "random subset of residual blocks per step" policy; it
keeps the weight-gradient savings of SLU but not its forward savings.
Blocks: the units :func:`model_units` finds (top-level children, with ``nn.Sequential`` /
``nn.ModuleList`` stages that hold several conv/linear blocks expanded one level, e.g. the
BasicBlocks of a CIFAR ResNet), or the dotted module names given in ``layers``.
Cost saved: per step ``B * sum_{frozen b} F_b`` backward MACs, where ``F_b`` is block ``b``'s
forward MACs per sample (weight gradient MACs of a conv/linear equal its forward MACs). This is
a lower bound: when a frozen prefix of the network needs no input gradient either, autograd
skips that too. The baseline backward is about ``2 F`` per sample, so the fraction saved is
``backward_macs_saved / (2 F N)``. Counter ``backward_macs_saved`` goes to ``metrics.jsonl``.
Hyper-parameters: ``freeze_prob`` in [0, 1) (0.5), ``seed``, ``layers`` (candidate blocks),
``freeze_head`` (False: the head is never a candidate).
Interactions: frozen parameters get no gradient (``None``), so SGD/Adam skip them entirely that
step (no momentum or weight-decay update). Pruning masks and EMA are unaffected.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from leandl.errors import ConfigError
from leandl.registry import TECHNIQUES
from leandl.train.state import State
from leandl.train.technique import Technique

__all__ = ["model_units", "unit_forward_macs", "sample_frozen_units", "set_trainable_",
           "SelectiveLayerUpdate"]

_COMPUTE = (nn.modules.conv._ConvNd, nn.Linear)


def _has_compute(module: nn.Module) -> bool:
    return any(isinstance(m, _COMPUTE) for m in module.modules())


def model_units(model: nn.Module, layers: list[str] | None = None) -> list[tuple[str, nn.Module]]:
    """Blocks of ``model`` in forward (registration) order, as ``(dotted name, module)``.

    Top-level children that own parameters; a ``nn.Sequential``/``nn.ModuleList`` child with two
    or more children that contain a conv/linear layer is expanded one level (residual stages).
    With ``layers`` the named modules are returned in the given order.

    Raises:
        ConfigError: a name in ``layers`` is not a module of the model.
    """
    if layers is not None:
        mods = dict(model.named_modules())
        missing = [n for n in layers if n not in mods]
        if missing:
            raise ConfigError(f"layers {missing} are not modules of {type(model).__name__}",
                              fix="use dotted names from model.named_modules(), e.g. 'layer1.0'")
        return [(n, mods[n]) for n in layers]
    units: list[tuple[str, nn.Module]] = []
    for name, child in model.named_children():
        if not any(True for _ in child.parameters()):
            continue
        subs = list(child.named_children()) if isinstance(child, nn.Sequential | nn.ModuleList) else []
        if sum(_has_compute(m) for _, m in subs) >= 2:
            units.extend((f"{name}.{s}", m) for s, m in subs if any(True for _ in m.parameters()))
        else:
            units.append((name, child))
    return units


def unit_forward_macs(model: nn.Module, example: torch.Tensor, units: list[str]) -> dict[str, int]:
    """Forward MACs per sample of each unit (sum of its modules' own MACs) at ``example[:1]``."""
    from leandl.measure import count_macs

    per_module = count_macs(model, example[:1]).per_module
    return {u: sum(v for k, v in per_module.items() if k == u or k.startswith(u + ".")) for u in units}


def sample_frozen_units(units: list[str], freeze_prob: float, generator: torch.Generator | None = None) -> list[str]:
    """Freeze each unit independently with probability ``freeze_prob``; return the frozen names.

    Example:
        >>> sample_frozen_units(["a", "b"], 0.0)
        []
    """
    if not 0.0 <= freeze_prob <= 1.0:
        raise ValueError(f"freeze_prob must be in [0, 1], got {freeze_prob}")
    draws = torch.rand(len(units), generator=generator)
    return [u for u, d in zip(units, draws.tolist(), strict=True) if d < freeze_prob]


def set_trainable_(module: nn.Module, trainable: bool) -> nn.Module:
    """Set ``requires_grad`` of every parameter of ``module`` in place; return the module."""
    for p in module.parameters():
        p.requires_grad_(trainable)
    return module


@TECHNIQUES.register("selective_layer_update")
class SelectiveLayerUpdate(Technique):
    """E2-Train SLU, simplified: random per-step block freezing, not the learned gate (arXiv 1910.13349)."""

    name = "selective_layer_update"
    order = -50  # after mini-batch dropping decided, before the forward

    def __init__(self, freeze_prob: float = 0.5, seed: int = 0, layers: list[str] | None = None,
                 freeze_head: bool = False) -> None:
        if not 0.0 <= freeze_prob < 1.0:
            raise ValueError(f"freeze_prob must be in [0, 1), got {freeze_prob}")
        self.freeze_prob = freeze_prob
        self.seed = seed
        self.layers = layers
        self.freeze_head = freeze_head
        self.generator = torch.Generator().manual_seed(seed)
        self.units: dict[str, nn.Module] = {}
        self.unit_macs: dict[str, int] = {}
        self.forward_macs = 0
        self.samples_trained = 0
        self.macs_saved = 0
        self.unit_frozen_steps: dict[str, int] = {}
        self._frozen: list[str] = []

    def fit_start(self, state: State) -> None:
        from leandl.techniques.minibatch_dropping import first_batch_inputs

        units = model_units(state.model, self.layers)
        if self.layers is None and not self.freeze_head and len(units) > 1:
            units = units[:-1]  # the last unit is the classifier head
        if not units:
            raise ConfigError(f"selective_layer_update found no blocks in {type(state.model).__name__}",
                              fix="name the blocks with layers: [...]")
        self.units = dict(units)
        example = first_batch_inputs(state.train_loader, state.device)
        self.unit_macs = unit_forward_macs(state.model, example, list(self.units))
        from leandl.measure import count_macs

        self.forward_macs = int(count_macs(state.model, example[:1]).total)
        self.unit_frozen_steps = {u: self.unit_frozen_steps.get(u, 0) for u in self.units}

    def batch_start(self, state: State) -> None:
        self._restore()
        if state.skip_batch:
            return
        self._frozen = sample_frozen_units(list(self.units), self.freeze_prob, self.generator)
        for u in self._frozen:
            set_trainable_(self.units[u], False)
            self.unit_frozen_steps[u] += 1
        batch = int(state.inputs.shape[0])
        self.samples_trained += batch
        saved = batch * sum(self.unit_macs[u] for u in self._frozen)
        self.macs_saved += saved
        state.count("backward_macs_saved", saved)

    def batch_end(self, state: State) -> None:
        self._restore()

    def fit_end(self, state: State) -> None:
        self._restore()

    def _restore(self) -> None:
        for u in self._frozen:
            set_trainable_(self.units[u], True)
        self._frozen = []

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "samples_trained": self.samples_trained,
                "macs_saved": self.macs_saved, "unit_frozen_steps": dict(self.unit_frozen_steps)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.samples_trained = int(state["samples_trained"])
        self.macs_saved = int(state["macs_saved"])
        self.unit_frozen_steps = {k: int(v) for k, v in state["unit_frozen_steps"].items()}

    def summary(self) -> dict[str, Any]:
        baseline = 2 * self.forward_macs * self.samples_trained
        return {"slu_units": len(self.units), "slu_backward_macs_baseline": baseline,
                "slu_backward_fraction_saved": self.macs_saved / baseline if baseline else 0.0,
                "slu_unit_frozen_steps": dict(self.unit_frozen_steps)}

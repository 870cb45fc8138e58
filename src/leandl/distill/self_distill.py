"""Be Your Own Teacher: self-distillation from the deepest exit (Zhang, Song, Gao, Chen, Bao, Ma,
ICCV 2019, arXiv 1905.08094).

What: in a network with several classifiers (early exits), the deepest classifier teaches the
shallower ones. For each shallow output ``q_i``:
``(1 - alpha) CE(q_i, y) + alpha T^2 KL(q_C^T || q_i^T) + lambda ||r_i(F_i) - F_C||^2`` with the
deepest output ``q_C`` and feature ``F_C`` detached; the deepest output is trained with CE only.
Features: ``F_i`` is the input of exit ``i``'s last linear layer (its pooled feature), ``F_C``
the input of the model's final classifier; BYOT's bottlenecks make the shallow features the
deep feature's size, here ``r_i`` is a linear regressor owned by the technique (trained by its
own optimizer with the trainer's learning rate, like FitNets'; not part of the model's
checkpoint). The squared distance is summed over features and averaged over the batch. The
feature term is off by default (``feature_weight=0``): its weight depends on the feature scale
(unofficial code: 1e-6, the paper ~0.03), so set it for your model.
Mechanics in leandl: works with any model whose forward returns a list of logits ordered
shallow -> deep (leandl.dynamic's early-exit wrapper, or your own); this technique sets
``state.output_weights = [1 - alpha, ..., 1 - alpha, 1]`` for the trainer's CE and adds the KL
terms; accuracy during training reads the last (deepest) output.
When: multi-exit / anytime networks; also improves the deepest classifier (regularisation).
Cost: none beyond the exits' own (plus one small linear map per exit with the feature term).
Hyper-parameters: ``alpha`` (0.1 unofficial code, ~0.3 paper), ``temperature`` (3),
``feature_weight`` lambda (0: off).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from leandl.distill._common import AuxParams, as_list, tempered_kl
from leandl.errors import ModelError
from leandl.registry import LOSSES, TECHNIQUES
from leandl.train.state import State
from leandl.train.technique import Technique

__all__ = ["self_distill_loss", "feature_hint_loss", "SelfDistillation"]


@LOSSES.register("self")
def self_distill_loss(outputs: Sequence[Tensor], temperature: float = 3.0) -> Tensor:
    """``sum_{i < last} T^2 KL(q_last^T || q_i^T)`` (batch means, deepest output detached)."""
    outs = list(outputs)
    if len(outs) < 2:
        raise ValueError(f"self-distillation needs at least two outputs, got {len(outs)}")
    teacher = outs[-1].detach()
    return torch.stack([tempered_kl(z, teacher, temperature).mean() for z in outs[:-1]]).sum()


def feature_hint_loss(shallow: Sequence[Tensor], deep: Tensor, regressors: Sequence[nn.Module]) -> Tensor:
    """``sum_i mean_b ||r_i(F_i) - F_C||^2`` with the deepest feature ``F_C`` detached."""
    target = deep.detach().flatten(1)
    return torch.stack([(r(f.flatten(1)) - target).pow(2).sum(1).mean()
                        for f, r in zip(shallow, regressors, strict=True)]).sum()


def _last_linear(module: nn.Module, where: str) -> nn.Linear:
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ModelError(f"{where} has no nn.Linear layer whose input could serve as its feature",
                         where=where, fix="use leandl's exit heads, or leave feature_weight at 0")
    return linears[-1]


class _InputTap:
    """Forward pre-hooks keeping the latest input of each given module."""

    def __init__(self, modules: Sequence[nn.Module]) -> None:
        self.values: list[Tensor | None] = [None] * len(modules)
        self.handles = [m.register_forward_pre_hook(self._hook(i)) for i, m in enumerate(modules)]

    def _hook(self, i: int):  # noqa: ANN202 - a hook closure
        def keep(_module: nn.Module, inputs: tuple[Tensor, ...]) -> None:
            self.values[i] = inputs[0]
        return keep

    def take(self) -> list[Tensor]:
        vals, self.values = self.values, [None] * len(self.values)
        if any(v is None for v in vals):
            raise ModelError("an exit's classifier did not run in the last forward pass", where="technique 'self'")
        return vals  # type: ignore[return-value]

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


@TECHNIQUES.register("self")
class SelfDistillation(Technique):
    """BYOT: deepest output teaches the shallower exits (arXiv 1905.08094)."""

    name = "self"

    def __init__(self, alpha: float = 0.3, temperature: float = 3.0, feature_weight: float = 0.0) -> None:
        if not 0.0 <= alpha <= 1.0 or temperature <= 0 or feature_weight < 0:
            raise ValueError("need alpha in [0, 1], temperature > 0 and feature_weight >= 0")
        self.alpha, self.temperature, self.feature_weight = float(alpha), float(temperature), float(feature_weight)
        self.tap: _InputTap | None = None
        self.aux: AuxParams | None = None
        self._pending: dict[str, Any] | None = None

    def fit_start(self, state: State) -> None:
        if self.feature_weight == 0:
            return
        exits = getattr(state.model, "exits", None)
        if exits is None or not hasattr(state.model, "get_classifier"):
            raise ModelError("the feature term of technique 'self' needs a multi-exit model "
                             "(leandl.dynamic.attach_exits)", where="self.feature_weight",
                             fix="attach exits first, or set feature_weight to 0")
        layers = [_last_linear(h, f"exit head {i}") for i, h in enumerate(exits)]
        layers.append(_last_linear(state.model.get_classifier(), "the final classifier"))
        self.tap = _InputTap(layers)
        dims = [m.in_features for m in layers]
        if self.aux is None:
            regs = [nn.Linear(d, dims[-1], bias=False) for d in dims[:-1]]
            self.aux = AuxParams([r.to(state.device) for r in regs])

    def fit_end(self, state: State) -> None:
        if self.tap is not None:
            self.tap.remove()
            self.tap = None

    def before_loss(self, state: State) -> None:
        outs = as_list(state.outputs, self.name)
        base = state.output_weights or [1.0] * len(outs)
        state.output_weights = [w * (1.0 - self.alpha) for w in base[:-1]] + [base[-1]]

    def after_loss(self, state: State) -> None:
        loss = self_distill_loss(as_list(state.outputs, self.name), self.temperature)
        state.add_loss_term("self", self.alpha * loss)
        if self.tap is not None:
            if self._pending is not None:  # resumed: the regressors and their optimizer state
                self.aux.load_state_dict(self._pending, state.optimizer)
                self._pending = None
            feats = self.tap.take()
            hint = feature_hint_loss(feats[:-1], feats[-1], list(self.aux.modules))
            state.add_loss_term("self_feature", self.feature_weight * hint)

    def before_step(self, state: State) -> None:
        if self.aux is not None:
            self.aux.step(state.optimizer)

    def state_dict(self) -> dict[str, Any]:
        return {"regressors": self.aux.state_dict()} if self.aux is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "regressors" in state:
            self._pending = state["regressors"]

"""MaxDropout (do Santos, Colombo, Roder, Papa; ICPR 2020, arXiv 2007.13723).

What: instead of zeroing random units, zero the most strongly activated ones. In training,
normalise the tensor to [0, 1],

    ``x_n = (x - min x) / (max x - min x)``,

and zero every element with ``x_n > 1 - rate``; survivors are **not** rescaled; at eval it is
the identity (as in the official code). ``per_sample=False`` (default, the official code) takes
min/max over the whole tensor, batch included; ``per_sample=True`` takes them per sample.
When: ``fit_start`` swaps every ``nn.Dropout`` (1d/2d/3d too) of the model for a
:class:`MaxDropout` with the same rate (or ``rate`` when given) and, with ``after``, attaches
MaxDropout to the outputs of the named modules through forward hooks (the paper places it after
each ResNet stage, or between the two convs of a WRN block). ``fit_end`` restores the original
modules and removes the hooks, so the checkpoint's structure matches its model spec (both are
the identity at eval, so the trained weights are unaffected).
Cost: one min, one max and one comparison per element in training; nothing at inference.
Hyper-parameters: ``rate`` in [0, 1) (0.3 in the paper's code), ``after`` (dotted module names),
``per_sample``.
Interactions: a model without dropout modules needs ``after``; cutout combined well in the paper.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from leandl.errors import ConfigError, ModelError
from leandl.registry import TECHNIQUES
from leandl.train.state import State
from leandl.train.technique import Technique

__all__ = ["max_dropout", "MaxDropout", "MaxDropoutTechnique"]

_DROPOUTS = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)


def max_dropout(x: Tensor, rate: float, training: bool = True, per_sample: bool = False) -> Tensor:
    """Zero the elements of ``x`` whose min-max normalised value exceeds ``1 - rate``.

    Args:
        x: any tensor ``(N, ...)``.
        rate: in [0, 1]; 0 is the identity.
        training: identity when False.
        per_sample: min/max per sample (dim 0) instead of over the whole tensor.

    Returns:
        ``x * 1[x_n <= 1 - rate]`` (same shape, survivors unscaled).

    Example:
        >>> max_dropout(torch.tensor([0., 1., 2., 3., 4.]), 0.3)
        tensor([0., 1., 2., 0., 0.])
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be in [0, 1], got {rate}")
    if not training or rate == 0.0 or x.numel() == 0:
        return x
    if per_sample and x.ndim > 1:
        flat = x.detach().flatten(1)
        lo = flat.amin(dim=1).view(-1, *([1] * (x.ndim - 1)))
        hi = flat.amax(dim=1).view(-1, *([1] * (x.ndim - 1)))
    else:
        lo, hi = x.detach().amin(), x.detach().amax()
    normalised = (x.detach() - lo) / (hi - lo).clamp_min(torch.finfo(x.dtype).tiny)
    return x * (normalised <= 1.0 - rate).to(x.dtype)


class MaxDropout(nn.Module):
    """Module form of :func:`max_dropout` (identity in eval mode).

    Args:
        rate: fraction of the normalised range that is dropped (top ``rate``).
        per_sample: min/max per sample instead of over the batch.
    """

    def __init__(self, rate: float = 0.3, per_sample: bool = False) -> None:
        super().__init__()
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be in [0, 1], got {rate}")
        self.rate = rate
        self.per_sample = per_sample

    def forward(self, x: Tensor) -> Tensor:
        """Drop the top activations in training; identity at eval."""
        return max_dropout(x, self.rate, self.training, self.per_sample)

    def extra_repr(self) -> str:
        return f"rate={self.rate}, per_sample={self.per_sample}"


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, leaf = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, leaf, module)


@TECHNIQUES.register("maxdropout")
class MaxDropoutTechnique(Technique):
    """Swap dropout for MaxDropout during training (arXiv 2007.13723)."""

    name = "maxdropout"

    def __init__(self, rate: float | None = None, after: list[str] | None = None, per_sample: bool = False) -> None:
        if rate is not None and not 0.0 <= rate < 1.0:
            raise ValueError(f"rate must be in [0, 1), got {rate}")
        self.rate, self.after, self.per_sample = rate, list(after or []), per_sample
        self._swapped: dict[str, nn.Module] = {}
        self._hooks: list[Any] = []
        self.n_layers = 0

    def fit_start(self, state: State) -> None:
        model = state.model
        for name, m in list(model.named_modules()):
            if isinstance(m, _DROPOUTS):
                self._swapped[name] = m
                _set_submodule(model, name, MaxDropout(self.rate if self.rate is not None else m.p, self.per_sample))
        modules = dict(model.named_modules())
        missing = [n for n in self.after if n not in modules]
        if missing:
            raise ConfigError(f"maxdropout.after names {missing}, which are not modules of {type(model).__name__}",
                              fix="use dotted names from model.named_modules(), e.g. 'layer1'")
        drop = MaxDropout(0.3 if self.rate is None else self.rate, self.per_sample)
        for n in self.after:
            self._hooks.append(modules[n].register_forward_hook(lambda mod, inp, out: drop(out) if mod.training else out))
        if not self._swapped and not self._hooks:
            raise ModelError(f"{type(model).__name__} has no nn.Dropout module for maxdropout to replace",
                             fix="build the model with dropout > 0 or name modules with maxdropout.after: [...]")
        self.n_layers = len(self._swapped) + len(self._hooks)

    def fit_end(self, state: State) -> None:
        for name, original in self._swapped.items():
            _set_submodule(state.model, name, original)
        for h in self._hooks:
            h.remove()
        self._swapped, self._hooks = {}, []

    def summary(self) -> dict[str, Any]:
        return {"maxdropout_layers": self.n_layers}

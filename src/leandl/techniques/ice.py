"""ICE: instance cross entropy (Wang, Kodirov, Hua, Robertson; arXiv 1911.09976).

What: a metric-learning loss on L2-normalised embeddings ``f`` (here: the input of the model's
last linear layer). For an anchor ``a`` of class ``c`` every other instance ``i`` of class ``c``
in the batch should be "the match" of ``a`` against all instances of the other classes, a cross
entropy at instance level in which the positives do not compete with each other:

    p(i | a) = exp(s f_a.f_i) / (exp(s f_a.f_i) + sum_{k: y_k != c} exp(s f_a.f_k))
    L(a)     = -(1 / |P_a|) sum_{i in P_a} log p(i | a),      P_a = {i != a : y_i = c},

averaged over the anchors that have at least one positive and one negative in the batch.
``s`` (``scale``) is the inverse temperature on the cosine similarities. Instead of mining hard
pairs, ICE re-weights them: pair ``(a, i)`` gets the weight ``w = exp(sigma (1 - p(i|a)))``
(no gradient through ``w``), normalised so the weights average to 1 over the batch; ``sigma``
(``weight_scale``) = 0 switches re-weighting off. The exact form of the paper's weighting and
its default scales were not verified here: this exponential-of-difficulty form and the defaults
``scale`` = 16, ``weight_scale`` = 0 are this library's choices. Measured (``benchmarks/issue20_new.py``,
3 seeds): on digits they raise test Recall@1 by 0.5 +- 0.3 points; on MNIST-1D (32-d embedding,
15 epochs) they cost 5 points of accuracy and 2.3 of Recall@1, while ``weight`` 0.1, ``scale`` 4
is on par with CE (+0.3 +- 0.8 accuracy, +1.1 +- 1.7 Recall@1): lower both on small embeddings.

When: training an embedding for retrieval or nearest-neighbour classification; in this library
added to the classification loss as ``CE + weight * ICE`` (``weight`` 1.0) at ``after_loss``.
Cost: one ``B x B`` similarity matrix per batch. Hyper-parameters: ``scale``, ``weight_scale``,
``weight``, ``layer`` (the module whose *input* is the embedding; default the last
``nn.Linear``). Interactions: needs several instances per class in a batch (a batch of 64 on 10
classes has about 6); classes seen once in a batch contribute nothing. The authors note ICE is
the supervised form of NT-Xent (SimCLR).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from leandl.registry import LOSSES, TECHNIQUES
from leandl.train.state import State
from leandl.train.technique import Technique

__all__ = ["ice_loss", "ICE"]


@LOSSES.register("ice")
def ice_loss(features: Tensor, labels: Tensor, scale: float = 16.0, weight_scale: float = 0.0) -> Tensor:
    """Instance cross entropy of a batch of embeddings ``(B, D)`` with integer labels ``(B,)``.

    Returns a scalar; 0 (with a gradient path) when no anchor has both a positive and a negative.
    """
    if features.dim() != 2 or labels.dim() != 1 or features.shape[0] != labels.shape[0]:
        raise ValueError(f"ice_loss wants features (B, D) and labels (B,), got {tuple(features.shape)} "
                         f"and {tuple(labels.shape)}")
    f = F.normalize(features.float(), dim=1)
    sim = scale * f @ f.t()  # (B, B)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    pos, neg = same & ~eye, ~same
    neg_lse = torch.logsumexp(sim.masked_fill(~neg, float("-inf")), dim=1, keepdim=True)  # (B, 1)
    log_p = sim - torch.logaddexp(sim, neg_lse)  # log p(i | a) for every pair (a, i)
    anchors = pos.any(dim=1) & neg.any(dim=1)
    pair = pos & anchors[:, None]
    if not bool(pair.any()):
        return features.sum() * 0.0
    per_pair = 1.0 / pos.sum(dim=1, keepdim=True).clamp_min(1).float()  # 1 / |P_a|
    w = torch.where(pair, per_pair, torch.zeros_like(sim))
    if weight_scale:
        w = w * torch.exp(weight_scale * (1.0 - log_p.detach().exp()))
    w = w / w.sum()  # weights sum to 1: with weight_scale 0 this is mean over anchors of mean over positives
    return -(w * log_p.masked_fill(~pair, 0.0)).sum()


@TECHNIQUES.register("ice")
class ICE(Technique):
    """Adds ``weight * ICE`` on the classifier's input embeddings to the loss (arXiv 1911.09976)."""

    name = "ice"

    def __init__(self, scale: float = 16.0, weight_scale: float = 0.0, weight: float = 1.0,
                 layer: str | None = None) -> None:
        if scale <= 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        if weight_scale < 0 or weight < 0:
            raise ValueError(f"weight_scale and weight must be >= 0, got {weight_scale}, {weight}")
        self.scale, self.weight_scale, self.weight, self.layer = float(scale), float(weight_scale), float(weight), layer
        self._features: Tensor | None = None
        self._hook: Any = None

    def fit_start(self, state: State) -> None:
        from leandl.distill._taps import resolve_module
        from leandl.errors import ModelError

        if self.layer is not None:
            module = resolve_module(state.model, self.layer, "model")
        else:
            linears = [m for m in state.model.modules() if isinstance(m, nn.Linear)]
            if not linears:
                raise ModelError("ice needs a linear classifier whose input is the embedding; none found",
                                 where=type(state.model).__name__, fix="give layer: <module name>")
            module = linears[-1]
        self._hook = module.register_forward_pre_hook(self._grab)

    def _grab(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        if module.training:
            self._features = args[0].flatten(1)

    def after_loss(self, state: State) -> None:
        if self._features is None:
            return
        state.add_loss_term("ice", self.weight * ice_loss(self._features, state.targets, self.scale,
                                                          self.weight_scale))
        self._features = None

    def fit_end(self, state: State) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

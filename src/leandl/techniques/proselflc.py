"""ProSelfLC: progressive self label correction (Wang, Hua, Kodirov, Clifton, Robertson;
CVPR 2021, arXiv 2005.03788; later options from the ProSelfLC-AT / DeepCriticalLearning code).

What: trust the model's own prediction more as training progresses (global trust) and the more
confident the prediction is (local trust)::

    g(t) = 1 / (1 + exp(-B (t / Gamma - r)))        # t = step, Gamma = planned steps, r = 0.5
    l(p) = 1 - H(p) / log K                         # trust_mode "entropy" (paper)
         = max_k p_k                                # trust_mode "max_p"  (later code)
         = 1                                        # trust_mode "global"
    eps  = g(t) * l(p)                              # per sample, no gradient
    q~   = (1 - eps) q + eps p,     L = H(q~, p)

For ``t < Gamma / 2`` ``eps < 0.5`` so the annotation dominates; a label can change class only
late in training, for a confident prediction that disagrees with it. ``p`` for the trust and in
the target may be computed at a temperature ``T`` (``softmax(z / T)``, ``T = 0.4`` sharpens,
later code). ``target_grad``: True lets the gradient flow through ``p`` inside ``q~`` (the CVPR
formulation, adds ``eps H(p)``: rewards low entropy); False detaches the target (the released
ProSelfLC-AT configs, "cross entropy" mode).
When: ``before_loss`` revises ``state.targets_soft``; ``t / Gamma`` is ``state.progress``.
Cost: one softmax per batch. Hyper-parameters (defaults): ``exp_base`` B = 8 (paper grid 8-16;
more noise -> smaller B), ``transit`` r = 0.5 (paper), ``trust_mode`` entropy (paper),
``temperature`` 1.0, ``target_grad`` True (the CVPR formulation; on mnist1d with 40 % symmetric
noise the detached target barely differed from CE, the live one cut memorisation, see
benchmarks/label_noise.py). Interactions: after label smoothing in a recipe the
smoothed label is the ``q`` being corrected; robust losses receive ``q~``.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from leandl.registry import TECHNIQUES
from leandl.train.state import State
from leandl.train.technique import Technique

__all__ = ["TRUST_MODES", "global_trust", "local_trust", "proselflc_targets", "ProSelfLC"]

TRUST_MODES = ("entropy", "max_p", "global")


def global_trust(progress: float, exp_base: float = 8.0, transit: float = 0.5) -> float:
    """``g = sigmoid(B (progress - r))`` with ``progress = t / Gamma`` in [0, 1]."""
    return 1.0 / (1.0 + math.exp(-exp_base * (float(progress) - transit)))


def local_trust(probs: Tensor, mode: str = "entropy") -> Tensor:
    """Per-sample trust in ``p`` ``(B, K)``: ``1 - H(p)/log K``, ``max_k p_k`` or 1."""
    if mode == "entropy":
        h = -(probs * probs.clamp_min(1e-12).log()).sum(dim=-1)
        return (1.0 - h / math.log(probs.shape[-1])).clamp(0.0, 1.0)
    if mode == "max_p":
        return probs.max(dim=-1).values
    if mode == "global":
        return torch.ones(probs.shape[0], dtype=probs.dtype, device=probs.device)
    raise ValueError(f"trust_mode must be one of {TRUST_MODES}, got {mode!r}")


def proselflc_targets(targets_soft: Tensor, logits: Tensor, progress: float, *, exp_base: float = 8.0,
                      transit: float = 0.5, trust_mode: str = "entropy", temperature: float = 1.0,
                      target_grad: bool = True) -> tuple[Tensor, Tensor]:
    """ProSelfLC targets ``q~ = (1 - eps) q + eps p`` and the per-sample ``eps``.

    Args:
        targets_soft: ``(B, K)`` labels ``q``.
        logits: ``(B, K)`` outputs ``z``; ``p = softmax(z / temperature)``.
        progress: ``t / Gamma`` in [0, 1].
        exp_base, transit: ``B`` and ``r`` of the global trust.
        trust_mode: ``entropy``, ``max_p`` or ``global``.
        temperature: ``T > 0`` of ``p``.
        target_grad: keep the gradient through ``p`` inside the target.

    Returns:
        ``(q~ (B, K), eps (B,))``; ``eps`` carries no gradient.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    p = F.softmax(logits.float() / temperature, dim=-1)
    with torch.no_grad():
        eps = global_trust(progress, exp_base, transit) * local_trust(p.detach(), trust_mode)
    eps = eps.to(targets_soft.dtype)[:, None]
    p_t = (p if target_grad else p.detach()).to(targets_soft.dtype)
    return (1.0 - eps) * targets_soft + eps * p_t, eps[:, 0]


@TECHNIQUES.register("proselflc")
class ProSelfLC(Technique):
    """Progressive self label correction of the targets (arXiv 2005.03788)."""

    name = "proselflc"

    def __init__(self, exp_base: float = 8.0, transit: float = 0.5,
                 trust_mode: Literal["entropy", "max_p", "global"] = "entropy",
                 temperature: float = 1.0, target_grad: bool = True) -> None:
        if exp_base <= 0:
            raise ValueError(f"exp_base must be > 0, got {exp_base}")
        if not 0.0 <= transit <= 1.0:
            raise ValueError(f"transit must be in [0, 1], got {transit}")
        if trust_mode not in TRUST_MODES:
            raise ValueError(f"trust_mode must be one of {TRUST_MODES}, got {trust_mode!r}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.exp_base, self.transit, self.trust_mode = float(exp_base), float(transit), trust_mode
        self.temperature, self.target_grad = float(temperature), bool(target_grad)
        self._eps_sum, self._eps_n = 0.0, 0

    def before_loss(self, state: State) -> None:
        state.targets_soft, eps = proselflc_targets(
            state.targets_soft, state.final_outputs, state.progress, exp_base=self.exp_base,
            transit=self.transit, trust_mode=self.trust_mode, temperature=self.temperature,
            target_grad=self.target_grad)
        self._eps_sum += float(eps.sum())
        self._eps_n += int(eps.numel())

    def epoch_start(self, state: State) -> None:
        self._eps_sum, self._eps_n = 0.0, 0

    def state_dict(self) -> dict[str, Any]:
        return {"eps_sum": self._eps_sum, "eps_n": self._eps_n}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._eps_sum, self._eps_n = float(state["eps_sum"]), int(state["eps_n"])

    def summary(self) -> dict[str, Any]:
        return {"proselflc_mean_eps_last_epoch": self._eps_sum / max(self._eps_n, 1)}
